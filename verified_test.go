package sessions

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func testCodec() *cookieCodec {
	return newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, cookieTestKey)
}

func (vc *verifiedCookies) len() int {
	n := 0
	for i := range vc.shards {
		sh := &vc.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
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
	// Put b's entry under a's hash, as a hash collision would.
	e, ok := cc.seen.lookup(b)
	if !ok {
		t.Fatal("b was not remembered")
	}
	h := cc.seen.hash(a)
	sh := &cc.seen.shards[h%verifiedShards]
	sh.mu.Lock()
	sh.m[h] = e
	sh.mu.Unlock()
	if _, ok := cc.seen.lookup(a); ok {
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
	for range 3 * verifiedShards * verifiedPerShard {
		if _, _, err := cc.decode(cc.encode(newID(), now), now.Unix()); err != nil {
			t.Fatal(err)
		}
	}
	if n := cc.seen.len(); n > verifiedShards*verifiedPerShard || n < verifiedShards*verifiedPerShard/2 {
		t.Fatalf("%d values remembered, bound %d", n, verifiedShards*verifiedPerShard)
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
