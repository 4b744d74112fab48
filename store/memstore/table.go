package memstore

// table is a shard's index of sessions: an open-addressing hash table with
// linear probing over one slice of fixed-size entries. Compared with a Go
// map it holds the key, the slot and the hash side by side in one 64-byte
// entry, so finding a session in a large store touches one cache line
// instead of a control word and then a slot, and an insert needs no second
// lookup. Like the rest of the store it holds no pointers.
//
// Deletion shifts the following entries of the cluster back (no
// tombstones), so a lookup never walks past deleted entries, and the table
// shrinks when a sweep leaves it mostly empty.
type table struct {
	e []entry // len is 0 or a power of two
	n int     // entries in use
}

type entry struct {
	k    key
	sl   slot
	h    uint32 // the key's hash: the entry's home is h & (len(e)-1)
	used bool
}

// minTable is the smallest table allocated: one with a few entries costs
// about a kilobyte.
const minTable = 16

// find returns the index of k's entry, or -1.
func (t *table) find(k *key, h uint32) int {
	if t.n == 0 {
		return -1
	}
	mask := uint32(len(t.e) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := &t.e[i]
		if !e.used {
			return -1
		}
		if e.h == h && e.k == *k {
			return int(i)
		}
	}
}

// put sets k's slot to sl and returns the slot it replaced, if any.
func (t *table) put(k *key, h uint32, sl slot) (old slot, replaced bool) {
	if (t.n+1)*4 > len(t.e)*3 { // at most three quarters full
		t.resize(max(minTable, 2*len(t.e)))
	}
	mask := uint32(len(t.e) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := &t.e[i]
		if !e.used {
			*e = entry{k: *k, sl: sl, h: h, used: true}
			t.n++
			return slot{}, false
		}
		if e.h == h && e.k == *k {
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
	for j := (i + 1) & mask; t.e[j].used; j = (j + 1) & mask {
		home := int(t.e[j].h) & mask
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
		if !old[i].used {
			continue
		}
		j := old[i].h & mask
		for t.e[j].used {
			j = (j + 1) & mask
		}
		t.e[j] = old[i]
	}
}
