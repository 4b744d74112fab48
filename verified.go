package sessions

import (
	"hash/maphash"
	"sync/atomic"
)

// A returning visitor sends the same cookie value on every request until it
// is re-issued. verifiedCookies remembers the values whose signature was
// checked, so that the next request with the same value skips the base64
// decoding and the HMAC: a lookup instead of about a microsecond of work.
//
// Only values that passed the full check are remembered, so forged cookies
// never enter it, and it holds at most verifiedSets*verifiedWays entries,
// whatever the traffic. A value may go in any of the verifiedWays slots of
// the set its keyed hash picks; an entry found there is compared with the
// value in constant time, so neither a comparison nor the hash can tell an
// attacker how close a guess came to a remembered value. The expiry window
// is still checked on every use, against the issue time remembered with
// the entry.
//
// The slots hold pointers to entries that never change once stored, so a
// lookup is a few atomic loads: requests of one visitor served on several
// CPUs at once write nothing shared, and no lock is passed between them.
const (
	verifiedSets = 2048
	verifiedWays = 2
)

type verifiedEntry struct {
	value  string // the cookie value, compared in constant time
	id     string // the session ID it carries
	issued int64  // Unix time the cookie was issued
	old    bool   // signed with a previous key
	hash   uint64 // the keyed hash of value; set by remember
}

type verifiedCookies struct {
	seed  maphash.Seed
	slots [verifiedSets * verifiedWays]atomic.Pointer[verifiedEntry]
}

func (vc *verifiedCookies) init() { vc.seed = maphash.MakeSeed() }

func (vc *verifiedCookies) hash(value string) uint64 { return maphash.String(vc.seed, value) }

// set returns the slots a value of hash h may be remembered in.
func (vc *verifiedCookies) set(h uint64) []atomic.Pointer[verifiedEntry] {
	i := int(h%verifiedSets) * verifiedWays
	return vc.slots[i : i+verifiedWays]
}

// lookup returns the remembered entry for value, or nil. The entry must not
// be modified.
func (vc *verifiedCookies) lookup(value string) *verifiedEntry {
	h := vc.hash(value)
	set := vc.set(h)
	for i := range set {
		if e := set[i].Load(); e != nil && e.hash == h && equalConstantTime(e.value, value) {
			return e
		}
	}
	return nil
}

// remember records e, whose value passed the full check, and from then on
// e must not be modified. It takes the slot of its set that holds the same
// value or none; in a full set it replaces the entry in the slot chosen by
// its hash (the bits above those that chose the set).
func (vc *verifiedCookies) remember(e *verifiedEntry) {
	e.hash = vc.hash(e.value)
	set := vc.set(e.hash)
	way := int(e.hash / verifiedSets % verifiedWays)
	for i := range set {
		if old := set[i].Load(); old == nil || old.hash == e.hash {
			way = i
			break
		}
	}
	set[way].Store(e)
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
