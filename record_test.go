package sessions

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// skipFields agrees with walking the fields one by one with field, on
// well-formed fields of short and long lengths and on every truncation and
// corruption of them.
func TestSkipFieldsAgreesWithField(t *testing.T) {
	walk := func(b []byte, n int) (int, bool) {
		rest := b
		for ; n > 0; n-- {
			var ok bool
			if _, rest, ok = field(rest); !ok {
				return 0, false
			}
		}
		return len(b) - len(rest), true
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		var b []byte
		n := rng.IntN(6)
		for range n {
			size := rng.IntN(300) // one-byte and two-byte lengths
			b = binary.AppendUvarint(b, uint64(size))
			b = append(b, make([]byte, size)...)
		}
		variants := [][]byte{b, b[:rng.IntN(len(b)+1)], append(bytes.Clone(b), 0x80)}
		if len(b) > 0 {
			c := bytes.Clone(b)
			c[rng.IntN(len(c))] = byte(rng.Uint32())
			variants = append(variants, c)
		}
		for _, v := range variants {
			for k := max(n-1, 0); k <= n+1; k++ {
				wantEnd, wantOK := walk(v, k)
				gotEnd, gotOK := skipFields(v, k)
				if gotOK != wantOK || (gotOK && gotEnd != wantEnd) {
					t.Fatalf("skipFields(%x, %d) = %d, %v; field gives %d, %v", v, k, gotEnd, gotOK, wantEnd, wantOK)
				}
			}
		}
	}
}

// build keeps exactly the entries keep accepts, in their order, then adds
// the changes that are not deletions: byte for byte the record JoinRecord
// makes of them. The records have up to 40 entries, with one-byte and
// two-byte lengths, and keep sets that leave from none to twenty separate
// runs of entries, beyond what build notes in its first walk, so both of its
// ways of copying run. Lookup finds every entry.
func TestBuildMatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sawMany := false
	for range 3000 {
		var fields []Field
		for i := range rng.IntN(41) {
			key := fmt.Sprintf("k%d", i)
			if rng.IntN(8) == 0 {
				key += strings.Repeat("x", 130) // a two-byte length
			}
			fields = append(fields, Field{Key: key, Value: bytes.Repeat([]byte{byte(i)}, rng.IntN(200))})
		}
		header := RecordHeader(time.Unix(1700000000, int64(rng.IntN(1000))), "u")
		base := JoinRecord(header, fields)
		rec, err := parseRecord(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fields {
			if v, ok := rec.lookup(f.Key); !ok || !bytes.Equal(v, f.Value) {
				t.Fatalf("lookup(%.10q) = %x, %v", f.Key, v, ok)
			}
		}
		if _, ok := rec.lookup("absent"); ok {
			t.Fatal("lookup found a key that is not there")
		}
		dropped := map[string]bool{}
		var want []Field
		runs, inRun := 0, false
		for _, f := range fields {
			if rng.IntN(3) == 0 {
				dropped[f.Key] = true
				inRun = false
				continue
			}
			want = append(want, f)
			if !inRun {
				runs++
			}
			inRun = true
		}
		if runs > 8 {
			sawMany = true
		}
		var changes []change
		for i := range rng.IntN(3) {
			ch := change{key: fmt.Sprintf("new%d", i), val: []byte{byte(i)}}
			if i == 1 {
				ch = change{key: "gone", del: true}
			}
			changes = append(changes, ch)
			if !ch.del {
				want = append(want, Field{Key: ch.key, Value: ch.val})
			}
		}
		got := build(nil, rec.created, "u", rec, func(k []byte) bool { return !dropped[string(k)] }, changes)
		if wantRec := JoinRecord(header, want); !bytes.Equal(got, wantRec) {
			t.Fatalf("build gives %x, want %x", got, wantRec)
		}
	}
	if !sawMany {
		t.Fatal("no record had more runs of kept entries than build notes")
	}
}
