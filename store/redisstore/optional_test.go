package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/redis/go-redis/v9"
)

var (
	_ sessions.Store       = (*redisstore.Store)(nil)
	_ sessions.Toucher     = (*redisstore.Store)(nil)
	_ sessions.DeltaSaver  = (*redisstore.Store)(nil)
	_ sessions.Locker      = (*redisstore.Store)(nil)
	_ sessions.UserIndexer = (*redisstore.Store)(nil)
	_ sessions.Iterator    = (*redisstore.Store)(nil)
)

// TestMain fails the run if a goroutine of the store (a lock's renewal or
// release) outlives the tests. "redisstore." matches the store's code, not
// the tests' ("redisstore_test.").
func TestMain(m *testing.M) {
	os.Exit(storetest.CheckGoroutines(m, "sessions/store/redisstore."))
}

var hexToken = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestLockLayout checks the lock key, its token and lease, and that unlock
// deletes it.
func TestLockLayout(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	key := prefix + "lock:" + id

	unlock, err := s.Lock(ctx, id, 0, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	token := c.Get(ctx, key).Val()
	if !hexToken.MatchString(token) {
		t.Fatalf("lock key %s holds %q, want a 128-bit hex token", key, token)
	}
	if ttl := c.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("PTTL of the lock %v, want the 10s lease", ttl)
	}
	// The lock does not touch the session key.
	if n := c.Exists(ctx, prefix+id).Val(); n != 0 {
		t.Fatal("Lock created the session key")
	}
	_, err = s.Lock(ctx, id, 0, 10*time.Second)
	if !errors.Is(err, redisstore.ErrLocked) || !strings.HasPrefix(err.Error(), "redisstore: lock: ") {
		t.Fatalf("Lock of a held lock without waiting: %v, want an error wrapping ErrLocked", err)
	}
	// A waiter whose context ends while it waits gets ctx's error.
	waitCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = s.Lock(waitCtx, id, time.Minute, 10*time.Second)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock whose context ends while waiting: %v, want one wrapping context.DeadlineExceeded", err)
	}
	if got := c.Get(ctx, key).Val(); got != token {
		t.Fatalf("failed Lock calls changed the lock to %q", got)
	}
	unlock()
	if n := c.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("the lock key is still there after unlock")
	}
	unlock() // idempotent

	// A lease of zero means DefaultLockLease.
	unlock, err = s.Lock(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if ttl := c.PTTL(ctx, key).Val(); ttl <= redisstore.DefaultLockLease-5*time.Second || ttl > redisstore.DefaultLockLease {
		t.Fatalf("PTTL of a lock taken with lease 0: %v, want about %v", ttl, redisstore.DefaultLockLease)
	}
}

// TestLockRenewal holds a lock past its lease: renewal keeps it, and stops
// with unlock. It waits for renewals to happen, counting them, rather than
// for a fixed time, so a slow machine only makes it take longer; the lease
// is long enough that a renewal delayed by a loaded machine still comes in
// time.
func TestLockRenewal(t *testing.T) {
	h := &countHook{}
	c := newClient(t, h)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	key := prefix + "lock:" + id
	const lease = time.Second

	unlock, err := s.Lock(ctx, id, 0, lease)
	if err != nil {
		t.Fatal(err)
	}
	token := c.Get(ctx, key).Val()
	// Four renewals, one every lease/3: the lock has outlived its first
	// lease by then.
	const renewals = 4
	for n := 0; n < renewals; {
		time.Sleep(lease / 10)
		_, cmds := h.take()
		for _, cmd := range cmds {
			if name := cmd.Name(); name == "evalsha" || name == "eval" {
				n++
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%d renewals seen before the test's deadline, want %d", n, renewals)
		}
	}
	if got := c.Get(ctx, key).Val(); got != token {
		t.Fatalf("after %d renewals the lock holds %q, want the holder's token %q: renewal failed", renewals, got, token)
	}
	if _, err := s.Lock(ctx, id, 0, lease); !errors.Is(err, redisstore.ErrLocked) {
		t.Fatalf("a second holder after %d renewals: %v", renewals, err)
	}
	unlock()
	if n := c.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("the lock key is still there after unlock")
	}
	// Renewal has stopped: the client sends nothing more.
	h.reset()
	time.Sleep(2 * lease)
	if n, cmds := h.take(); n != 0 {
		t.Fatalf("after unlock the client still sent [%s]", names(cmds))
	}
}

