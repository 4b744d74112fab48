package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func (lt *lockTable) size() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return len(lt.m)
}

// TestLockTableDoesNotGrow: after many sessions have been locked and
// released, by unlock, by their holder's context ending, or by a waiter
// giving up, the lock table is empty again.
func TestLockTableDoesNotGrow(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "locks.db"), WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	bg := context.Background()

	const sessions = 1000
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("session-", i)
			switch i % 4 {
			case 0: // lock and unlock, twice
				unlock, err := s.Lock(bg, id, time.Second, time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				unlock()
				unlock()
			case 1: // released by the holder's context ending
				c, cancel := context.WithCancel(bg)
				_, err := s.Lock(c, id, time.Second, time.Second)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				// Waits for the release, which runs in context.AfterFunc.
				unlock, err := s.Lock(bg, id, 10*time.Second, time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				unlock()
			case 2: // a waiter that gives up, on timeout and on cancel
				unlock, err := s.Lock(bg, id, time.Second, time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Lock(bg, id, 0, time.Second); err == nil {
					t.Error("a second holder")
				}
				c, cancel := context.WithTimeout(bg, time.Millisecond)
				if _, err := s.Lock(c, id, time.Minute, time.Second); err == nil {
					t.Error("a second holder")
				}
				cancel()
				unlock()
			case 3: // several goroutines taking turns on one ID
				var inner sync.WaitGroup
				for j := 0; j < 4; j++ {
					inner.Add(1)
					go func() {
						defer inner.Done()
						unlock, err := s.Lock(bg, id, 10*time.Second, time.Second)
						if err != nil {
							t.Error(err)
							return
						}
						unlock()
					}()
				}
				inner.Wait()
			}
		}()
	}
	wg.Wait()
	if n := s.locks.size(); n != 0 {
		t.Fatalf("%d entries left in the lock table after %d sessions locked and released", n, sessions)
	}
	// A held lock has its entry, and only while held.
	unlock, err := s.Lock(bg, "held", time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.locks.size(); n != 1 {
		t.Fatalf("%d entries while one lock is held", n)
	}
	unlock()
	if n := s.locks.size(); n != 0 {
		t.Fatalf("%d entries after the last unlock", n)
	}
}
