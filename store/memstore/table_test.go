package memstore

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// Two entries fill a cache line.
func TestEntryIs32Bytes(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n != 32 {
		t.Fatalf("entry is %d bytes, want 32", n)
	}
}

// The table tests name each key by a number kept in its slot's chunk
// field: a slot belongs to k when that number is k's. Keys whose hashOf
// agree get the same 64-bit hash, so only same tells them apart.
type keyNames map[key]uint32

func hash64(k key, hashOf func(key) uint32) uint64 {
	return uint64(hashOf(k))<<32 | usedBit
}

func (kn keyNames) same(k key) func(slot) bool {
	return func(sl slot) bool { return sl.chunk == kn[k] }
}

// checkTable verifies that the table holds exactly the model's entries,
// each reachable from its home.
func checkTable(t *testing.T, tb *table, model map[key]slot, kn keyNames, hashOf func(key) uint32) {
	t.Helper()
	if tb.n != len(model) {
		t.Fatalf("table counts %d entries, model has %d", tb.n, len(model))
	}
	inPages, spares := 0, false
	for i, pg := range tb.pages {
		if len(pg) == 0 {
			spares = true
		} else if spares || (i < len(tb.pages)-1 && len(tb.pages[i+1]) > 0 && len(pg) != pageSize) {
			t.Fatalf("page %d holds %d entries: every page before the last in use must be full, and none after it may hold any", i, len(pg))
		}
		inPages += len(pg)
	}
	if inPages != tb.n {
		t.Fatalf("%d entries in the pages, n = %d", inPages, tb.n)
	}
	cells := 0
	for _, c := range tb.idx {
		if c == 0 {
			continue
		}
		cells++
		if p := cellPos(c); p >= tb.n || tb.at(p).h>>32 != c>>32 {
			t.Fatalf("index cell %x names position %d, which holds hash %x", c, p, tb.at(min(p, tb.n-1)).h)
		}
	}
	if cells != tb.n {
		t.Fatalf("%d index cells in use for %d entries", cells, tb.n)
	}
	for k, sl := range model {
		i := tb.find(hash64(k, hashOf), kn.same(k))
		if i < 0 {
			t.Fatalf("key %x not found", k[:4])
		}
		if tb.at(i).sl != sl {
			t.Fatalf("key %x: slot %+v, want %+v", k[:4], tb.at(i).sl, sl)
		}
	}
}

// Random puts and removals against a Go map as the model. Hashes are drawn
// from a small range, so clusters are long, collide, and wrap around the
// end of the slice: the cases backward-shift deletion must get right.
func TestTableMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, spread := range []uint32{4, 64, 1<<32 - 1} {
		hashOf := func(k key) uint32 {
			h := uint32(k[0]) | uint32(k[1])<<8 | uint32(k[2])<<16 | uint32(k[3])<<24
			if spread == 1<<32-1 {
				return h
			}
			return h%spread + 13 // near the end of the smallest table, so clusters wrap
		}
		var tb table
		model := map[key]slot{}
		kn := keyNames{}
		var keys []key
		for op := range 20_000 {
			switch x := r.IntN(10); {
			case x < 6 || len(keys) == 0: // put, new or existing
				var k key
				if x < 2 && len(keys) > 0 {
					k = keys[r.IntN(len(keys))]
				} else {
					for i := range k {
						k[i] = byte(r.Uint32())
					}
					keys = append(keys, k)
					kn[k] = uint32(len(kn) + 1)
				}
				sl := slot{exp: int64(op + 1), size: uint32(op), chunk: kn[k]}
				old, replaced := tb.put(hash64(k, hashOf), sl, kn.same(k))
				want, had := model[k]
				if replaced != had || old != want {
					t.Fatalf("put: replaced %v %+v, model %v %+v", replaced, old, had, want)
				}
				model[k] = sl
			default: // remove
				j := r.IntN(len(keys))
				k := keys[j]
				keys[j] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
				i := tb.find(hash64(k, hashOf), kn.same(k))
				if _, had := model[k]; (i >= 0) != had {
					t.Fatalf("find %x: index %d, model has it: %v", k[:4], i, had)
				}
				if i >= 0 {
					tb.removeAt(i)
					delete(model, k)
				}
			}
			if op%97 == 0 {
				checkTable(t, &tb, model, kn, hashOf)
			}
		}
		checkTable(t, &tb, model, kn, hashOf)
	}
}

// removeExpired's loop (removeAt, then look at the same index again) sees
// every entry, even when clusters wrap around the end of the table, and the
// table shrinks once it is mostly empty.
func TestRemoveExpiredSeesEveryEntryAndShrinks(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 50 {
		var a arena
		model := map[key]slot{}
		kn := keyNames{}
		hashOf := func(k key) uint32 { return uint32(k[0]) % 8 * 127 } // few homes, far apart: long, wrapping clusters
		n := 200 + round*20
		for range n {
			var k key
			for j := range k {
				k[j] = byte(r.Uint32())
			}
			kn[k] = uint32(len(kn) + 1)
			sl := slot{exp: int64(1 + r.IntN(100)), chunk: kn[k]}
			a.t.put(hash64(k, hashOf), sl, kn.same(k))
			if sl.exp > 90 {
				model[k] = sl
			}
		}
		size := len(a.t.idx)
		a.removeExpired(90)
		checkTable(t, &a.t, model, kn, hashOf)
		if len(model) > 0 && len(model)*8 < size && len(a.t.idx) >= size {
			t.Fatalf("%d of %d entries left and the index kept its %d cells", len(model), n, size)
		}
		if room := a.t.room(); len(model)*4 < n && room >= n {
			t.Fatalf("%d of %d entries left and the entries kept room for %d", len(model), n, room)
		}
	}
}

// A growing table never moves its entries: a store that grows to millions
// of sessions writes each entry once, instead of copying all of them into
// fresh memory every time a single slice outgrew its capacity. Entries move
// only when a removal fills a gap with the last one.
func TestGrowingTableKeepsEntriesInPlace(t *testing.T) {
	var tb table
	kn := keyNames{}
	hashOf := func(k key) uint32 { return uint32(k[0]) | uint32(k[1])<<8 | uint32(k[2])<<16 | uint32(k[3])<<24 }
	add := func(i int) {
		var k key
		k[0], k[1], k[2], k[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		kn[k] = uint32(i + 1)
		tb.put(hash64(k, hashOf), slot{chunk: kn[k], exp: int64(i)}, kn.same(k))
	}
	const first = 3*pageSize + 7
	for i := range first {
		add(i)
	}
	addrs := make([]*entry, first)
	for p := range first {
		addrs[p] = tb.at(p)
	}
	for i := first; i < 50*pageSize; i++ {
		add(i)
	}
	for p, e := range addrs {
		if tb.at(p) != e {
			t.Fatalf("the entry at position %d moved when the table grew", p)
		}
		if e.sl.exp != int64(p) {
			t.Fatalf("the entry at position %d holds expiry %d, want %d", p, e.sl.exp, p)
		}
	}
	if room := tb.room(); room != 50*pageSize {
		t.Fatalf("the pages hold room for %d entries, want exactly the %d in use", room, 50*pageSize)
	}
}
