package memcachestore_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memcachestore"
	"github.com/fastsession/sessions/store/storetest"
)

const howToStart = "memcached -d -u root -l 127.0.0.1 -p 11211 -m 128 (or set FASTSESSION_MEMCACHED_ADDR)"

func addr() string {
	if a := os.Getenv("FASTSESSION_MEMCACHED_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:11211"
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// client returns a client of the test server, skipping the test (failing it
// under CI) when the server does not answer a ping.
func client(t *testing.T) *memcache.Client {
	t.Helper()
	c := memcache.New(addr())
	c.Timeout = 2 * time.Second
	c.MaxIdleConns = 16
	ping := memcache.New(addr())
	ping.Timeout = 500 * time.Millisecond
	err := ping.Ping()
	ping.Close()
	if err != nil {
		storetest.Unreachable(t, "memcached at "+addr(), howToStart, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runPrefix returns a key prefix private to this test run.
func runPrefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "fastsession-test-" + hex.EncodeToString(b[:]) + ":"
}

// tracked forwards to a Store and remembers the IDs saved through it, so that
// the test can delete their keys at the end (memcached cannot list keys by
// prefix). Like the Store, it implements sessions.Updater and no other
// optional interface, so storetest runs exactly the store's subtests.
type tracked struct {
	s   *memcachestore.Store
	mu  sync.Mutex
	ids map[string]struct{}
}

func track(t *testing.T, c *memcache.Client, prefix string, s *memcachestore.Store) *tracked {
	tr := &tracked{s: s, ids: map[string]struct{}{}}
	t.Cleanup(func() {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for id := range tr.ids {
			if err := c.Delete(prefix + id); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
				t.Errorf("cleanup: delete %s...: %v", (prefix + id)[:len(prefix)+6], err)
			}
		}
	})
	return tr
}

func (tr *tracked) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	return tr.s.Load(ctx, id)
}

func (tr *tracked) Save(ctx context.Context, id string, data []byte, exp time.Time) error {
	tr.mu.Lock()
	tr.ids[id] = struct{}{}
	tr.mu.Unlock()
	return tr.s.Save(ctx, id, data, exp)
}

func (tr *tracked) Delete(ctx context.Context, id string) error { return tr.s.Delete(ctx, id) }

func (tr *tracked) Update(ctx context.Context, id string, exp time.Time, fn func([]byte) ([]byte, error)) (bool, error) {
	return tr.s.Update(ctx, id, exp, fn) // never creates an item: nothing to track
}

// deleteKeys removes the given raw keys when t ends.
func deleteKeys(t *testing.T, c *memcache.Client, keys ...string) {
	t.Cleanup(func() {
		for _, k := range keys {
			if err := c.Delete(k); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
				t.Errorf("cleanup: delete %s: %v", k, err)
			}
		}
	})
}

func implements[I any](v any) bool {
	_, ok := v.(I)
	return ok
}

func TestContract(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	if _, ok := any(s).(sessions.Toucher); ok {
		t.Fatal("the store implements sessions.Toucher; it must not (the expiry in the value would go stale)")
	}
	var _ sessions.Updater = s
	for name, ok := range map[string]bool{
		"sessions.Locker":      implements[sessions.Locker](s),
		"sessions.UserIndexer": implements[sessions.UserIndexer](s),
		"sessions.Iterator":    implements[sessions.Iterator](s),
		"sessions.DeltaSaver":  implements[sessions.DeltaSaver](s),
	} {
		if ok {
			t.Errorf("the store implements %s; memcached cannot provide it reliably", name)
		}
	}
	tr := track(t, c, prefix, s)
	storetest.Run(t, func(t *testing.T) sessions.Store { return tr })
}

// TestKeyPrefix: the item lives under prefix+ID, and its value is the
// expiry in Unix milliseconds (big-endian, rounded up) followed by the data.
func TestKeyPrefix(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)

	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond).Add(time.Microsecond)
	if err := s.Save(ctx(t), id, []byte("under the prefix"), exp); err != nil {
		t.Fatal(err)
	}
	it, err := c.Get(prefix + id)
	if err != nil {
		t.Fatalf("Get(%q): %v", prefix+id, err)
	}
	if len(it.Value) < 8 || string(it.Value[8:]) != "under the prefix" {
		t.Fatalf("raw value %q: want 8 bytes of expiry then the data", it.Value)
	}
	wantMs := exp.Truncate(time.Millisecond).Add(time.Millisecond).UnixMilli()
	if got := int64(binary.BigEndian.Uint64(it.Value[:8])); got != wantMs {
		t.Fatalf("stored expiry %d ms, want %d (rounded up)", got, wantMs)
	}
	_, gotExp, found, err := s.Load(ctx(t), id)
	if err != nil || !found || gotExp.UnixMilli() != wantMs {
		t.Fatalf("Load: found=%v exp=%v err=%v, want expiry %d ms", found, gotExp, err, wantMs)
	}

	// The default prefix is used when none is given.
	d := memcachestore.New(c)
	id2 := storetest.NewID()
	deleteKeys(t, c, memcachestore.DefaultKeyPrefix+id2)
	if err := d.Save(ctx(t), id2, []byte("default"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("fastsession:" + id2); err != nil {
		t.Fatalf("Get under the default prefix: %v", err)
	}
	// A store with another prefix does not see it.
	if _, _, found, err := s.Load(ctx(t), id2); err != nil || found {
		t.Fatalf("Load through another prefix: found=%v err=%v", found, err)
	}
}

// TestGarbage: values that are not what the store writes load as not found,
// without a panic.
func TestGarbage(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	past := make([]byte, 8)
	binary.BigEndian.PutUint64(past, uint64(time.Now().Add(-time.Minute).UnixMilli()))
	for name, v := range map[string][]byte{
		"empty":            {},
		"short":            []byte("xy"),
		"seven bytes":      []byte("1234567"),
		"zero expiry":      make([]byte, 8),
		"past expiry":      append(past, "data"...),
		"negative expiry":  append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "data"...),
		"min int64 expiry": append([]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, "data"...),
	} {
		id := storetest.NewID()
		deleteKeys(t, c, prefix+id)
		if err := c.Set(&memcache.Item{Key: prefix + id, Value: v, Expiration: 60}); err != nil {
			t.Fatal(err)
		}
		data, _, found, err := s.Load(ctx(t), id)
		if err != nil || found || data != nil {
			t.Errorf("%s value: found=%v data=%q err=%v, want not found", name, found, data, err)
		}
	}
}

