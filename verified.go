package sessions

import (
	"hash/maphash"
	"sync"
)

// A returning visitor sends the same cookie value on every request until it
// is re-issued. verifiedCookies remembers the values whose signature was
// checked, so that the next request with the same value skips the base64
// decoding and the HMAC: a lookup instead of about a microsecond of work.
//
// Only values that passed the full check are remembered, so forged cookies
// never enter it, and it holds at most verifiedShards*verifiedPerShard
// entries, whatever the traffic. An entry is found by a keyed hash of the
// value and then compared with the value in constant time, so neither the
// map's string comparison nor the hash can tell an attacker how close a
// guess came to a remembered value. The expiry window is still checked on
// every use, against the issue time remembered with the entry.
const (
	verifiedShards   = 16
	verifiedPerShard = 256
)

type verifiedEntry struct {
	value  string // the cookie value, compared in constant time
	id     string // the session ID it carries
	issued int64  // Unix time the cookie was issued
	old    bool   // signed with a previous key
}

type verifiedShard struct {
	mu sync.Mutex
	m  map[uint64]verifiedEntry
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

type verifiedCookies struct {
	seed   maphash.Seed
	shards [verifiedShards]verifiedShard
}

func (vc *verifiedCookies) init() {
	vc.seed = maphash.MakeSeed()
	for i := range vc.shards {
		vc.shards[i].m = make(map[uint64]verifiedEntry, verifiedPerShard)
	}
}

func (vc *verifiedCookies) hash(value string) uint64 { return maphash.String(vc.seed, value) }

// lookup returns the remembered entry for value, if any.
func (vc *verifiedCookies) lookup(value string) (verifiedEntry, bool) {
	h := vc.hash(value)
	sh := &vc.shards[h%verifiedShards]
	sh.mu.Lock()
	e, ok := sh.m[h]
	sh.mu.Unlock()
	if !ok || !equalConstantTime(e.value, value) {
		return verifiedEntry{}, false
	}
	return e, true
}

// remember records an entry whose value passed the full check. A full shard
// first forgets one entry, whichever the map yields first.
func (vc *verifiedCookies) remember(e verifiedEntry) {
	h := vc.hash(e.value)
	sh := &vc.shards[h%verifiedShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[h]; !ok && len(sh.m) >= verifiedPerShard {
		for k := range sh.m {
			delete(sh.m, k)
			break
		}
	}
	sh.m[h] = e
}

// equalConstantTime reports whether a and b are equal, taking a time that
// depends only on their lengths. It compares eight bytes at a time.
func equalConstantTime(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v uint64
	i := 0
	for ; i+8 <= len(a); i += 8 {
		v |= le64(a[i:]) ^ le64(b[i:])
	}
	for ; i < len(a); i++ {
		v |= uint64(a[i] ^ b[i])
	}
	return v == 0
}

// le64 reads the first eight bytes of s as a little-endian number, in one
// load.
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
