package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions"
)

// optionalTests check the optional interfaces a store implements; each one
// skips when the store does not implement its interface.
var optionalTests = []struct {
	name string
	fn   func(*testing.T, sessions.Store)
}{
	{"Updater: read-modify-write is atomic", testUpdater},
	{"DeltaSaver: deltas apply field by field", testDeltaSaver},
	{"Locker: one holder at a time, bounded waits", testLocker},
	{"UserIndexer: a user's live sessions", testUserIndexer},
	{"Iterator: every live session, once", testIterator},
}

func record(fields ...sessions.Field) []byte {
	return sessions.JoinRecord(sessions.RecordHeader(time.Now(), ""), fields)
}

func fieldsOf(t *testing.T, data []byte) map[string]string {
	t.Helper()
	_, fields, err := sessions.SplitRecord(data)
	if err != nil {
		t.Fatalf("stored data is not a session record: %v", err)
	}
	out := map[string]string{}
	for _, f := range fields {
		out[f.Key] = string(f.Value)
	}
	return out
}

func testUpdater(t *testing.T, s sessions.Store) {
	u, ok := s.(sessions.Updater)
	if !ok {
		t.Skip("the store does not implement sessions.Updater")
	}
	called := false
	found, err := u.Update(ctx(t), NewID(), later(), func([]byte) ([]byte, error) { called = true; return []byte("x"), nil })
	if err != nil || found || called {
		t.Fatalf("Update of a missing ID: found=%v err=%v fn called=%v; want false, nil, false", found, err, called)
	}

	id := NewID()
	mustSave(t, s, id, []byte("0"), later())
	exp := time.Now().Add(2 * time.Hour)
	found, err = u.Update(ctx(t), id, exp, func(cur []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(cur))
		return []byte(strconv.Itoa(n + 1)), nil
	})
	if err != nil || !found {
		t.Fatalf("Update: found=%v err=%v", found, err)
	}
	got, gotExp, _ := mustLoad(t, s, id)
	if string(got) != "1" {
		t.Fatalf("after Update: %q, want \"1\"", got)
	}
	if !gotExp.IsZero() && gotExp.Before(exp.Add(-time.Millisecond)) {
		t.Fatalf("Update did not set the expiry: %v, want %v", gotExp, exp)
	}

	boom := errors.New("boom")
	if _, err := u.Update(ctx(t), id, later(), func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Update with a failing fn: err = %v, want one wrapping fn's error", err)
	}
	if got, _, _ := mustLoad(t, s, id); string(got) != "1" {
		t.Fatalf("a failed Update changed the data to %q", got)
	}

	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				_, err := u.Update(context.Background(), id, later(), func(cur []byte) ([]byte, error) {
					n, err := strconv.Atoi(string(cur))
					return []byte(strconv.Itoa(n + 1)), err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, _, _ := mustLoad(t, s, id); string(got) != strconv.Itoa(1+workers*rounds) {
		t.Fatalf("after %d concurrent increments: %q, want %d: updates were lost", workers*rounds, got, 1+workers*rounds)
	}

	short := NewID()
	exp = time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, short, []byte("0"), exp)
	time.Sleep(time.Until(exp.Add(precision)))
	found, err = u.Update(ctx(t), short, later(), func([]byte) ([]byte, error) { return []byte("revived"), nil })
	if err != nil || found {
		t.Fatalf("Update of an expired session: found=%v err=%v", found, err)
	}
	if _, _, found := mustLoad(t, s, short); found {
		t.Fatal("Update revived an expired session")
	}
}