// ask sends one text-protocol command straight to the server, on a
// connection of its own closed when t ends, and returns the reader of the
// reply.
func ask(t *testing.T, cmd string) *bufio.Reader {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(conn)
}

// metaTTL asks the server directly (meta get, "mg <key> t") for the seconds
// an item has left; -1 means no expiration.
func metaTTL(t *testing.T, key string) int {
	t.Helper()
	line, err := ask(t, fmt.Sprintf("mg %s t", key)).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "HD" || !strings.HasPrefix(f[1], "t") {
		t.Fatalf("mg %s t: %q", key, line)
	}
	n, err := strconv.Atoi(f[1][1:])
	if err != nil {
		t.Fatalf("mg %s t: %q", key, line)
	}
	return n
}

// serverTime asks memcached for its clock ("stats", STAT time), to the
// second.
func serverTime(t *testing.T) time.Time {
	t.Helper()
	r := ask(t, "stats")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "END" {
			t.Fatal("stats: no STAT time")
		}
		if len(f) == 3 && f[0] == "STAT" && f[1] == "time" {
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("stats: %q", line)
			}
			return time.Unix(n, 0)
		}
	}
}

// TestServerExpiration: the item's memcached expiration is never earlier
// than the session's expiry, both for a relative expiration (up to 30 days)
// and for an absolute one (beyond).
func TestServerExpiration(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	for _, d := range []time.Duration{
		10*time.Minute + 300*time.Millisecond,
		29 * 24 * time.Hour,
		40*24*time.Hour + 500*time.Millisecond,
	} {
		id := storetest.NewID()
		deleteKeys(t, c, prefix+id)
		exp := time.Now().Add(d)
		if err := s.Save(ctx(t), id, []byte("x"), exp); err != nil {
			t.Fatal(err)
		}
		ttl := metaTTL(t, prefix+id)
		left := time.Until(exp)
		if d > 30*24*time.Hour {
			// An absolute expiration: memcached counts what is left on its
			// own clock, which may differ from this machine's by seconds
			// (a clock stepped after memcached started).
			left = exp.Sub(serverTime(t))
		}
		if float64(ttl) < left.Seconds()-1 {
			t.Errorf("expiry in %v: memcached drops the item in %ds, before the session expires", d, ttl)
		}
		if float64(ttl) > left.Seconds()+3 {
			t.Errorf("expiry in %v: memcached keeps the item %ds, far beyond the session's expiry", d, ttl)
		}
	}
}

