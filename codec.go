package sessions

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"time"
)

// Codec turns one session value into bytes and back. A Codec must be safe
// for concurrent use, and Decode must return the value with the same dynamic
// type that was encoded. Decode must treat data as untrusted: garbage gives
// an error, never a panic, and never an allocation much larger than data.
type Codec interface {
	// Append appends the encoding of v to dst and returns the extended
	// slice. An unsupported value gives an error wrapping ErrEncode.
	Append(dst []byte, v any) ([]byte, error)
	// Decode returns the value encoded in data. It must not keep data,
	// which may be reused. Bad input gives an error wrapping ErrDecode.
	Decode(data []byte) (any, error)
}

// Register records the concrete type of value for the gob fallback of
// BinaryCodec, so values of that type (user structs, named types) can be
// stored in a session and come back with their own type. Call it at program
// start, once per type, as with gob.Register; it panics on a conflicting
// registration.
func Register(value any) { gob.Register(value) }

// BinaryCodec returns the default codec. It writes a compact tagged binary
// form, with no reflection, for nil, bool, string, every int and uint size,
// float32, float64, []byte, time.Time, time.Duration, []string, []int,
// []any, map[string]any, map[string]string, []map[string]any and
// map[string]int, nesting allowed. Any other type goes through encoding/gob
// and must first be registered with Register. Every value comes back with
// the type it was stored with; a time.Time keeps its instant and zone offset
// (compare with Equal) but not its monotonic reading. Store values, not
// pointers: gob stores what a pointer points to, so a *T comes back as a T.
func BinaryCodec() Codec { return binaryCodec{} }

type binaryCodec struct{}

// Type tags. Their numbers are part of the stored format: never renumber.
const (
	tNil byte = iota
	tFalse
	tTrue
	tString
	tInt
	tInt8
	tInt16
	tInt32
	tInt64
	tUint
	tUint8
	tUint16
	tUint32
	tUint64
	tFloat32
	tFloat64
	tBytes
	tTime
	tDuration
	tStrings
	tInts
	tSlice
	tMap
	tStringMap
	tMapSlice
	tIntMap
	tGob = 0x7f
)

// maxDepth bounds the nesting of decoded containers.
const maxDepth = 64

