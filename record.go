package sessions

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// A record is one session as the store keeps it:
//
//	version   1 byte (recordVersion)
//	created   8 bytes, big-endian Unix nanoseconds
//	user      uvarint length + bytes (reserved; empty)
//	count     uvarint
//	count × { key: uvarint length + bytes; value: uvarint length + codec bytes }
//
// Values stay encoded until a handler reads them, so a request that reads one
// key of a large session decodes one value.
const recordVersion = 1

// recordHeaderLen is the size of version and created.
const recordHeaderLen = 9

type record struct {
	created int64  // unix nanoseconds
	user    string // reserved for the per-user index
	entries []byte // the count and the entries
}

// parseRecord checks the whole of raw and returns its parts. It does not
// allocate beyond the user string and never panics on garbage.
func parseRecord(raw []byte) (record, error) {
	if len(raw) < recordHeaderLen+2 || raw[0] != recordVersion {
		return record{}, fmt.Errorf("%w: not a session record", ErrDecode)
	}
	rec := record{created: int64(binary.BigEndian.Uint64(raw[1:9]))}
	r := reader{b: raw[recordHeaderLen:]}
	rec.user = r.string()
	rec.entries = r.b
	n := r.count(2)
	if r.err != nil {
		return record{}, fmt.Errorf("session record: %w", r.err)
	}
	switch end, ok := skipFields(r.b, 2*n); { // a key, then its value
	case !ok:
		return record{}, fmt.Errorf("session record: %w: bad entry length", ErrDecode)
	case end != len(r.b):
		return record{}, fmt.Errorf("session record: %w: trailing bytes after the entries", ErrDecode)
	}
	return rec, nil
}

// skipFields walks n length-prefixed fields from the start of b and returns
// the offset after them, or ok false if b does not hold them whole. It is
// field without the slices, for checking a record on every load.
func skipFields(b []byte, n int) (end int, ok bool) {
	off := 0
	for ; n > 0; n-- {
		if off < len(b) && b[off] < 0x80 {
			off += 1 + int(b[off])
			continue
		}
		if off >= len(b) {
			return 0, false
		}
		_, rest, ok := field(b[off:])
		if !ok {
			return 0, false
		}
		off = len(b) - len(rest)
	}
	return off, off <= len(b)
}

// field splits a length-prefixed field (uvarint length, then the bytes) off
// the front of b, and reports false if b does not start with a whole one.
// Lengths under 128, one byte, take the short path: every key and most
// values of a session.
func field(b []byte) (f, rest []byte, ok bool) {
	if len(b) > 0 && b[0] < 0x80 {
		end := 1 + int(b[0])
		if end > len(b) {
			return nil, nil, false
		}
		return b[1:end:end], b[end:], true
	}
	r := reader{b: b}
	f = r.bytes()
	return f, r.b, r.err == nil
}

// entryIter walks the entries of a parsed record.
type entryIter struct {
	r reader
	n int
}

func (rec record) iter() entryIter {
	it := entryIter{r: reader{b: rec.entries}}
	if len(rec.entries) > 0 {
		it.n = int(it.r.uvarint())
	}
	return it
}

// next returns the next key and encoded value, or ok false at the end.
// The record was validated by parseRecord, so the reads cannot fail.
func (it *entryIter) next() (key, val []byte, ok bool) {
	if it.n == 0 || it.r.err != nil {
		return nil, nil, false
	}
	it.n--
	var rest []byte
	if key, rest, ok = field(it.r.b); ok {
		val, rest, ok = field(rest)
	}
	if !ok {
		it.r.fail("bad entry length")
		return nil, nil, false
	}
	it.r.b = rest
	return key, val, true
}

// lookup returns the encoded value stored under key. Only the value found
// is sliced; the other entries are skipped.
func (rec record) lookup(key string) ([]byte, bool) {
	b, n := rec.body()
	for off := 0; n > 0; n-- {
		k, val, end, ok := nextEntry(b, off)
		if !ok {
			return nil, false
		}
		if string(k) == key {
			v, _, ok := field(b[val:end])
			return v, ok
		}
		off = end
	}
	return nil, false
}

// body returns the entries of a parsed record, after their count, and the
// count.
func (rec record) body() (b []byte, n int) {
	it := rec.iter()
	return it.r.b, it.n
}

// nextEntry reads the entry at b[off:]: its key, where its value field
// starts and where the entry ends. ok is false if b does not hold a whole
// entry there. Short keys and values, one-byte lengths, take a path that
// slices nothing but the key.
func nextEntry(b []byte, off int) (key []byte, val, end int, ok bool) {
	if off < len(b) && b[off] < 0x80 {
		val = off + 1 + int(b[off])
		if val < len(b) && b[val] < 0x80 {
			if end = val + 1 + int(b[val]); end <= len(b) {
				return b[off+1 : val], val, end, true
			}
			return nil, 0, 0, false
		}
	}
	if off > len(b) {
		return nil, 0, 0, false
	}
	key, rest, ok := field(b[off:])
	if !ok {
		return nil, 0, 0, false
	}
	val = len(b) - len(rest)
	if _, rest, ok = field(rest); !ok {
		return nil, 0, 0, false
	}
	return key, val, len(b) - len(rest), true
}