// TestPastExpiry: a Save with an expiry already passed leaves nothing behind,
// not even an older value.
func TestPastExpiry(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("old"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx(t), id, []byte("new"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, found, err := s.Load(ctx(t), id); err != nil || found {
		t.Fatalf("after a Save in the past: found=%v err=%v", found, err)
	}
	if _, err := c.Get(prefix + id); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("raw Get after a Save in the past: %v, want a cache miss", err)
	}
}

// TestUnusableID: an ID that cannot be part of a memcached key is not found,
// cannot be saved, and deletes without error.
func TestUnusableID(t *testing.T) {
	c := client(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(runPrefix(t)))
	for _, id := range []string{"has space", "line\nbreak", strings.Repeat("a", 300)} {
		if _, _, found, err := s.Load(ctx(t), id); err != nil || found {
			t.Errorf("Load(%.10q): found=%v err=%v", id, found, err)
		}
		if err := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)); !errors.Is(err, memcache.ErrMalformedKey) {
			t.Errorf("Save(%.10q): %v, want an error wrapping memcache.ErrMalformedKey", id, err)
		}
		if err := s.Delete(ctx(t), id); err != nil {
			t.Errorf("Delete(%.10q): %v", id, err)
		}
	}
}

// TestClosedPort: a store whose server refuses connections returns wrapped
// errors, not panics. No server is needed.
func TestClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()

	c := memcache.New(a)
	c.Timeout = time.Second
	t.Cleanup(func() { c.Close() })
	s := memcachestore.New(c)
	id := storetest.NewID()
	_, _, found, errLoad := s.Load(ctx(t), id)
	if found {
		t.Error("Load from a closed port: found")
	}
	errs := map[string]error{
		"Load":   errLoad,
		"Save":   s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)),
		"Delete": s.Delete(ctx(t), id),
	}
	for name, err := range errs {
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("%s from a closed port: %v, want an error wrapping the *net.OpError", name, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "memcachestore: ") {
			t.Errorf("%s from a closed port: %q, want it prefixed with the package name", name, err)
		}
	}
}

func TestInvalidPrefixPanics(t *testing.T) {
	for _, p := range []string{"has space:", "tab\t", "nl\n", "del\x7f", strings.Repeat("p", memcachestore.MaxKeyPrefixLen+1)} {
		func() {
			defer func() {
				r := recover()
				if r == nil {
					t.Errorf("WithKeyPrefix(%.20q) did not panic", p)
					return
				}
				if msg, _ := r.(string); !strings.HasPrefix(msg, "memcachestore: ") {
					t.Errorf("WithKeyPrefix(%.20q) panicked with %v, want a message prefixed with the package name", p, r)
				}
			}()
			memcachestore.WithKeyPrefix(p)
		}()
	}
	// The longest prefix allowed still leaves room for an ID: keys stay valid.
	memcachestore.WithKeyPrefix(strings.Repeat("p", memcachestore.MaxKeyPrefixLen))
	memcachestore.WithKeyPrefix("")

	defer func() {
		if r := recover(); r == nil {
			t.Error("New(nil) did not panic")
		}
	}()
	memcachestore.New(nil)
}

// TestLongestPrefix: with the longest prefix, a session ID of the
// middleware's length still makes a valid key.
func TestLongestPrefix(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	prefix += strings.Repeat("p", memcachestore.MaxKeyPrefixLen-len(prefix))
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save with a %d-byte prefix: %v", len(prefix), err)
	}
	if _, _, found, err := s.Load(ctx(t), id); err != nil || !found {
		t.Fatalf("Load with a %d-byte prefix: found=%v err=%v", len(prefix), found, err)
	}
}

// counter is an Update fn that increments a decimal number.
func counter(cur []byte) ([]byte, error) {
	n, err := strconv.Atoi(string(cur))
	return []byte(strconv.Itoa(n + 1)), err
}