func testDeltaSaver(t *testing.T, s sessions.Store) {
	d, ok := s.(sessions.DeltaSaver)
	if !ok {
		t.Skip("the store does not implement sessions.DeltaSaver")
	}
	id := NewID()
	mustSave(t, s, id, record(sessions.Field{Key: "a", Value: []byte("1")}, sessions.Field{Key: "b", Value: []byte("2")}), later())
	apply := func(delta sessions.Delta) {
		t.Helper()
		found, err := d.SaveDelta(ctx(t), id, delta, later())
		if err != nil || !found {
			t.Fatalf("SaveDelta(%+v): found=%v err=%v", delta, found, err)
		}
	}
	check := func(want map[string]string) {
		t.Helper()
		got, _, found := mustLoad(t, s, id)
		if !found {
			t.Fatal("session gone after SaveDelta")
		}
		if g := fieldsOf(t, got); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Fatalf("fields %v, want %v", g, want)
		}
	}
	apply(sessions.Delta{Set: []sessions.Field{{Key: "c", Value: []byte("3")}, {Key: "b", Value: []byte("22")}}, Delete: []string{"a", "never"}})
	check(map[string]string{"b": "22", "c": "3"})
	apply(sessions.Delta{Clear: true, Set: []sessions.Field{{Key: "d", Value: []byte{0, 255}}}})
	check(map[string]string{"d": "\x00\xff"})
	header := sessions.RecordHeader(time.Unix(1700000000, 0), "user-42")
	apply(sessions.Delta{Header: header})
	got, _, _ := mustLoad(t, s, id)
	if h, _, _ := sessions.SplitRecord(got); string(h) != string(header) {
		t.Fatalf("header after a delta replacing it: %x, want %x", h, header)
	}
	check(map[string]string{"d": "\x00\xff"})

	missing := NewID()
	found, err := d.SaveDelta(ctx(t), missing, sessions.Delta{Set: []sessions.Field{{Key: "x", Value: []byte("y")}}}, later())
	if err != nil || found {
		t.Fatalf("SaveDelta of a missing ID: found=%v err=%v", found, err)
	}
	if _, _, found := mustLoad(t, s, missing); found {
		t.Fatal("SaveDelta created a session")
	}

	// Concurrent deltas on different keys all land.
	shared := NewID()
	mustSave(t, s, shared, record(), later())
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				delta := sessions.Delta{Set: []sessions.Field{{Key: fmt.Sprint("k", w), Value: []byte(strconv.Itoa(i))}}}
				if _, err := d.SaveDelta(context.Background(), shared, delta, later()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _, _ = mustLoad(t, s, shared)
	fields := fieldsOf(t, got)
	for w := 0; w < workers; w++ {
		if v := fields[fmt.Sprint("k", w)]; v != strconv.Itoa(rounds-1) {
			t.Errorf("key k%d = %q after concurrent deltas, want %d", w, v, rounds-1)
		}
	}
}

