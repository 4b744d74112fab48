package memstore

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// The store keeps no pointer per session, so the garbage collector has
// nothing to trace however many sessions it holds: a shard's table (see
// table.go) holds a hash and offsets per session, into a few large byte
// slabs (chunks), which hold each session's key, ID and data.
//
// Chunks are append-only: bytes once within a chunk's length are never
// written again (the free space after it is scratch until kept), so a
// slice handed out by Load stays valid and unchanged for as long as the
// caller keeps it, even after its entry is replaced or the shard compacted.
// Replaced and deleted entries leave dead bytes behind; when they outweigh
// half the live ones, the shard copies its live entries into fresh chunks
// and drops the old ones (compact).

const (
	// chunkMin and chunkMax bound the size of a shard's chunks: the first is
	// small, each next one twice the last, up to chunkMax, the largest size
	// the runtime still allocates from its per-CPU caches. An entry larger
	// than that gets a chunk of its own.
	chunkMin = 1 << 10
	chunkMax = 32 << 10
	// minDead is how many dead bytes a shard tolerates before compacting,
	// whatever its live size, so small shards do not compact on every save.
	minDead = 64 << 10
	// maxEntry bounds one entry (ID and data), keeping offsets in 32 bits.
	maxEntry = 1 << 30
)

// errTooLarge is returned for an entry larger than maxEntry.
var errTooLarge = errors.New("entry larger than 1 GiB")

// idLen is the length of the IDs the sessions package issues: 32 random
// bytes in unpadded base64url.
const idLen = 43

// key is how a shard names a session: the 32 bytes a canonical session ID
// encodes, or for any other ID its SHA-256 (such entries also store the ID
// itself, so it can be checked and given back).
type key [32]byte

// slot is where a session's bytes are: in chunk, from off, the key, then
// idLen bytes of ID (0 for canonical IDs), then size bytes of data.
type slot struct {
	exp   int64 // unix nanoseconds
	chunk uint32
	off   uint32
	size  uint32
	idLen uint32
}

func (sl slot) len() int { return len(key{}) + int(sl.idLen) + int(sl.size) }

// ref names one session: its ID, its key, the key's keyed hash (usedBit
// set), and whether the ID is not canonical, so its entry must hold the ID
// itself.
type ref struct {
	id  string
	k   key
	h   uint64
	odd bool
}

// keyOf returns id's key, and odd true when id is not a canonical session
// ID.
func keyOf(id string) (k key, odd bool) {
	if decodeID(id, &k) {
		return k, false
	}
	return sha256.Sum256([]byte(id)), true
}

