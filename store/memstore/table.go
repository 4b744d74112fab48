package memstore

// table is a shard's index of sessions, in two parts: the entries, dense
// in fixed-size pages in no particular order, and an open-addressing hash index
// with linear probing whose 8-byte cells hold part of an entry's hash and
// its position. An entry holds the key's 64-bit keyed hash and the slot of
// the session's bytes, 32 bytes in all; the key itself is the first thing
// in those bytes, where the caller checks it (the same function passed to
// find and put) when the hash matches.
//
// Adding a session appends its entry, next to the last one, and fills one
// cell of an index a quarter the size of the entries: in a large store,
// where a random access is a cache miss, it misses in that small index
// only. Entries never move when the table grows: a full page is followed
// by a new one, so a growing store never copies its entries (a single
// slice grown by append would copy each entry several times, into
// fresh memory each time). Apart from the page list, the table holds no
// pointers.
//
// Removal moves the last entry into the gap and shifts the following cells
// of the index cluster back (no tombstones), so a lookup never walks past
// removed entries, and both parts shrink when a sweep leaves them mostly
// empty.
type table struct {
	// pages hold the entries: position p is pages[p>>pageBits][p&pageMask].
	// Every page before the last one in use is full; pages after it are
	// empty spares, kept until a sweep (shrinkIfSparse). The first page
	// starts small and grows by append up to pageSize, so a small shard
	// stays small; later pages are allocated whole.
	pages [][]entry
	idx   []uint64 // 0, or an entry's hash>>32 (high half) and its position + 1; len 0 or a power of two
	n     int      // entries in use
}

// pageBits sets the page size: 256 entries, 8 KiB, a size the runtime
// allocates from its per-CPU caches.
const (
	pageBits = 8
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

type entry struct {
	h  uint64 // the key's hash, with usedBit set
	sl slot
}

// usedBit is set in the hash of every key, so no entry has h == 0. An
// entry's home in the index is h>>32 & (len(idx)-1); the store picks the
// shard from the lowest bits. Neither uses this bit.
const usedBit = 1 << 31

// cell is the index cell of the entry of hash h at position p.
func cell(h uint64, p int) uint64 { return h>>32<<32 | uint64(p+1) }

func cellPos(c uint64) int { return int(uint32(c)) - 1 }

func cellHome(c uint64, mask uint32) uint32 { return uint32(c>>32) & mask }

// minTable is the smallest index allocated (128 bytes), and the first
// page's first capacity (512 bytes).
const minTable = 16

// at returns the entry at position p, which must be below t.n.
func (t *table) at(p int) *entry { return &t.pages[p>>pageBits][p&pageMask] }

// push appends e at position t.n.
func (t *table) push(e entry) {
	pg := t.n >> pageBits
	if pg == len(t.pages) {
		size := pageSize
		if pg == 0 {
			size = minTable
		}
		t.pages = append(t.pages, make([]entry, 0, size))
	}
	t.pages[pg] = append(t.pages[pg], e)
	t.n++
}

// pop drops the last entry.
func (t *table) pop() {
	pg := (t.n - 1) >> pageBits
	page := t.pages[pg]
	page[len(page)-1] = entry{}
	t.pages[pg] = page[:len(page)-1]
	t.n--
}

// room is how many entries the pages hold without allocating.
func (t *table) room() int {
	n := 0
	for _, pg := range t.pages {
		n += cap(pg)
	}
	return n
}

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
			if p := cellPos(c); t.at(p).h == h && same(t.at(p).sl) {
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
			t.push(entry{h: h, sl: sl})
			return slot{}, false
		}
		if c>>32 == h>>32 {
			if e := t.at(cellPos(c)); e.h == h && same(e.sl) {
				old, e.sl = e.sl, sl
				return old, true
			}
		}
	}
}

// cellOf returns the index cell of the entry at position p.
func (t *table) cellOf(p int) uint32 {
	mask := uint32(len(t.idx) - 1)
	for i := uint32(t.at(p).h>>32) & mask; ; i = (i + 1) & mask {
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
		t.idx[t.cellOf(last)] = cell(t.at(last).h, p)
		*t.at(p) = *t.at(last)
	}
	t.pop()
}

// shrinkIfSparse drops the pages no entry is in, shrinks the first page
// once it is the only one and less than a quarter full, and shrinks the
// index once it is less than an eighth full, so a store that once held
// many sessions gives the memory back after they expire.
func (t *table) shrinkIfSparse() {
	used := (t.n + pageMask) >> pageBits
	clear(t.pages[used:])
	t.pages = t.pages[:used]
	if used == 1 && cap(t.pages[0]) > minTable && t.n*4 < cap(t.pages[0]) {
		t.pages[0] = append(make([]entry, 0, max(minTable, 2*t.n)), t.pages[0]...)
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
	for p := range t.n {
		h := t.at(p).h
		j := uint32(h>>32) & mask
		for t.idx[j] != 0 {
			j = (j + 1) & mask
		}
		t.idx[j] = cell(h, p)
	}
}
