package storetest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// CheckGoroutines runs the tests of a package, then fails the run if a
// goroutine whose stack contains one of match outlives them. Goroutines
// that are ending (a sweep stopped by Close, one that stops when the
// garbage collector finds its store unreferenced) get ten seconds. Call it
// from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storetest.CheckGoroutines(m, "fastsession/sessions")) }
func CheckGoroutines(m *testing.M, match ...string) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		left := goroutinesMatching(match)
		if len(left) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "goroutines outlived the tests:\n"+strings.Join(left, "\n\n"))
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func goroutinesMatching(match []string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "storetest.CheckGoroutines") {
			continue // the goroutine doing the checking
		}
		for _, s := range match {
			if strings.Contains(g, s) {
				left = append(left, g)
				break
			}
		}
	}
	return left
}