// b64 maps each base64url character to its value, and every other byte to
// 0xff.
var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeID decodes a canonical session ID (43 characters of unpadded
// base64url whose last character's unused bits are zero) into k, without
// allocating. Every 32-byte value has exactly one canonical ID, so two IDs
// share a key only if they are the same ID.
func decodeID(id string, k *key) bool {
	if len(id) != idLen {
		return false
	}
	for i, j := 0, 0; i < 40; i, j = i+4, j+3 {
		a, b, c, d := b64[id[i]], b64[id[i+1]], b64[id[i+2]], b64[id[i+3]]
		if a|b|c|d >= 64 {
			return false
		}
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		k[j], k[j+1], k[j+2] = byte(v>>16), byte(v>>8), byte(v)
	}
	a, b, c := b64[id[40]], b64[id[41]], b64[id[42]]
	if a|b|c >= 64 {
		return false
	}
	v := uint32(a)<<12 | uint32(b)<<6 | uint32(c)
	if v&3 != 0 {
		return false // not canonical: unused bits set
	}
	k[30], k[31] = byte(v>>10), byte(v>>2)
	return true
}

// arena is a shard's sessions. Its methods expect the shard's lock held
// (read lock for get and data, write lock for the rest).
type arena struct {
	t      table
	chunks [][]byte // the last one is appended to
	live   int      // bytes the slots in t refer to
	dead   int      // bytes in chunks no slot refers to any more
}

// holds reports whether sl holds r's session: its key, and for an ID that
// is not canonical the ID itself.
func (a *arena) holds(sl slot, r *ref) bool {
	b := a.chunks[sl.chunk][sl.off:]
	if string(b[:len(key{})]) != string(r.k[:]) {
		return false
	}
	if !r.odd {
		return sl.idLen == 0
	}
	return int(sl.idLen) == len(r.id) && string(b[len(key{}):len(key{})+len(r.id)]) == r.id
}

// get returns the session's slot and its index in the table, if the shard
// holds it.
func (a *arena) get(r *ref) (slot, int, bool) {
	i := a.t.find(r.h, func(sl slot) bool { return a.holds(sl, r) })
	if i < 0 {
		return slot{}, -1, false
	}
	return a.t.at(i).sl, i, true
}

// data returns the session data of sl, capped so that appending to it
// cannot reach the bytes that follow.
func (a *arena) data(sl slot) []byte {
	if sl.size == 0 {
		return []byte{}
	}
	start := sl.off + uint32(len(key{})) + sl.idLen
	end := start + sl.size
	return a.chunks[sl.chunk][start:end:end]
}

// id returns the session ID of the entry of sl.
func (a *arena) id(sl slot) string {
	b := a.chunks[sl.chunk][sl.off:]
	if sl.idLen == 0 {
		return base64.RawURLEncoding.EncodeToString(b[:len(key{})])
	}
	return string(b[len(key{}) : len(key{})+int(sl.idLen)])
}

// has reports whether the shard holds r's session.
func (a *arena) has(r *ref) bool {
	_, _, ok := a.get(r)
	return ok
}

// put stores a copy of data for the session until exp and returns the
// entry's slot. data may lie in the free space after the last chunk's
// length (putWritten): it is copied first, to where it starts or earlier,
// and the key and ID then go in front of it.
func (a *arena) put(r *ref, data []byte, exp int64) slot {
	hdr := a.headerLen(r)
	chunk, off := a.reserve(hdr + len(data))
	copy(a.chunks[chunk][int(off)+hdr:], data)
	return a.keep(r, chunk, off, len(data), exp)
}

// headerLen is how many bytes of r's entry come before its data: the key,
// and the ID if it is not canonical.
func (a *arena) headerLen(r *ref) int {
	if r.odd {
		return len(key{}) + len(r.id)
	}
	return len(key{})
}

// keep makes the size bytes of data at off in chunk, after room for the
// header, r's entry until exp: it writes the key and ID in front of them,
// sets the table and compacts if that left too much dead. It returns the
// entry's slot.
func (a *arena) keep(r *ref, chunk, off uint32, size int, exp int64) slot {
	sl := slot{exp: exp, chunk: chunk, off: off, size: uint32(size)}
	if r.odd {
		sl.idLen = uint32(len(r.id))
	}
	b := a.chunks[chunk][off:]
	copy(b, r.k[:])
	copy(b[len(key{}):], r.id[:sl.idLen])
	a.live += sl.len()
	if old, ok := a.t.put(r.h, sl, func(sl slot) bool { return a.holds(sl, r) }); ok {
		a.release(old)
	}
	if a.compactIfWasteful() {
		sl, _, _ = a.get(r)
	}
	return sl
}

// free returns the free space of the last chunk after room for r's key
// and ID, as an empty slice to append the session's data to; a new chunk is
// started if fewer than want bytes are free there. Nothing is reserved:
// putWritten keeps what was appended.
func (a *arena) free(r *ref, want int) []byte {
	hdr := a.headerLen(r)
	c := a.chunks[a.room(hdr+want)]
	start := len(c) + hdr
	return c[start:start:cap(c)]
}

// putWritten is put for data appended to dst, a slice returned by free with
// nothing reserved since: if data lies where dst starts, the chunk grows
// over the header and data where they are; otherwise data is copied, as
// put does. It returns the entry's slot.
func (a *arena) putWritten(r *ref, dst, data []byte, exp int64) slot {
	if cap(dst) == 0 || len(data) == 0 || cap(data) != cap(dst) || &data[:1][0] != &dst[:1][0] {
		return a.put(r, data, exp)
	}
	last := len(a.chunks) - 1
	c := a.chunks[last]
	off := len(c)
	a.chunks[last] = c[:off+a.headerLen(r)+len(data)]
	return a.keep(r, uint32(last), uint32(off), len(data), exp)
}

// reserve makes room for n bytes at the end of the chunks and returns where.
func (a *arena) reserve(n int) (chunk, off uint32) {
	last := a.room(n)
	c := a.chunks[last]
	a.chunks[last] = c[:len(c)+n]
	return uint32(last), uint32(len(c))
}

// room makes sure the last chunk has n bytes free, starting a new chunk if
// need be, and returns the last chunk's index.
func (a *arena) room(n int) int {
	last := len(a.chunks) - 1
	if last >= 0 {
		c := a.chunks[last]
		if cap(c)-len(c) >= n {
			return last
		}
		a.dead += cap(c) - len(c) // the rest of that chunk stays unused
	}
	size := chunkMin
	if last >= 0 {
		size = min(2*cap(a.chunks[last]), chunkMax)
	}
	a.chunks = append(a.chunks, make([]byte, 0, max(size, n)))
	return last + 1
}

// removeAt drops the entry at index i of the table (see table.removeAt
// for what that does to the other indices). The caller compacts when it is
// done removing.
func (a *arena) removeAt(i int) {
	a.release(a.t.at(i).sl)
	a.t.removeAt(i)
}

// removeExpired drops every entry that expired at or before now, and
// shrinks the table if that left it mostly empty.
func (a *arena) removeExpired(now int64) {
	for i := 0; i < a.t.n; {
		if a.t.at(i).sl.exp <= now {
			a.removeAt(i) // another entry may have moved to i: look again
			continue
		}
		i++
	}
	a.t.shrinkIfSparse()
}

func (a *arena) release(sl slot) {
	a.live -= sl.len()
	a.dead += sl.len()
}

// compactIfWasteful compacts when dead bytes outweigh half the live ones
// (and minDead), so the chunks never hold much more than 1.5 times the live
// data plus a chunk. Each compaction copies the live bytes once, and at
// least half as many bytes must die again before the next one, so its cost
// per byte saved is bounded.
func (a *arena) compactIfWasteful() bool {
	if a.dead > minDead && 2*a.dead > a.live {
		a.compact()
		return true
	}
	return false
}

// compact copies the live entries into fresh chunks and drops the old ones.
// Slices of the old chunks that Load handed out keep them alive, unchanged.
func (a *arena) compact() {
	var chunks [][]byte
	var cur []byte
	left := a.live
	a.dead = 0
	for i := range a.t.n {
		sl := &a.t.at(i).sl
		n := sl.len()
		if cap(cur)-len(cur) < n {
			if cur != nil {
				chunks = append(chunks, cur)
				a.dead += cap(cur) - len(cur)
			}
			cur = make([]byte, 0, max(min(left, maxEntry), n))
		}
		src := a.chunks[sl.chunk][sl.off : int(sl.off)+n]
		sl.chunk, sl.off = uint32(len(chunks)), uint32(len(cur))
		cur = append(cur, src...)
		left -= n
	}
	if cur != nil {
		chunks = append(chunks, cur)
	}
	a.chunks = chunks
}

// checkSize refuses an entry too large for 32-bit offsets.
func checkSize(id string, data []byte) error {
	if len(id)+len(data) > maxEntry {
		return errTooLarge
	}
	return nil
}
