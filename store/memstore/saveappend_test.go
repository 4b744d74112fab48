package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/storetest"
)

// SaveAppend's contract, on canonical and other IDs: fn appends the data to
// an empty dst; what it returns is stored, new or replacing what was there,
// and handed back unchanged by anything that happens later; an error stores
// nothing and leaves what was stored.
func TestSaveAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	s := memstore.New(memstore.WithCleanupInterval(0))
	t.Cleanup(func() { _ = s.Close() })
	type saved struct {
		id, want string
		stored   []byte
	}
	var kept []saved
	for i := range 400 {
		id := storetest.NewID()
		if i%3 == 0 {
			id = fmt.Sprintf("not a canonical session ID %d", i)
		}
		// Most fit the room the store leaves; every 40th does not, and
		// every 7th replaces the one before, so both the in-place and the
		// copying path run, as do compactions of the replaced ones.
		want := strings.Repeat(string(rune('a'+i%26)), 20+i)
		if i%40 == 0 {
			want = strings.Repeat("y", 70_000)
		}
		if i%7 == 0 && len(kept) > 0 {
			id = kept[len(kept)-1].id
			kept = kept[:len(kept)-1]
		}
		stored, err := s.SaveAppend(ctx, id, later, func(dst []byte) ([]byte, error) {
			if len(dst) != 0 {
				t.Fatalf("dst has length %d, want 0", len(dst))
			}
			return append(dst, want...), nil
		})
		if err != nil || string(stored) != want {
			t.Fatalf("save %d: stored %.20q (%d bytes), err %v", i, stored, len(stored), err)
		}
		kept = append(kept, saved{id, want, stored})
	}
	for _, k := range kept {
		got, _, found, err := s.Load(ctx, k.id)
		if err != nil || !found || string(got) != k.want {
			t.Fatalf("%q: Load gives %.20q (%d bytes), %v, %v", k.id, got, len(got), found, err)
		}
		if string(k.stored) != k.want {
			t.Fatalf("%q: the data SaveAppend handed back changed later", k.id)
		}
	}

	boom := errors.New("boom")
	k := kept[0]
	if _, err := s.SaveAppend(ctx, k.id, later, func(dst []byte) ([]byte, error) {
		return append(dst, "half-written"...), boom
	}); !errors.Is(err, boom) {
		t.Fatalf("a failing fn: err = %v, want boom", err)
	}
	if got, _, _, _ := s.Load(ctx, k.id); string(got) != k.want {
		t.Fatalf("a failed save changed the data to %.20q", got)
	}
	fresh := storetest.NewID()
	if _, err := s.SaveAppend(ctx, fresh, later, func(dst []byte) ([]byte, error) { return dst, boom }); !errors.Is(err, boom) {
		t.Fatalf("a failing fn: err = %v, want boom", err)
	}
	if _, _, found, _ := s.Load(ctx, fresh); found {
		t.Fatal("a failed save of a new session stored it")
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	called := false
	if _, err := s.SaveAppend(cancelled, fresh, later, func(dst []byte) ([]byte, error) { called = true; return dst, nil }); !errors.Is(err, context.Canceled) || called {
		t.Fatalf("a cancelled context: err = %v, fn called = %v", err, called)
	}
}

// A small new session is kept where fn wrote it: nothing is copied.
func TestSaveAppendWritesInPlace(t *testing.T) {
	t.Parallel()
	ctx, later := context.Background(), time.Now().Add(time.Hour)
	s := memstore.New(memstore.WithCleanupInterval(0))
	t.Cleanup(func() { _ = s.Close() })
	for i := range 100 {
		var at *byte
		stored, err := s.SaveAppend(ctx, storetest.NewID(), later, func(dst []byte) ([]byte, error) {
			if cap(dst) < 300 {
				t.Fatalf("save %d: dst has room for %d bytes", i, cap(dst))
			}
			at = &dst[:1][0]
			return append(dst, bytes.Repeat([]byte{byte(i)}, 300)...), nil
		})
		if err != nil || len(stored) != 300 || &stored[0] != at {
			t.Fatalf("save %d: %d bytes stored (err %v), at %p; fn wrote them at %p", i, len(stored), err, &stored[0], at)
		}
	}
}

// A store at its cap makes room for a session SaveAppend adds, as it does
// for Save, and the new session's data is intact.
func TestSaveAppendKeepsTheCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := memstore.New(memstore.WithCleanupInterval(0), memstore.WithMaxEntries(64))
	t.Cleanup(func() { _ = s.Close() })
	var last string
	for i := range 5000 {
		last = storetest.NewID()
		want := fmt.Sprintf("session %d", i)
		stored, err := s.SaveAppend(ctx, last, time.Now().Add(time.Duration(i)*time.Second+time.Hour), func(dst []byte) ([]byte, error) {
			return append(dst, want...), nil
		})
		if err != nil || string(stored) != want {
			t.Fatalf("save %d: %q, %v", i, stored, err)
		}
	}
	n := 0
	if err := s.Range(ctx, func(string, []byte, time.Time) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n > 64 {
		t.Fatalf("the store holds %d sessions, cap 64", n)
	}
	if got, _, found, _ := s.Load(ctx, last); !found || string(got) != "session 4999" {
		t.Fatalf("the last session reads %q, found=%v", got, found)
	}
}

// LoadAt and UpdateAppend judge expiry by the time they are given, not by
// the clock: a session is live until the instant before its expiry.
func TestTheGivenTimeDecidesExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	s, id := storeHolding(t, []byte("v"), exp)
	for _, tc := range []struct {
		now  time.Time
		live bool
	}{
		{exp.Add(-time.Nanosecond), true},
		{exp, false},
		{exp.Add(time.Minute), false},
		{time.Now(), true},
	} {
		data, gotExp, found, err := s.LoadAt(ctx, id, tc.now)
		if err != nil || found != tc.live || (found && (string(data) != "v" || !gotExp.Equal(exp))) {
			t.Fatalf("LoadAt(%v before expiry) = %q, %v, %v, %v; want found=%v", exp.Sub(tc.now), data, gotExp, found, err, tc.live)
		}
		called := false
		_, found, err = s.UpdateAppend(ctx, id, tc.now, exp, func(dst, cur []byte) ([]byte, error) {
			called = true
			return append(dst, cur...), nil
		})
		if err != nil || found != tc.live || called != tc.live {
			t.Fatalf("UpdateAppend(%v before expiry): found=%v, fn called=%v, err %v; want %v", exp.Sub(tc.now), found, called, err, tc.live)
		}
	}
}
