package sessions_test

import (
	"os"
	"testing"

	"github.com/fastsession/sessions/store/storetest"
)

// TestMain fails the run if a goroutine started by this module outlives
// the tests: memstore sweeps are stopped by Close, or by the garbage
// collector once their store is unreferenced.
func TestMain(m *testing.M) { os.Exit(storetest.CheckGoroutines(m, "fastsession/sessions")) }