// TestLockNotStolen checks that a holder whose lease ran out and whose lock
// went to someone else never deletes nor extends the new holder's lock.
func TestLockNotStolen(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	key := prefix + "lock:" + id

	const lease = 300 * time.Millisecond
	unlock, err := s.Lock(ctx, id, 0, lease)
	if err != nil {
		t.Fatal(err)
	}
	// Another holder now has the lock (as if the lease had run out).
	if err := c.Set(ctx, key, "other-holder", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * lease) // renewals come and find the token gone
	if ttl := c.PTTL(ctx, key).Val(); ttl <= lease {
		t.Fatalf("the old holder's renewal moved the new holder's lease to %v", ttl)
	}
	unlock()
	if got := c.Get(ctx, key).Val(); got != "other-holder" {
		t.Fatalf("the old holder's unlock changed the lock to %q", got)
	}
}

// TestLockReleasedWhenContextEnds checks that a holder whose context ends
// without unlocking releases the lock long before its lease ends.
func TestLockReleasedWhenContextEnds(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	key := prefix + "lock:" + id

	holderCtx, cancel := context.WithCancel(context.Background())
	if _, err := s.Lock(holderCtx, id, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, key).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the lock key is still there 5s after its holder's context ended (lease: one hour)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLockCrashRelease takes a lock through a client of its own, then
// closes that client without unlocking, as a crashed process would: the
// holder can no longer renew nor release, and the lock must be free again
// once its lease has run out.
func TestLockCrashRelease(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	key := prefix + "lock:" + id

	holder := redis.NewClient(&redis.Options{Addr: redisAddr(), MaxRetries: -1})
	crashed := redisstore.New(holder, redisstore.WithKeyPrefix(prefix))
	const lease = time.Second
	holderCtx, stopHolder := context.WithCancel(context.Background())
	defer stopHolder() // ends the dead holder's renewal goroutine
	if _, err := crashed.Lock(holderCtx, id, 0, lease); err != nil {
		t.Fatal(err)
	}
	oldToken := c.Get(ctx, key).Val()
	if _, err := s.Lock(ctx, id, 0, time.Minute); !errors.Is(err, redisstore.ErrLocked) {
		t.Fatalf("the lock is not held: %v", err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	unlock, err := s.Lock(ctx, id, lease+5*time.Second, time.Minute)
	if err != nil {
		t.Fatalf("the lock of a holder whose client is closed is not free within its lease (%v) and 5s of slack: %v", lease, err)
	}
	defer unlock()
	t.Logf("the lock of the closed client was taken over after %v (lease %v)", time.Since(start).Round(time.Millisecond), lease)
	newToken := c.Get(ctx, key).Val()
	if newToken == oldToken || !hexToken.MatchString(newToken) {
		t.Fatalf("lock token %q after the takeover, old %q", newToken, oldToken)
	}
	// The dead holder's release (its context ends now) cannot reach the
	// server, and could not delete the new holder's lock anyway.
	stopHolder()
	if got := c.Get(ctx, key).Val(); got != newToken {
		t.Fatalf("the new holder's lock changed to %q", got)
	}
}

// TestUserIndex checks the layout of the per-user set, its expiry, and
// that UserSessions prunes the IDs of sessions that are gone.
func TestUserIndex(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	user := "ann {tag} \x00ü"
	key := prefix + "user:" + user

	s1, s2, s3, s4 := storetest.NewID(), storetest.NewID(), storetest.NewID(), storetest.NewID()
	for _, id := range []string{s1, s2} {
		if err := s.Save(ctx, id, rec(time.Now(), user, "a", "1"), time.Now().Add(4*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(ctx, prefix+s3, "garbage", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	exp2h := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
	link := func(id string, exp time.Time) {
		t.Helper()
		if err := s.LinkUser(ctx, user, id, exp); err != nil {
			t.Fatal(err)
		}
	}
	link(s1, exp2h)
	link(s2, exp2h.Add(-time.Hour)) // earlier: the set's expiry stays
	if typ := c.Type(ctx, key).Val(); typ != "set" {
		t.Fatalf("TYPE %q = %q, want set", key, typ)
	}
	if got := c.PExpireTime(ctx, key).Val(); got != time.Duration(exp2h.UnixMilli())*time.Millisecond {
		t.Fatalf("PEXPIRETIME of the user set %v, want %d ms (the latest link)", got, exp2h.UnixMilli())
	}
	exp3h := exp2h.Add(time.Hour)
	link(s2, exp3h) // later: the set's expiry moves
	if got := c.PExpireTime(ctx, key).Val(); got != time.Duration(exp3h.UnixMilli())*time.Millisecond {
		t.Fatalf("PEXPIRETIME of the user set %v, want %d ms", got, exp3h.UnixMilli())
	}
	link(s3, exp2h) // garbage under the session key
	link(s4, exp2h) // never saved
	members := c.SMembers(ctx, key).Val()
	slices.Sort(members)
	want := []string{s1, s2, s3, s4}
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Fatalf("SMEMBERS %v, want %v", members, want)
	}

	list := func() []string {
		t.Helper()
		ids, err := s.UserSessions(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	want = []string{s1, s2}
	slices.Sort(want)
	if got := list(); !slices.Equal(got, want) {
		t.Fatalf("UserSessions %v, want %v", got, want)
	}
	// The dead IDs were pruned from the set.
	members = c.SMembers(ctx, key).Val()
	slices.Sort(members)
	if !slices.Equal(members, want) {
		t.Fatalf("SMEMBERS after UserSessions %v, want %v (pruned)", members, want)
	}
	if err := s.Delete(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{s1}) {
		t.Fatalf("UserSessions after Delete %v, want [%s]", got, s1)
	}
	if err := s.UnlinkUser(ctx, user, s1); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, key).Val(); n != 0 {
		t.Fatalf("the user set is still there once empty")
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("UserSessions after UnlinkUser %v, want none", got)
	}
}

// TestRange checks that Range sees every live session under its own prefix
// once, and nothing else: not other prefixes (even ones its prefix matches
// as a glob pattern), locks, user sets, expired or malformed hashes.
func TestRange(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	root := runPrefix(t, c)
	prefix := root + "p*?[x]\\:" // special in a SCAN pattern
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	other := redisstore.New(c, redisstore.WithKeyPrefix(root+"pAAx\\:"))

	type sess struct {
		data []byte
		exp  time.Time
	}
	want := map[string]sess{}
	const n = 1234 // more than one SCAN batch
	for i := range n {
		id := storetest.NewID()
		data := []byte(fmt.Sprint("not a record ", i))
		if i%2 == 0 {
			data = rec(time.Unix(1700000000, 0), "", "i", fmt.Sprint(i))
		}
		exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		if err := s.Save(ctx, id, data, exp); err != nil {
			t.Fatal(err)
		}
		want[id] = sess{data, exp}
	}
	if err := other.Save(ctx, storetest.NewID(), []byte("other prefix"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	locked := storetest.NewID()
	unlock, err := s.Lock(ctx, locked, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.LinkUser(ctx, "someone", locked, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	hdr := string(sessions.RecordHeader(time.Now(), ""))
	expired := ms(time.Now().Add(-time.Minute).UnixMilli())
	if err := c.HSet(ctx, prefix+storetest.NewID(), "h", "h"+hdr, "e", expired).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, prefix+storetest.NewID(), "k:a", "k\x01ano header, no expiry").Err(); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	err = s.Range(ctx, func(id string, data []byte, exp time.Time) bool {
		seen[id]++
		w, ok := want[id]
		if !ok {
			t.Errorf("Range gave %q, not a live session of this store", id)
			return true
		}
		if !bytes.Equal(data, w.data) || !exp.Equal(w.exp) {
			t.Errorf("Range gave %s: %q until %v, want %q until %v", id[:6], data, exp, w.data, w.exp)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("session %s seen %d times, want once", id[:6], seen[id])
		}
	}

	calls := 0
	if err := s.Range(ctx, func(string, []byte, time.Time) bool { calls++; return calls < 10 }); err != nil {
		t.Fatal(err)
	}
	if calls != 10 {
		t.Fatalf("Range made %d calls, want 10: it must stop when fn returns false", calls)
	}
}