func testLocker(t *testing.T, s sessions.Store) {
	l, ok := s.(sessions.Locker)
	if !ok {
		t.Skip("the store does not implement sessions.Locker")
	}
	id := NewID()
	var holders, maxHolders atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				unlock, err := l.Lock(context.Background(), id, 20*time.Second, 10*time.Second)
				if err != nil {
					errs <- err
					return
				}
				n := holders.Add(1)
				if n > maxHolders.Load() {
					maxHolders.Store(n)
				}
				time.Sleep(time.Millisecond)
				holders.Add(-1)
				unlock()
				unlock() // idempotent
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxHolders.Load() != 1 {
		t.Fatalf("%d holders of one lock at once", maxHolders.Load())
	}

	unlockA, err := l.Lock(ctx(t), id, time.Second, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if unlock, err := l.Lock(ctx(t), id, 300*time.Millisecond, 10*time.Second); err == nil {
		unlock()
		t.Fatal("a second holder got the lock")
	} else if !errors.Is(err, sessions.ErrLocked) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lock, wait elapsed: %v, want one wrapping sessions.ErrLocked (or context.DeadlineExceeded)", err)
	}
	unlockOther, err := l.Lock(ctx(t), NewID(), time.Second, 10*time.Second)
	if err != nil {
		t.Fatalf("another session's lock is blocked: %v", err)
	}
	unlockOther()
	unlockA()
	unlockB, err := l.Lock(ctx(t), id, 5*time.Second, 10*time.Second)
	if err != nil {
		t.Fatalf("lock not free after unlock: %v", err)
	}
	unlockB()

	// A holder whose context ends without unlocking releases the lock.
	holderCtx, cancel := context.WithCancel(context.Background())
	if _, err := l.Lock(holderCtx, id, time.Second, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cancel()
	unlockC, err := l.Lock(ctx(t), id, 5*time.Second, 10*time.Second)
	if err != nil {
		t.Fatalf("lock still held after its holder's context ended: %v", err)
	}
	unlockC()

	// A context that ends while waiting ends the wait.
	unlockD, _ := l.Lock(ctx(t), id, time.Second, 10*time.Second)
	waitCtx, cancelWait := context.WithCancel(context.Background())
	cancelWait()
	if _, err := l.Lock(waitCtx, id, 5*time.Second, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a cancelled context: %v, want one wrapping context.Canceled", err)
	}
	unlockD()
}

func testUserIndexer(t *testing.T, s sessions.Store) {
	ui, ok := s.(sessions.UserIndexer)
	if !ok {
		t.Skip("the store does not implement sessions.UserIndexer")
	}
	ann, bob := "ann-"+NewID()[:8], "bob-"+NewID()[:8]
	s1, s2, s3, s4 := NewID(), NewID(), NewID(), NewID()
	for _, id := range []string{s1, s2, s3} {
		mustSave(t, s, id, []byte("x"), later())
	}
	short := time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, s4, []byte("x"), short)
	link := func(user, id string, exp time.Time) {
		t.Helper()
		if err := ui.LinkUser(ctx(t), user, id, exp); err != nil {
			t.Fatalf("LinkUser: %v", err)
		}
	}
	list := func(user string) []string {
		t.Helper()
		ids, err := ui.UserSessions(ctx(t), user)
		if err != nil {
			t.Fatalf("UserSessions: %v", err)
		}
		slices.Sort(ids)
		return ids
	}
	link(ann, s1, later())
	link(ann, s2, later())
	link(bob, s3, later())
	link(ann, s4, short)
	want := []string{s1, s2, s4}
	slices.Sort(want)
	if got := list(ann); !slices.Equal(got, want) {
		t.Fatalf("ann's sessions: %v, want %v", got, want)
	}
	if got := list(bob); !slices.Equal(got, []string{s3}) {
		t.Fatalf("bob's sessions: %v", got)
	}
	if err := ui.UnlinkUser(ctx(t), ann, s1); err != nil {
		t.Fatal(err)
	}
	if err := ui.UnlinkUser(ctx(t), ann, NewID()); err != nil {
		t.Fatalf("UnlinkUser of a missing link: %v", err)
	}
	if err := s.Delete(ctx(t), s2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(short.Add(precision)))
	if got := list(ann); len(got) != 0 {
		t.Fatalf("ann's sessions after unlink, delete and expiry: %v, want none", got)
	}
	if got := list("nobody-" + NewID()[:8]); len(got) != 0 {
		t.Fatalf("an unknown user has sessions: %v", got)
	}
}

func testIterator(t *testing.T, s sessions.Store) {
	it, ok := s.(sessions.Iterator)
	if !ok {
		t.Skip("the store does not implement sessions.Iterator")
	}
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		id := NewID()
		want[id] = true
		mustSave(t, s, id, []byte(id[:4]), later())
	}
	dead := NewID()
	exp := time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, dead, []byte("x"), exp)
	time.Sleep(time.Until(exp.Add(precision)))
	seen := map[string]int{}
	err := it.Range(ctx(t), func(id string, data []byte, _ time.Time) bool {
		seen[id]++
		if want[id] && string(data) != id[:4] {
			t.Errorf("Range gave %q for %s", data, id[:6])
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("session %s seen %d times", id[:6], seen[id])
		}
	}
	if seen[dead] != 0 {
		t.Error("Range returned an expired session")
	}
	calls := 0
	if err := it.Range(ctx(t), func(string, []byte, time.Time) bool { calls++; return false }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("Range went on after fn returned false: %d calls", calls)
	}
}