func (binaryCodec) Append(dst []byte, v any) ([]byte, error) { return appendValue(dst, v, 0) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, fmt.Errorf("%w: nested deeper than %d levels", ErrEncode, maxDepth)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, tNil), nil
	case bool:
		if x {
			return append(dst, tTrue), nil
		}
		return append(dst, tFalse), nil
	case string:
		return appendString(append(dst, tString), x), nil
	case int:
		return binary.AppendVarint(append(dst, tInt), int64(x)), nil
	case int8:
		return binary.AppendVarint(append(dst, tInt8), int64(x)), nil
	case int16:
		return binary.AppendVarint(append(dst, tInt16), int64(x)), nil
	case int32:
		return binary.AppendVarint(append(dst, tInt32), int64(x)), nil
	case int64:
		return binary.AppendVarint(append(dst, tInt64), x), nil
	case uint:
		return binary.AppendUvarint(append(dst, tUint), uint64(x)), nil
	case uint8:
		return binary.AppendUvarint(append(dst, tUint8), uint64(x)), nil
	case uint16:
		return binary.AppendUvarint(append(dst, tUint16), uint64(x)), nil
	case uint32:
		return binary.AppendUvarint(append(dst, tUint32), uint64(x)), nil
	case uint64:
		return binary.AppendUvarint(append(dst, tUint64), x), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(dst, tFloat32), math.Float32bits(x)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, tFloat64), math.Float64bits(x)), nil
	case []byte:
		if x == nil {
			// A nil []byte keeps its type but not its nil-ness.
			x = []byte{}
		}
		dst = binary.AppendUvarint(append(dst, tBytes), uint64(len(x)))
		return append(dst, x...), nil
	case time.Time:
		b, err := x.MarshalBinary()
		if err != nil {
			return dst, fmt.Errorf("%w: time.Time: %w", ErrEncode, err)
		}
		dst = binary.AppendUvarint(append(dst, tTime), uint64(len(b)))
		return append(dst, b...), nil
	case time.Duration:
		return binary.AppendVarint(append(dst, tDuration), int64(x)), nil
	case []string:
		dst = binary.AppendUvarint(append(dst, tStrings), uint64(len(x)))
		for _, s := range x {
			dst = appendString(dst, s)
		}
		return dst, nil
	case []int:
		dst = binary.AppendUvarint(append(dst, tInts), uint64(len(x)))
		for _, n := range x {
			dst = binary.AppendVarint(dst, int64(n))
		}
		return dst, nil
	case []any:
		dst = binary.AppendUvarint(append(dst, tSlice), uint64(len(x)))
		var err error
		for _, e := range x {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case map[string]any:
		return appendMap(append(dst, tMap), x, depth)
	case map[string]string:
		dst = binary.AppendUvarint(append(dst, tStringMap), uint64(len(x)))
		for k, s := range x {
			dst = appendString(appendString(dst, k), s)
		}
		return dst, nil
	case []map[string]any:
		dst = binary.AppendUvarint(append(dst, tMapSlice), uint64(len(x)))
		var err error
		for _, m := range x {
			if dst, err = appendMap(dst, m, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case map[string]int:
		dst = binary.AppendUvarint(append(dst, tIntMap), uint64(len(x)))
		for k, n := range x {
			dst = binary.AppendVarint(appendString(dst, k), int64(n))
		}
		return dst, nil
	default:
		return appendGob(dst, v)
	}
}

func appendMap(dst []byte, m map[string]any, depth int) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	var err error
	for k, e := range m {
		dst = appendString(dst, k)
		if dst, err = appendValue(dst, e, depth+1); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func appendGob(dst []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	// Encoding through a pointer to an interface records the concrete type's
	// registered name, so Decode can rebuild the same type.
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		return dst, fmt.Errorf("%w: %T: %w (register the type with sessions.Register)", ErrEncode, v, err)
	}
	dst = binary.AppendUvarint(append(dst, tGob), uint64(buf.Len()))
	return append(dst, buf.Bytes()...), nil
}

// reader decodes from a byte slice, with every length checked against what
// is left, so garbage never causes a large allocation.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrDecode, what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("unexpected end of data")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if len(r.b) > 0 && r.b[0] < 0x80 { // one byte: lengths of small values
		v := uint64(r.b[0])
		r.b = r.b[1:]
		return v
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) { // a zero last byte is an overlong encoding
		r.fail("bad length or number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) { // overlong encodings are rejected
		r.fail("bad number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads an element count; each element takes at least min bytes.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.fail("count larger than the data")
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length larger than the data")
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) fixed(n int) []byte {
	if len(r.b) < n {
		r.fail("unexpected end of data")
		return make([]byte, n)
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

// intIn reads a varint and checks that it fits in [lo, hi].
func (r *reader) intIn(lo, hi int64) int64 {
	v := r.varint()
	if v < lo || v > hi {
		r.fail("integer out of range")
		return 0
	}
	return v
}

func (r *reader) uintIn(hi uint64) uint64 {
	v := r.uvarint()
	if v > hi {
		r.fail("integer out of range")
		return 0
	}
	return v
}

func (binaryCodec) Decode(data []byte) (any, error) {
	r := reader{b: data}
	v := r.value(0)
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return v, nil
}

func (r *reader) value(depth int) any {
	if depth > maxDepth {
		r.fail("nested too deep")
		return nil
	}
	switch tag := r.byte(); tag {
	case tNil:
		return nil
	case tFalse:
		return false
	case tTrue:
		return true
	case tString:
		return r.string()
	case tInt:
		return int(r.intIn(math.MinInt, math.MaxInt))
	case tInt8:
		return int8(r.intIn(math.MinInt8, math.MaxInt8))
	case tInt16:
		return int16(r.intIn(math.MinInt16, math.MaxInt16))
	case tInt32:
		return int32(r.intIn(math.MinInt32, math.MaxInt32))
	case tInt64:
		return r.varint()
	case tUint:
		return uint(r.uintIn(math.MaxUint))
	case tUint8:
		return uint8(r.uintIn(math.MaxUint8))
	case tUint16:
		return uint16(r.uintIn(math.MaxUint16))
	case tUint32:
		return uint32(r.uintIn(math.MaxUint32))
	case tUint64:
		return r.uvarint()
	case tFloat32:
		return math.Float32frombits(binary.BigEndian.Uint32(r.fixed(4)))
	case tFloat64:
		return math.Float64frombits(binary.BigEndian.Uint64(r.fixed(8)))
	case tBytes:
		return append([]byte{}, r.bytes()...)
	case tTime:
		var t time.Time
		if b := r.bytes(); r.err == nil {
			if err := t.UnmarshalBinary(b); err != nil {
				r.fail("bad time: " + err.Error())
			}
		}
		return t
	case tDuration:
		return time.Duration(r.varint())
	case tStrings:
		n := r.count(1)
		out := make([]string, n)
		for i := range out {
			out[i] = r.string()
		}
		return out
	case tInts:
		n := r.count(1)
		out := make([]int, n)
		for i := range out {
			out[i] = int(r.intIn(math.MinInt, math.MaxInt))
		}
		return out
	case tSlice:
		n := r.count(1)
		out := make([]any, n)
		for i := range out {
			out[i] = r.value(depth + 1)
		}
		return out
	case tMap:
		return r.mapValue(depth)
	case tStringMap:
		n := r.count(2)
		out := make(map[string]string, n)
		for i := 0; i < n && r.err == nil; i++ {
			k := r.string()
			out[k] = r.string()
		}
		return out
	case tMapSlice:
		n := r.count(1)
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = r.mapValue(depth + 1)
		}
		return out
	case tIntMap:
		n := r.count(2)
		out := make(map[string]int, n)
		for i := 0; i < n && r.err == nil; i++ {
			k := r.string()
			out[k] = int(r.intIn(math.MinInt, math.MaxInt))
		}
		return out
	case tGob:
		return r.gob()
	default:
		r.fail(fmt.Sprintf("unknown type tag %d", tag))
		return nil
	}
}

func (r *reader) mapValue(depth int) map[string]any {
	n := r.count(2)
	out := make(map[string]any, n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.string()
		out[k] = r.value(depth + 1)
	}
	return out
}

func (r *reader) gob() (v any) {
	b := r.bytes()
	if r.err != nil {
		return nil
	}
	defer func() {
		// encoding/gob guards itself against bad input, but a panic here
		// must never take a request down: report it as corrupt data.
		if p := recover(); p != nil {
			v = nil
			r.fail(fmt.Sprintf("gob: %v", p))
		}
	}()
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		r.fail("gob: " + err.Error())
		return nil
	}
	return v
}
