package sessions_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if a goroutine started by this module outlives
// the tests: memstore sweeps are stopped by Close, or by the garbage
// collector once their store is unreferenced.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForGoroutines(10 * time.Second); leaked != "" {
			fmt.Fprintln(os.Stderr, "goroutines outlived the tests:\n"+leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitForGoroutines(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		runtime.GC()
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var leaked []string
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "fastsession/sessions") && !strings.Contains(g, "waitForGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
