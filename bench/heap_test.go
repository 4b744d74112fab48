package bench

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/storetest"
)

// TestMemstoreHeap fills a memory store with 100,000 sessions of 1 KB each
// and checks that the heap grows by at most 1.5 times the payload: the
// store's own overhead per session (key, map slot, expiry) must stay small
// next to the data.
func TestMemstoreHeap(t *testing.T) {
	const (
		sessions = 100_000
		size     = 1024
		maxRatio = 1.5
	)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	st := memstore.New(memstore.WithCleanupInterval(0))
	for i := range sessions {
		// A fresh slice per session, as each request's encoded record is.
		data := make([]byte, size)
		data[0], data[size-1] = byte(i), byte(i>>8)
		if err := st.Save(ctx, storetest.NewID(), data, exp); err != nil {
			t.Fatal(err)
		}
	}

	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := st.Len(); n != sessions {
		t.Fatalf("the store holds %d sessions, want %d", n, sessions)
	}
	runtime.KeepAlive(st)

	payload := float64(sessions * size)
	growth := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
	ratio := growth / payload
	t.Logf("heap grew %.1f MB for %.1f MB of session data: %.3f× (%.0f bytes per session, %d of them data)",
		growth/1e6, payload/1e6, ratio, growth/sessions, size)
	if ratio > maxRatio {
		t.Errorf("heap grew %.3f× the payload, want at most %.1f×", ratio, maxRatio)
	}
}
