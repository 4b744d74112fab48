package memstore

// table is a shard's index of sessions: an open-addressing hash table with
// linear probing over one slice of fixed-size entries. An entry holds the
// key's 64-bit keyed hash and the slot of the session's bytes, 32 bytes in
// all, two to a cache line: the key itself is the first thing in those
// bytes, where the caller checks it (the same function passed to find and
// put) when the hash matches. A large store's index is then half the size
// it would be with the key inline, which is what a new session's insert,
// a cache miss at any size worth measuring, pays for. Like the rest of the
// store it holds no pointers.
//
// Deletion shifts the following entries of the cluster back (no
// tombstones), so a lookup never walks past deleted entries, and the table
// shrinks when a sweep leaves it mostly empty.
type table struct {
	e []entry // len is 0 or a power of two
	n int     // entries in use
}

type entry struct {
	h  uint64 // the key's hash, with usedBit set; 0 for a free entry
	sl slot
}

// usedBit is set in the hash of every key, so no used entry has h == 0.
// The entry's home in the table is h>>32 & (len(e)-1); the store picks the
// shard from the lowest bits. Neither uses this bit.
const usedBit = 1 << 31

func (e *entry) used() bool { return e.h != 0 }

func (e *entry) home(mask uint32) uint32 { return uint32(e.h>>32) & mask }

// minTable is the smallest table allocated: one with a few entries costs
// half a kilobyte.
const minTable = 16

// find returns the index of the entry of hash h whose slot same accepts,
// or -1.
func (t *table) find(h uint64, same func(slot) bool) int {
	if t.n == 0 {
		return -1
	}
	mask := uint32(len(t.e) - 1)
	for i := uint32(h>>32) & mask; ; i = (i + 1) & mask {
		e := &t.e[i]
		if !e.used() {
			return -1
		}
		if e.h == h && same(e.sl) {
			return int(i)
		}
	}
}

// put sets the slot of the entry of hash h that same accepts to sl, or adds
// an entry, and returns the slot it replaced, if any.
func (t *table) put(h uint64, sl slot, same func(slot) bool) (old slot, replaced bool) {
	if (t.n+1)*4 > len(t.e)*3 { // at most three quarters full
		t.resize(max(minTable, 2*len(t.e)))
	}
	mask := uint32(len(t.e) - 1)
	for i := uint32(h>>32) & mask; ; i = (i + 1) & mask {
		e := &t.e[i]
		if !e.used() {
			*e = entry{h: h, sl: sl}
			t.n++
			return slot{}, false
		}
		if e.h == h && same(e.sl) {
			old, e.sl = e.sl, sl
			return old, true
		}
	}
}

// removeAt empties entry i and moves later entries of its cluster back
// into the gap where their home allows, so every entry stays reachable from
// its home without tombstones. An entry may move from after i to i, or from
// the start of the slice to its end when the cluster wraps, never from
// before i to after it: a loop over the entries that calls removeAt(i) and
// then looks at i again sees every entry at least once.
func (t *table) removeAt(i int) {
	mask := len(t.e) - 1
	for j := (i + 1) & mask; t.e[j].used(); j = (j + 1) & mask {
		home := int(t.e[j].home(uint32(mask)))
		// e[j] may fill the gap unless its home lies after the gap.
		if (j-home)&mask >= (j-i)&mask {
			t.e[i] = t.e[j]
			i = j
		}
	}
	t.e[i] = entry{}
	t.n--
}

// shrinkIfSparse halves the table (or more) once it is less than an
// eighth full, so a store that once held many sessions gives the memory
// back after they expire.
func (t *table) shrinkIfSparse() {
	if len(t.e) <= minTable || t.n*8 >= len(t.e) {
		return
	}
	size := minTable
	for size*3 < t.n*4*2 { // leave it at most three eighths full
		size *= 2
	}
	if size < len(t.e) {
		t.resize(size)
	}
}

// resize moves every entry into a new slice of size entries.
func (t *table) resize(size int) {
	old := t.e
	t.e = make([]entry, size)
	mask := uint32(size - 1)
	for i := range old {
		if !old[i].used() {
			continue
		}
		j := old[i].home(mask)
		for t.e[j].used() {
			j = (j + 1) & mask
		}
		t.e[j] = old[i]
	}
}
