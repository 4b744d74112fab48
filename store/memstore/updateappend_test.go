package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/storetest"
)

// UpdateAppend's contract, on canonical and other IDs: fn sees what is
// stored and appends the new data to dst; what it returns is stored and
// handed back, unchanged by anything that happens later; fn is not called
// for a missing or expired session; an error stores nothing.
func TestUpdateAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	for _, id := range []string{storetest.NewID(), "not a canonical session ID"} {
		s := memstore.New(memstore.WithCleanupInterval(0))
		t.Cleanup(func() { _ = s.Close() })

		called := false
		stored, found, err := s.UpdateAppend(ctx, id, time.Now(), later, func(dst, cur []byte) ([]byte, error) { called = true; return dst, nil })
		if stored != nil || found || err != nil || called {
			t.Fatalf("%q missing: stored=%q found=%v err=%v fn called=%v", id, stored, found, err, called)
		}

		if err := s.Save(ctx, id, []byte("v0"), later); err != nil {
			t.Fatal(err)
		}
		var kept [][]byte // every slice handed back, with what it held
		var want []string
		for i := 1; i <= 300; i++ {
			// Each version is a little longer than the last, and every
			// 50th outgrows the room the store leaves, so both the in-place
			// and the copying path run, as do compactions of the dead
			// versions.
			next := strings.Repeat("x", i*40)
			if i%50 == 0 {
				next = strings.Repeat("y", 100_000)
			}
			prev := want
			stored, found, err := s.UpdateAppend(ctx, id, time.Now(), later, func(dst, cur []byte) ([]byte, error) {
				if len(dst) != 0 {
					t.Fatalf("dst has length %d, want 0", len(dst))
				}
				if len(prev) > 0 && string(cur) != prev[len(prev)-1] {
					t.Fatalf("fn got %.20q (%d bytes), want the stored %.20q", cur, len(cur), prev[len(prev)-1])
				}
				return append(dst, next...), nil
			})
			if err != nil || !found || string(stored) != next {
				t.Fatalf("update %d: stored %.20q (%d bytes) found=%v err=%v", i, stored, len(stored), found, err)
			}
			kept, want = append(kept, stored), append(want, next)
			got, _, ok, err := s.Load(ctx, id)
			if err != nil || !ok || string(got) != next {
				t.Fatalf("update %d: Load gives %.20q (%d bytes), %v, %v", i, got, len(got), ok, err)
			}
		}
		for i, b := range kept {
			if string(b) != want[i] {
				t.Fatalf("the data handed back by update %d changed later", i+1)
			}
		}

		boom := errors.New("boom")
		if _, _, err := s.UpdateAppend(ctx, id, time.Now(), later, func(dst, _ []byte) ([]byte, error) {
			return append(dst, "half-written"...), boom
		}); !errors.Is(err, boom) {
			t.Fatalf("a failing fn: err = %v, want boom", err)
		}
		if got, _, _, _ := s.Load(ctx, id); string(got) != want[len(want)-1] {
			t.Fatalf("a failed update changed the data to %.20q", got)
		}

		if err := s.Save(ctx, id, []byte("short"), time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := s.UpdateAppend(ctx, id, time.Now(), later, func(dst, _ []byte) ([]byte, error) { return append(dst, "revived"...), nil }); found {
			t.Fatalf("%q: UpdateAppend found an expired session", id)
		}
	}
}

// What fn returns is stored whatever it is: a slice of dst that does not
// start where dst does (it lies in the free space the store copies into),
// or memory of fn's own.
func TestUpdateAppendStoresWhateverFnReturns(t *testing.T) {
	t.Parallel()
	ctx, later := context.Background(), time.Now().Add(time.Hour)
	s, id := storeHolding(t, []byte("v0"), later)
	payload := bytes.Repeat([]byte("0123456789"), 50)
	for name, fn := range map[string]func(dst, cur []byte) ([]byte, error){
		"a later part of dst": func(dst, _ []byte) ([]byte, error) { return append(dst, payload...)[7:], nil },
		"fn's own memory":     func([]byte, []byte) ([]byte, error) { return bytes.Clone(payload), nil },
		"nothing":             func([]byte, []byte) ([]byte, error) { return nil, nil },
	} {
		wantData := payload[7:]
		switch name {
		case "fn's own memory":
			wantData = payload
		case "nothing":
			wantData = nil
		}
		stored, found, err := s.UpdateAppend(ctx, id, time.Now(), later, fn)
		got, _, _, _ := s.Load(ctx, id)
		if err != nil || !found || !bytes.Equal(stored, wantData) || !bytes.Equal(got, wantData) {
			t.Fatalf("%s: stored %.20q, Load %.20q, found=%v err=%v; want %.20q", name, stored, got, found, err, wantData)
		}
	}
}

// Data a little longer than what it replaces is kept where fn wrote it:
// the store leaves room for the data as it was and then some, and copies
// nothing.
func TestUpdateAppendWritesInPlace(t *testing.T) {
	t.Parallel()
	ctx, later := context.Background(), time.Now().Add(time.Hour)
	s, id := storeHolding(t, make([]byte, 1000), later)
	// 40 versions of about 1 KB: too few dead bytes for a compaction,
	// which would move the data.
	for i := range 40 {
		var at *byte
		stored, _, err := s.UpdateAppend(ctx, id, time.Now(), later, func(dst, cur []byte) ([]byte, error) {
			if cap(dst) < len(cur)+100 {
				t.Fatalf("update %d: dst has room for %d bytes, the data is %d", i, cap(dst), len(cur))
			}
			at = &dst[:1][0]
			return append(append(dst, cur...), byte(i)), nil
		})
		if err != nil || len(stored) != 1001+i || &stored[0] != at {
			t.Fatalf("update %d: %d bytes stored (err %v), at %p; fn wrote them at %p", i, len(stored), err, &stored[0], at)
		}
	}
}

// storeHolding returns a store without a background sweep that holds data
// under a new ID until exp.
func storeHolding(t *testing.T, data []byte, exp time.Time) (*memstore.Store, string) {
	t.Helper()
	s := memstore.New(memstore.WithCleanupInterval(0))
	t.Cleanup(func() { _ = s.Close() })
	id := storetest.NewID()
	if err := s.Save(context.Background(), id, data, exp); err != nil {
		t.Fatal(err)
	}
	return s, id
}