// TestUpdateLayout: Update writes the value and the expiration the way Save
// does: the new expiry in the value's first 8 bytes, and a memcached
// expiration that covers it.
func TestUpdateLayout(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("41"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(2 * time.Hour)
	found, err := s.Update(ctx(t), id, exp, counter)
	if err != nil || !found {
		t.Fatalf("Update: found=%v err=%v", found, err)
	}
	it, err := c.Get(prefix + id)
	if err != nil {
		t.Fatal(err)
	}
	if string(it.Value[8:]) != "42" {
		t.Fatalf("raw value after Update: %q, want the expiry then 42", it.Value)
	}
	if got, want := int64(binary.BigEndian.Uint64(it.Value[:8])), exp.Truncate(time.Millisecond).Add(time.Millisecond).UnixMilli(); got != want {
		t.Fatalf("stored expiry %d ms, want %d", got, want)
	}
	if ttl := metaTTL(t, prefix+id); float64(ttl) < time.Until(exp).Seconds()-1 {
		t.Fatalf("memcached expiration after Update: %ds, shorter than the session's %v", ttl, time.Until(exp))
	}
}

// TestUpdateRacingDelete: a Delete that comes between Update's get and its
// cas wins: Update reports not found and the session stays deleted.
func TestUpdateRacingDelete(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("0"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func(cur []byte) ([]byte, error) {
		calls++
		if err := s.Delete(context.Background(), id); err != nil {
			return nil, err
		}
		return counter(cur)
	})
	if err != nil || found {
		t.Fatalf("Update racing a Delete: found=%v err=%v, want false, nil", found, err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times, want once (the retry's get finds nothing)", calls)
	}
	if _, err := c.Get(prefix + id); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("raw Get after the race: %v, want a cache miss: the Update resurrected the session", err)
	}
}

// TestUpdateRacingDeleteConcurrently: updaters keep incrementing a session
// while it is deleted; once Delete has returned and the updaters have
// stopped, the session is gone. Repeated to hit many interleavings.
func TestUpdateRacingDeleteConcurrently(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	const rounds, updaters = 20, 4
	for r := 0; r < rounds; r++ {
		id := storetest.NewID()
		deleteKeys(t, c, prefix+id)
		if err := s.Save(ctx(t), id, []byte("0"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{}, updaters)
		var wg sync.WaitGroup
		errs := make(chan error, updaters)
		for u := 0; u < updaters; u++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					found, err := s.Update(context.Background(), id, time.Now().Add(time.Hour), counter)
					if i == 0 {
						started <- struct{}{}
					}
					if err != nil {
						errs <- err
						return
					}
					if !found {
						return
					}
					if i == 10000 {
						errs <- errors.New("Update still finds the session 10000 calls in, long after its Delete")
						return
					}
				}
			}()
		}
		for u := 0; u < updaters; u++ {
			<-started // every updater has made at least one Update
		}
		if err := s.Delete(ctx(t), id); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if _, _, found, err := s.Load(ctx(t), id); err != nil || found {
			t.Fatalf("round %d: after Delete and the updaters stopped: found=%v err=%v: an Update resurrected the session", r, found, err)
		}
		if _, err := c.Get(prefix + id); !errors.Is(err, memcache.ErrCacheMiss) {
			t.Fatalf("round %d: raw Get after Delete: %v, want a cache miss", r, err)
		}
	}
}

// TestUpdateRacingSave: a Save between Update's get and its cas makes the
// cas fail; Update starts again and applies fn to what the Save stored.
func TestUpdateRacingSave(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var seen []string
	found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func(cur []byte) ([]byte, error) {
		seen = append(seen, string(cur))
		if len(seen) == 1 {
			if err := s.Save(context.Background(), id, []byte("100"), time.Now().Add(time.Hour)); err != nil {
				return nil, err
			}
		}
		return counter(cur)
	})
	if err != nil || !found {
		t.Fatalf("Update: found=%v err=%v", found, err)
	}
	if strings.Join(seen, ",") != "1,100" {
		t.Fatalf("fn saw %q, want the first value then the one saved in between", seen)
	}
	if got, _, _, _ := s.Load(ctx(t), id); string(got) != "101" {
		t.Fatalf("after the retried Update: %q, want 101 (the save in between kept, then incremented)", got)
	}

	// Deleted, then saved again, between the get and the cas: the retry
	// updates the new session.
	seen = nil
	found, err = s.Update(ctx(t), id, time.Now().Add(time.Hour), func(cur []byte) ([]byte, error) {
		seen = append(seen, string(cur))
		if len(seen) == 1 {
			if err := s.Delete(context.Background(), id); err != nil {
				return nil, err
			}
			if err := s.Save(context.Background(), id, []byte("7"), time.Now().Add(time.Hour)); err != nil {
				return nil, err
			}
		}
		return counter(cur)
	})
	if err != nil || !found || strings.Join(seen, ",") != "101,7" {
		t.Fatalf("Update racing a delete and re-create: found=%v err=%v fn saw %q", found, err, seen)
	}
	if got, _, _, _ := s.Load(ctx(t), id); string(got) != "8" {
		t.Fatalf("after the re-create: %q, want 8", got)
	}
}

