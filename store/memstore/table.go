package memstore

// table is a shard's index of sessions, in two parts: the entries, dense
// in one slice in no particular order, and an open-addressing hash index
// with linear probing whose 8-byte cells hold part of an entry's hash and
// its position. An entry holds the key's 64-bit keyed hash and the slot of
// the session's bytes, 32 bytes in all; the key itself is the first thing
// in those bytes, where the caller checks it (the same function passed to
// find and put) when the hash matches.
//
// Adding a session appends its entry, next to the last one, and fills one
// cell of an index a quarter the size of the entries: in a large store,
// where a random access is a cache miss, it misses in that small index
// only. Like the rest of the store it holds no pointers.
//
// Removal moves the last entry into the gap and shifts the following cells
// of the index cluster back (no tombstones), so a lookup never walks past
// removed entries, and both parts shrink when a sweep leaves them mostly
// empty.
type table struct {
	e   []entry  // the entries in use
	idx []uint64 // 0, or an entry's hash>>32 (high half) and its position + 1; len 0 or a power of two
	n   int      // len(e)
}

type entry struct {
	h  uint64 // the key's hash, with usedBit set
	sl slot
}

// usedBit is set in the hash of every key, so no entry has h == 0. An
// entry's home in the index is h>>32 & (len(idx)-1); the store picks the
// shard from the lowest bits. Neither uses this bit.
const usedBit = 1 << 31

func (e *entry) used() bool { return e.h != 0 }

// cell is the index cell of the entry of hash h at position p.
func cell(h uint64, p int) uint64 { return h>>32<<32 | uint64(p+1) }

func cellPos(c uint64) int { return int(uint32(c)) - 1 }

func cellHome(c uint64, mask uint32) uint32 { return uint32(c>>32) & mask }

// minTable is the smallest index allocated: 128 bytes.
const minTable = 16

// find returns the position of the entry of hash h whose slot same
// accepts, or -1.
func (t *table) find(h uint64, same func(slot) bool) int {
	if t.n == 0 {
		return -1
	}
	mask := uint32(len(t.idx) - 1)
	for i := uint32(h>>32) & mask; ; i = (i + 1) & mask {
		c := t.idx[i]
		if c == 0 {
			return -1
		}
		if c>>32 == h>>32 {
			if p := cellPos(c); t.e[p].h == h && same(t.e[p].sl) {
				return p
			}
		}
	}
}

// put sets the slot of the entry of hash h that same accepts to sl, or adds
// an entry, and returns the slot it replaced, if any.
func (t *table) put(h uint64, sl slot, same func(slot) bool) (old slot, replaced bool) {
	if (t.n+1)*4 > len(t.idx)*3 { // the index at most three quarters full
		t.resize(max(minTable, 2*len(t.idx)))
	}
	mask := uint32(len(t.idx) - 1)
	for i := uint32(h>>32) & mask; ; i = (i + 1) & mask {
		c := t.idx[i]
		if c == 0 {
			t.idx[i] = cell(h, t.n)
			t.e = append(t.e, entry{h: h, sl: sl})
			t.n++
			return slot{}, false
		}
		if c>>32 == h>>32 {
			if p := cellPos(c); t.e[p].h == h && same(t.e[p].sl) {
				old, t.e[p].sl = t.e[p].sl, sl
				return old, true
			}
		}
	}
}

// cellOf returns the index cell of the entry at position p.
func (t *table) cellOf(p int) uint32 {
	mask := uint32(len(t.idx) - 1)
	for i := uint32(t.e[p].h>>32) & mask; ; i = (i + 1) & mask {
		if cellPos(t.idx[i]) == p {
			return i
		}
	}
}

// removeAt removes the entry at position p: the last entry moves to p, so a
// loop over the entries that calls removeAt(p) and then looks at p again
// sees every entry once. In the index, the later cells of the cluster move
// back into the gap where their home allows, so every entry stays
// reachable from its home without tombstones.
func (t *table) removeAt(p int) {
	mask := uint32(len(t.idx) - 1)
	i := t.cellOf(p)
	for j := (i + 1) & mask; t.idx[j] != 0; j = (j + 1) & mask {
		home := cellHome(t.idx[j], mask)
		// idx[j] may fill the gap unless its home lies after the gap.
		if (j-home)&mask >= (j-i)&mask {
			t.idx[i] = t.idx[j]
			i = j
		}
	}
	t.idx[i] = 0
	last := t.n - 1
	if p != last {
		t.idx[t.cellOf(last)] = cell(t.e[last].h, p)
		t.e[p] = t.e[last]
	}
	t.e[last] = entry{}
	t.e = t.e[:last]
	t.n--
}

// shrinkIfSparse shrinks the index once it is less than an eighth full,
// and the entries' slice once it is less than a quarter full, so a store
// that once held many sessions gives the memory back after they expire.
func (t *table) shrinkIfSparse() {
	if cap(t.e) > minTable && t.n*4 < cap(t.e) {
		t.e = append(make([]entry, 0, max(minTable, 2*t.n)), t.e...)
	}
	if len(t.idx) <= minTable || t.n*8 >= len(t.idx) {
		return
	}
	size := minTable
	for size*3 < t.n*4*2 { // leave it at most three eighths full
		size *= 2
	}
	if size < len(t.idx) {
		t.resize(size)
	}
}

// resize rebuilds the index with size cells.
func (t *table) resize(size int) {
	t.idx = make([]uint64, size)
	mask := uint32(size - 1)
	for p := range t.e {
		j := uint32(t.e[p].h>>32) & mask
		for t.idx[j] != 0 {
			j = (j + 1) & mask
		}
		t.idx[j] = cell(t.e[p].h, p)
	}
}
