package bench

import (
	"runtime"
	"testing"
)

// The faults/op the benchmarks report count first touches of fresh memory
// while the timer runs, and nothing while it is stopped.
func TestFaultCountSeesFreshMemory(t *testing.T) {
	if _, ok := minorFaults(); !ok {
		t.Skip("this system does not report page faults")
	}
	// More than the heap has ever held: at least fresh bytes of it must
	// come from memory the process has never touched.
	const fresh = 64 << 20
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	size := int(ms.HeapSys) + fresh
	// Even in pages of 2 MiB (transparent huge pages), that is this many
	// faults at least.
	const least = fresh / (2 << 20)

	var f faultCount
	f.reset()
	touch(size)
	f.stop()
	if f.n < least {
		t.Fatalf("touching %d MiB of fresh memory counted %d page faults, want at least %d", size>>20, f.n, least)
	}

	counted := f.n
	touch(size) // the timer is stopped: not counted
	f.stop()
	if f.n != counted {
		t.Fatalf("faults counted while stopped: %d, then %d", counted, f.n)
	}
	f.start()
	f.stop()
	if f.n < counted {
		t.Fatalf("count went down: %d, then %d", counted, f.n)
	}
}

// touch allocates size bytes and writes one byte in every 4 KiB of them.
func touch(size int) {
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
}
