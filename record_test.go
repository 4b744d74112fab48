package sessions

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
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
