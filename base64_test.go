package sessions

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// Every entry of the pair table, in both halves of a 3-byte group and in
// both loops (six bytes at a time, then three), matches encoding/base64.
func TestBase64MatchesEncodingBase64(t *testing.T) {
	var got, want []byte
	for v := range 1 << 12 {
		w := (v*2654435761 + 7) & 0xfff // another 12-bit value in the other half
		x := uint32(v)<<12 | uint32(w)
		y := uint32(w)<<12 | uint32(v)
		// 9 bytes: one pass of the six-byte loop, one of the three-byte loop.
		src := []byte{byte(x >> 16), byte(x >> 8), byte(x), byte(y >> 16), byte(y >> 8), byte(y), byte(x >> 16), byte(x >> 8), byte(x)}
		got = appendBase64URL(got[:0], src, false)
		want = base64.RawURLEncoding.AppendEncode(want[:0], src)
		if !bytes.Equal(got, want) {
			t.Fatalf("% x: got %s, want %s", src, got, want)
		}
	}
}

// Every length up to 300, with and without padding, random contents, and a
// non-empty dst that must be kept.
func TestBase64LengthsAndPadding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		for _, pad := range []bool{false, true} {
			enc := base64.RawURLEncoding
			if pad {
				enc = base64.URLEncoding
			}
			got := appendBase64URL([]byte("prefix|"), src, pad)
			want := enc.AppendEncode([]byte("prefix|"), src)
			if !bytes.Equal(got, want) {
				t.Fatalf("len %d pad %v: got %s, want %s", n, pad, got, want)
			}
		}
	}
	// Tails of one and two bytes, every value.
	for v := range 1 << 16 {
		for _, src := range [][]byte{{byte(v)}, {byte(v >> 8), byte(v)}} {
			if got, want := appendBase64URL(nil, src, true), base64.URLEncoding.AppendEncode(nil, src); !bytes.Equal(got, want) {
				t.Fatalf("% x: got %s, want %s", src, got, want)
			}
		}
	}
}
