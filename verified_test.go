package sessions

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func testCodec() *cookieCodec {
	return newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, cookieTestKey)
}

func (vc *verifiedCookies) len() int {
	n := 0
	for i := range vc.slots {
		if vc.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

// A value checked once is found again without decoding it: the second
// decode allocates nothing (the first allocates the ID) and gives the same
// answer.
func TestVerifiedCookieIsRemembered(t *testing.T) {
	cc := testCodec()
	now := time.Now()
	id := newID()
	value := cc.encode(id, now)
	got, old, err := cc.decode(value, now.Unix())
	if err != nil || got != id || old {
		t.Fatalf("first decode: %q, %v, %v", got, old, err)
	}
	if n := cc.seen.len(); n != 1 {
		t.Fatalf("%d values remembered after one good cookie", n)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if got, _, err := cc.decode(value, now.Unix()); err != nil || got != id {
			t.Fatalf("decode again: %q, %v", got, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("decoding a remembered value allocated %.0f times: it was checked again", allocs)
	}
	// Its age is still checked: the same value, a lifetime later.
	if _, _, err := cc.decode(value, now.Add(time.Hour+2*time.Second).Unix()); err != errCookieExpired {
		t.Fatalf("a remembered value past the lifetime: %v, want errCookieExpired", err)
	}
}

// Values that fail the check are never remembered: a flood of forged or
// tampered cookies leaves the cache empty.
func TestRejectedCookiesAreNotRemembered(t *testing.T) {
	cc := testCodec()
	now := time.Now()
	good := cc.encode(newID(), now)
	// The last characters are left alone: base64 ignores the unused bits of
	// the final one, so some changes there decode to the same, valid bytes.
	n := len(good) - 3
	for i := range 1000 {
		bad := []byte(good)
		bad[i%n] ^= 1 + byte(i/n)
		if _, _, err := cc.decode(string(bad), now.Unix()); err == nil {
			t.Fatalf("tampered value %q accepted", bad)
		}
	}
	forged := craft("sid", []byte("another-secret-key-0123456789abcdef"), now.Unix(), newID())
	if _, _, err := cc.decode(forged, now.Unix()); err == nil {
		t.Fatal("a cookie signed with another key was accepted")
	}
	expired := cc.encode(newID(), now.Add(-2*time.Hour))
	if _, _, err := cc.decode(expired, now.Unix()); err != errCookieExpired {
		t.Fatalf("expired cookie: %v", err)
	}
	if n := cc.seen.len(); n != 0 {
		t.Fatalf("%d rejected values were remembered", n)
	}
}

// An entry found under the value's hash still has to be that value.
func TestRememberedEntryMustMatchTheValue(t *testing.T) {
	cc := testCodec()
	now := time.Now()
	a, b := cc.encode(newID(), now), cc.encode(newID(), now)
	if _, _, err := cc.decode(b, now.Unix()); err != nil {
		t.Fatal(err)
	}
	// Put b's entry, with a's hash, in every slot a may be found in, as a
	// hash collision would.
	e := cc.seen.lookup(b)
	if e == nil {
		t.Fatal("b was not remembered")
	}
	forged := *e
	forged.hash = cc.seen.hash(a)
	set := cc.seen.set(forged.hash)
	for i := range set {
		set[i].Store(&forged)
	}
	if cc.seen.lookup(a) != nil {
		t.Fatal("lookup returned another value's entry")
	}
	if id, _, err := cc.decode(a, now.Unix()); err != nil || id == e.id {
		t.Fatalf("decode of a under a colliding entry: %q, %v (b's ID is %q)", id, err, e.id)
	}
}

// However many visitors, the cache stays within its bound.
func TestVerifiedCookiesAreBounded(t *testing.T) {
	cc := testCodec()
	now := time.Now()
	const capacity = verifiedSets * verifiedWays
	for range 3 * capacity {
		if _, _, err := cc.decode(cc.encode(newID(), now), now.Unix()); err != nil {
			t.Fatal(err)
		}
	}
	if n := cc.seen.len(); n > capacity || n < capacity/2 {
		t.Fatalf("%d values remembered, bound %d", n, capacity)
	}
}

func TestEqualConstantTime(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"", "", true}, {"abc", "abc", true}, {"abc", "abd", false}, {"abc", "ab", false}, {"xbc", "abc", false},
	} {
		if got := equalConstantTime(c.a, c.b); got != c.want {
			t.Errorf("equalConstantTime(%q, %q) = %v", c.a, c.b, got)
		}
	}
	// Every length across the eight-byte steps and the tail, with one
	// differing bit at every position.
	for n := range 40 {
		a := []byte(strings.Repeat("k", n))
		if !equalConstantTime(string(a), string(a)) {
			t.Fatalf("length %d: equal strings compare unequal", n)
		}
		for i := range n {
			b := bytes.Clone(a)
			b[i] ^= 0x80
			if equalConstantTime(string(a), string(b)) {
				t.Fatalf("length %d: a difference at byte %d is missed", n, i)
			}
		}
	}
}

// Values whose hashes pick the same set are remembered side by side, up to
// the set's ways; one more replaces one of them, and whatever the set holds
// is still found under its own value only.
//
// Which slot of a set a value takes depends on its hash, so the check runs
// on several sets: a cache that put a value anywhere but in a free slot
// would drop one of the first values of some set.
func TestVerifiedSetHoldsItsWays(t *testing.T) {
	for range 8 {
		checkVerifiedSet(t, testCodec())
	}
}

func checkVerifiedSet(t *testing.T, cc *cookieCodec) {
	t.Helper()
	now := time.Now()
	bySet := map[uint64][]string{}
	var same []string
	for len(same) <= verifiedWays {
		v := cc.encode(newID(), now)
		s := cc.seen.hash(v) % verifiedSets
		bySet[s] = append(bySet[s], v)
		same = bySet[s]
	}
	ids := map[string]string{}
	for i, v := range same {
		id, _, err := cc.decode(v, now.Unix())
		if err != nil {
			t.Fatal(err)
		}
		ids[v] = id
		if i < verifiedWays {
			// Every value so far fits: all of them are found.
			for _, w := range same[:i+1] {
				if e := cc.seen.lookup(w); e == nil || e.id != ids[w] {
					t.Fatalf("after %d values of one set, value %q is not found with its ID", i+1, w)
				}
			}
		}
	}
	found := 0
	for _, v := range same {
		if e := cc.seen.lookup(v); e != nil {
			if e.id != ids[v] {
				t.Fatalf("value %q found with another value's ID", v)
			}
			found++
		}
	}
	if found != verifiedWays {
		t.Fatalf("%d of %d values of one set found, want %d (its ways)", found, len(same), verifiedWays)
	}
	if n := cc.seen.len(); n != verifiedWays {
		t.Fatalf("%d entries remembered after %d values of one set", n, len(same))
	}
}

// Visitors served on several goroutines at once, each sending its own
// cookie again and again (and some sharing one), always get their own ID
// back, whether the value is checked in full or remembered, and the race
// detector sees no conflict between lookups and the entries stored.
func TestVerifiedCookiesConcurrently(t *testing.T) {
	cc := testCodec()
	now := time.Now()
	const visitors = 64
	values, ids := make([]string, visitors), make([]string, visitors)
	for i := range values {
		ids[i] = newID()
		values[i] = cc.encode(ids[i], now)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for n := range 2000 {
				i := (g*7 + n*13) % visitors
				id, _, err := cc.decode(values[i], now.Unix())
				if err != nil || id != ids[i] {
					errs <- fmt.Errorf("visitor %d: got %q, %v; want %q", i, id, err, ids[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