// appendRecordHeader starts a record.
func appendRecordHeader(dst []byte, created time.Time, user string, count int) []byte {
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(created.UnixNano()))
	dst = appendString(dst, user)
	return binary.AppendUvarint(dst, uint64(count))
}

func appendEntry(dst []byte, key string, val []byte) []byte {
	dst = appendString(dst, key)
	dst = binary.AppendUvarint(dst, uint64(len(val)))
	return append(dst, val...)
}

// SplitRecord splits the data of a session, as the middleware hands it to
// Store.Save, into its header and its fields, for a store that keeps the
// fields of a session separately (see DeltaSaver). The fields' values are
// sub-slices of data; data itself is never written. Data that is not a
// session gives an error wrapping ErrDecode.
func SplitRecord(data []byte) (header []byte, fields []Field, err error) {
	rec, err := parseRecord(data)
	if err != nil {
		return nil, nil, err
	}
	header = data[:len(data)-len(rec.entries)]
	it := rec.iter()
	for k, v, ok := it.next(); ok; k, v, ok = it.next() {
		fields = append(fields, Field{Key: string(k), Value: v})
	}
	return header, fields, nil
}

// JoinRecord is the inverse of SplitRecord: it builds the data of a session
// from a header and fields, in any order. A store that keeps fields
// separately returns its result from Load. The result is a fresh copy:
// JoinRecord neither writes nor keeps header, fields or the fields' values.
func JoinRecord(header []byte, fields []Field) []byte {
	size := len(header) + binary.MaxVarintLen64
	for _, f := range fields {
		size += len(f.Key) + len(f.Value) + 2*binary.MaxVarintLen64
	}
	buf := append(make([]byte, 0, size), header...)
	buf = binary.AppendUvarint(buf, uint64(len(fields)))
	for _, f := range fields {
		buf = appendEntry(buf, f.Key, f.Value)
	}
	return buf
}

// RecordHeader returns the header of a session created at created and
// belonging to user ("" for none), for tests of stores that keep fields
// separately and for tools that build sessions by hand with JoinRecord.
func RecordHeader(created time.Time, user string) []byte {
	b := appendRecordHeader(nil, created, user, 0)
	return b[:len(b)-1] // without the count
}

// build appends to dst a record with the given header fields whose
// entries are those of base that keep accepts, followed by the changes that
// are not deletions. It walks base once, to count the entries kept and
// their bytes and to note them as runs of adjacent entries, so that dst
// grows at most once and the header, which starts with the count, goes
// first; the runs are then copied whole (with more runs than it notes, it
// walks base again). The memory store hands its own free space as dst.
func build(dst []byte, created int64, user string, base record, keep func(key []byte) bool, changes []change) []byte {
	type run struct{ start, end int }
	var runs [8]run
	nruns, more := 0, false
	count, size := 0, 0
	b, n := base.body()
	for off := 0; n > 0; n-- {
		k, _, end, ok := nextEntry(b, off)
		if !ok {
			break
		}
		if keep(k) {
			count++
			size += end - off
			switch {
			case nruns > 0 && runs[nruns-1].end == off:
				runs[nruns-1].end = end
			case nruns < len(runs):
				runs[nruns] = run{off, end}
				nruns++
			default:
				more = true
			}
		}
		off = end
	}
	for _, ch := range changes {
		if !ch.del {
			count++
			size += uvarintLen(len(ch.key)) + len(ch.key) + uvarintLen(len(ch.val)) + len(ch.val)
		}
	}
	size += recordHeaderLen + uvarintLen(len(user)) + len(user) + uvarintLen(count)
	dst = slices.Grow(dst, size)
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(created))
	dst = appendString(dst, user)
	dst = binary.AppendUvarint(dst, uint64(count))
	if !more {
		for _, r := range runs[:nruns] {
			dst = append(dst, b[r.start:r.end]...)
		}
	} else {
		dst = appendKept(dst, base, keep)
	}
	for _, ch := range changes {
		if !ch.del {
			dst = appendEntry(dst, ch.key, ch.val)
		}
	}
	return dst
}

// appendKept appends the entries of base that keep accepts, as whole byte
// runs of adjacent entries.
func appendKept(dst []byte, base record, keep func(key []byte) bool) []byte {
	b, n := base.body()
	start, last := -1, -1 // the pending run of kept entries
	for off := 0; n > 0; n-- {
		k, _, end, ok := nextEntry(b, off)
		if !ok {
			break
		}
		if keep(k) {
			if last != off {
				if start >= 0 {
					dst = append(dst, b[start:last]...)
				}
				start = off
			}
			last = end
		}
		off = end
	}
	if start >= 0 {
		dst = append(dst, b[start:last]...)
	}
	return dst
}

// uvarintLen is the length of n as a uvarint.
func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// trusted returns the record of data that this package built itself, so
// needs no validation.
func trusted(data []byte) record {
	r := reader{b: data[recordHeaderLen:]}
	rec := record{created: int64(binary.BigEndian.Uint64(data[1:recordHeaderLen]))}
	rec.user = r.string()
	rec.entries = r.b
	return rec
}
