package memstore_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/storetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) sessions.Store {
		s := memstore.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestMaxEntriesCapsTheStore(t *testing.T) {
	t.Parallel()
	s := memstore.New(memstore.WithMaxEntries(640), memstore.WithCleanupInterval(0))
	ctx := context.Background()
	for i := 0; i < 5000; i++ {
		if err := s.Save(ctx, storetest.NewID(), []byte("x"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n > 640 || n < 500 {
		t.Fatalf("Len = %d after 5000 saves with a cap of 640", n)
	}
	// Overwriting an existing ID never evicts.
	id := storetest.NewID()
	_ = s.Save(ctx, id, []byte("a"), time.Now().Add(time.Hour))
	before := s.Len()
	_ = s.Save(ctx, id, []byte("b"), time.Now().Add(time.Hour))
	if s.Len() != before {
		t.Fatalf("an overwrite changed Len from %d to %d", before, s.Len())
	}
}

func TestEvictionPrefersExpiredThenSoonest(t *testing.T) {
	t.Parallel()
	s := memstore.New(memstore.WithMaxEntries(64), memstore.WithCleanupInterval(0)) // one entry per shard
	ctx := context.Background()
	// Fill with short-lived entries, wait for them to expire, then add
	// long-lived ones: only expired entries may be dropped to make room.
	for i := 0; i < 400; i++ {
		_ = s.Save(ctx, storetest.NewID(), []byte("old"), time.Now().Add(50*time.Millisecond))
	}
	time.Sleep(100 * time.Millisecond)
	var ids []string
	for i := 0; i < 30; i++ {
		id := storetest.NewID()
		ids = append(ids, id)
		_ = s.Save(ctx, id, []byte("new"), time.Now().Add(time.Hour))
	}
	kept := 0
	for _, id := range ids {
		if _, _, found, _ := s.Load(ctx, id); found {
			kept++
		}
	}
	// 30 IDs over 64 one-slot shards: collisions may evict a live entry,
	// but never all of them, and every survivor is a new one.
	if kept == 0 {
		t.Fatal("every new entry was evicted")
	}
}

func TestSweepRemovesExpiredEntries(t *testing.T) {
	t.Parallel()
	s := memstore.New(memstore.WithCleanupInterval(0))
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		_ = s.Save(ctx, storetest.NewID(), []byte("x"), time.Now().Add(20*time.Millisecond))
	}
	live := storetest.NewID()
	_ = s.Save(ctx, live, []byte("x"), time.Now().Add(time.Hour))
	time.Sleep(50 * time.Millisecond)
	if s.Len() != 101 {
		t.Fatalf("Len = %d before the sweep", s.Len())
	}
	s.Sweep()
	if s.Len() != 1 {
		t.Fatalf("Len = %d after the sweep, want 1", s.Len())
	}
}

func TestBackgroundSweepRunsAndStops(t *testing.T) {
	s := memstore.New(memstore.WithCleanupInterval(10 * time.Millisecond))
	ctx := context.Background()
	_ = s.Save(ctx, storetest.NewID(), []byte("x"), time.Now().Add(5*time.Millisecond))
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Len() != 0 {
		t.Fatal("the background sweep never removed the expired entry")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close() // idempotent
	if n := sweepers(); n != 0 {
		t.Fatalf("%d sweep goroutines still running after Close", n)
	}
}

func TestUnreferencedStoreStopsItsSweep(t *testing.T) {
	func() {
		s := memstore.New(memstore.WithCleanupInterval(time.Hour))
		_ = s.Save(context.Background(), storetest.NewID(), []byte("x"), time.Now().Add(time.Hour))
		for sweepers() == 0 { // wait until the goroutine has started
			runtime.Gosched()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for sweepers() != 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := sweepers(); n != 0 {
		t.Fatalf("%d sweep goroutines outlive their store", n)
	}
}

// sweepers counts the running sweep goroutines.
func sweepers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "memstore.(*state).sweepLoop")
}