// TestUpdateGivesUp: a session that changes between every get and cas makes
// Update give up after a bounded number of attempts, with an error wrapping
// memcache.ErrCASConflict, and store nothing of its own.
func TestUpdateGivesUp(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("0"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func(cur []byte) ([]byte, error) {
		calls++
		if err := s.Save(context.Background(), id, []byte("other"), time.Now().Add(time.Hour)); err != nil {
			return nil, err
		}
		return []byte("mine"), nil
	})
	if !errors.Is(err, memcache.ErrCASConflict) || found {
		t.Fatalf("Update that always conflicts: found=%v err=%v, want an error wrapping memcache.ErrCASConflict", found, err)
	}
	if !strings.HasPrefix(err.Error(), "memcachestore: ") {
		t.Fatalf("error %q lacks the package prefix", err)
	}
	if calls < 2 || calls > 100 {
		t.Fatalf("fn called %d times: want a bounded number of retries", calls)
	}
	if got, _, _, _ := s.Load(ctx(t), id); string(got) != "other" {
		t.Fatalf("after giving up: %q, want the other writer's value", got)
	}
}

// TestUpdateNotLive: missing, expired and malformed values are not found,
// fn is not called, and the value is left as it was.
func TestUpdateNotLive(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	past := make([]byte, 8)
	binary.BigEndian.PutUint64(past, uint64(time.Now().Add(-time.Minute).UnixMilli()))
	for name, v := range map[string][]byte{
		"missing":     nil,
		"empty":       {},
		"seven bytes": []byte("1234567"),
		"past expiry": append(past, "data"...),
		"negative":    append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "data"...),
	} {
		id := storetest.NewID()
		deleteKeys(t, c, prefix+id)
		if v != nil {
			if err := c.Set(&memcache.Item{Key: prefix + id, Value: v, Expiration: 60}); err != nil {
				t.Fatal(err)
			}
		}
		called := false
		found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func([]byte) ([]byte, error) {
			called = true
			return []byte("revived"), nil
		})
		if err != nil || found || called {
			t.Errorf("%s: found=%v err=%v fn called=%v, want false, nil, false", name, found, err, called)
		}
		it, err := c.Get(prefix + id)
		if v == nil {
			if !errors.Is(err, memcache.ErrCacheMiss) {
				t.Errorf("%s: raw Get after Update: %v, want a miss", name, err)
			}
		} else if err != nil || string(it.Value) != string(v) {
			t.Errorf("%s: raw value after Update: %q (err %v), want it untouched", name, it.Value, err)
		}
	}
	// An ID that cannot be part of a key is not found either.
	if found, err := s.Update(ctx(t), "has space", time.Now().Add(time.Hour), counter); err != nil || found {
		t.Errorf("unusable ID: found=%v err=%v", found, err)
	}
}

// TestUpdatePastExpiry: an Update whose new expiry has passed leaves no
// session behind.
func TestUpdatePastExpiry(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	found, err := s.Update(ctx(t), id, time.Now().Add(-time.Second), counter)
	if err != nil || !found {
		t.Fatalf("Update with a past expiry: found=%v err=%v", found, err)
	}
	if _, _, found, err := s.Load(ctx(t), id); err != nil || found {
		t.Fatalf("Load after an Update into the past: found=%v err=%v", found, err)
	}
	if _, err := c.Get(prefix + id); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("raw Get after an Update into the past: %v, want a miss (memcached expired it)", err)
	}
}

// TestUpdateErrors: a cancelled context and a refused connection are
// wrapped errors, and fn's own error comes back as it is.
func TestUpdateErrors(t *testing.T) {
	c := client(t)
	prefix := runPrefix(t)
	s := memcachestore.New(c, memcachestore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	deleteKeys(t, c, prefix+id)
	if err := s.Save(ctx(t), id, []byte("1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	if _, err := s.Update(cancelled, id, time.Now().Add(time.Hour), func(b []byte) ([]byte, error) { called = true; return b, nil }); !errors.Is(err, context.Canceled) || called {
		t.Errorf("Update with a cancelled context: err=%v fn called=%v", err, called)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	closed := memcache.New(a)
	closed.Timeout = time.Second
	t.Cleanup(func() { closed.Close() })
	_, err = memcachestore.New(closed).Update(ctx(t), id, time.Now().Add(time.Hour), counter)
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.HasPrefix(err.Error(), "memcachestore: ") {
		t.Errorf("Update against a closed port: %v, want a prefixed error wrapping the *net.OpError", err)
	}
}
