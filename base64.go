package sessions

import (
	"encoding/binary"
	"slices"
)

// The cookie and the IDs are base64url text, made on every new session.
// encoding/base64 looks each 6-bit group up on its own; this encoder looks
// up 12 bits at a time, two characters per lookup, and writes four
// characters per store. Its output is encoding/base64's, byte for byte
// (TestBase64MatchesEncodingBase64 checks every 3-byte input).

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// base64Pairs[v] holds the two characters that encode the 12 bits v, the
// first in the low byte.
var base64Pairs = func() (t [1 << 12]uint16) {
	for v := range t {
		t[v] = uint16(base64URLAlphabet[v>>6]) | uint16(base64URLAlphabet[v&63])<<8
	}
	return t
}()

// appendBase64URL appends the base64url encoding of src to dst, with '='
// padding if pad (base64.URLEncoding) or without (base64.RawURLEncoding).
func appendBase64URL(dst, src []byte, pad bool) []byte {
	full := len(src) / 3
	size := full * 4
	switch rem := len(src) - full*3; {
	case rem > 0 && pad:
		size += 4
	case rem > 0:
		size += rem + 1
	}
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	out := dst[start:]
	// Six bytes at a time while eight can be read, then three at a time.
	i, j := 0, 0
	for ; i+8 <= len(src); i, j = i+6, j+8 {
		v := binary.BigEndian.Uint64(src[i:])
		a, b := v>>40, v>>16&0xffffff
		binary.LittleEndian.PutUint64(out[j:], uint64(base64Pairs[a>>12])|uint64(base64Pairs[a&0xfff])<<16|
			uint64(base64Pairs[b>>12])<<32|uint64(base64Pairs[b&0xfff])<<48)
	}
	for ; i+3 <= len(src); i, j = i+3, j+4 {
		v := uint32(src[i])<<16 | uint32(src[i+1])<<8 | uint32(src[i+2])
		binary.LittleEndian.PutUint32(out[j:], uint32(base64Pairs[v>>12])|uint32(base64Pairs[v&0xfff])<<16)
	}
	switch len(src) - i {
	case 1:
		v := uint(src[i])
		out[j], out[j+1] = base64URLAlphabet[v>>2], base64URLAlphabet[v<<4&63]
		if pad {
			out[j+2], out[j+3] = '=', '='
		}
	case 2:
		v := uint(src[i])<<8 | uint(src[i+1])
		out[j], out[j+1], out[j+2] = base64URLAlphabet[v>>10], base64URLAlphabet[v>>4&63], base64URLAlphabet[v<<2&63]
		if pad {
			out[j+3] = '='
		}
	}
	return dst
}
