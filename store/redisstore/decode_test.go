package redisstore

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions"
)

// KeyValue is the stored value of session key k holding v: "k", the length
// of k as a uvarint, k, then v. It is written out here from the documented
// layout rather than with the store's own encoder, and exported for the
// package's external tests.
func KeyValue(k, v string) string {
	return "k" + string(binary.AppendUvarint(nil, uint64(len(k)))) + k + v
}

// decode rebuilds a session from the values of its hash as HVALS returns
// them: its keys sorted, whatever order the values come in, its values
// whole, and values without a known tag left out. Sessions of up to 40
// keys are drawn, so the fields outgrow decode's small inline array.
func TestDecodeRebuildsTheRecord(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	exp := now.Add(time.Hour).UnixMilli()
	header := sessions.RecordHeader(now, "")
	for round := range 500 {
		n := r.IntN(41)
		vals := []string{"h" + string(header), strconv.FormatInt(exp, 10), "x: no tag of the store", ""}
		var fields []sessions.Field
		for i := range n {
			key := "key" + strconv.Itoa(r.IntN(1000)) + "-" + strconv.Itoa(i)
			if i == 0 {
				key = "" // an empty key is a key
			}
			value := bytes.Repeat([]byte{byte('a' + r.IntN(26))}, r.IntN(300))
			fields = append(fields, sessions.Field{Key: key, Value: value})
			vals = append(vals, KeyValue(key, string(value)))
		}
		r.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
		slices.SortFunc(fields, func(a, b sessions.Field) int { return strings.Compare(a.Key, b.Key) })
		want := sessions.JoinRecord(header, fields)

		got, gotExp, ok := decode(vals, now)
		if !ok {
			t.Fatalf("round %d: a valid hash of %d keys was not found", round, n)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: decoded %q, want %q", round, got, want)
		}
		if gotExp.UnixMilli() != exp {
			t.Fatalf("round %d: expiry %v, want %v", round, gotExp.UnixMilli(), exp)
		}
		_, back, err := sessions.SplitRecord(got)
		if err != nil || len(back) != n {
			t.Fatalf("round %d: the decoded record splits into %d fields (%v), want %d", round, len(back), err, n)
		}
	}
}

// Each malformed set of values is not a session; each valid one is, and
// raw data comes back whole.
func TestDecodeRejectsWhatSaveNeverWrites(t *testing.T) {
	now := time.Now()
	e := strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)
	past := strconv.FormatInt(now.Add(-time.Millisecond).UnixMilli(), 10)
	h := "h" + string(sessions.RecordHeader(now, "ann"))
	a := KeyValue("a", "1")
	for _, tc := range []struct {
		name string
		vals []string
		want []byte // nil: not found
	}{
		{"a session", []string{a, e, h}, sessions.JoinRecord([]byte(h[1:]), []sessions.Field{{Key: "a", Value: []byte("1")}})},
		{"raw data", []string{e, "rdata \x00"}, []byte("data \x00")},
		{"empty raw data", []string{"r", e}, []byte{}},
		{"nothing", nil, nil},
		{"no expiry", []string{h, a}, nil},
		{"an expiry that has passed", []string{h, past}, nil},
		{"an expiry out of range", []string{h, "99999999999999999999"}, nil},
		{"an expiry with trailing bytes", []string{h, e + "x"}, nil},
		{"two expiries", []string{h, e, e}, nil},
		{"no header or raw data", []string{e, a}, nil},
		{"two headers", []string{h, h, e}, nil},
		{"a header and raw data", []string{h, "rdata", e}, nil},
		{"raw data and a session key", []string{"rdata", a, e}, nil},
		{"two raw data", []string{"rone", "rtwo", e}, nil},
		{"an empty header", []string{"h", e}, nil},
		{"a garbage header", []string{"h\x07junk", e}, nil},
		{"an untagged header", []string{h[1:], e}, nil},
		{"a key without its length", []string{h, e, "k"}, nil},
		{"a key length past the end", []string{h, e, "k\x05abc"}, nil},
		{"a key length that overflows", []string{h, e, "k\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"}, nil},
		{"a session key twice", []string{h, e, a, KeyValue("a", "2")}, nil},
	} {
		got, _, ok := decode(tc.vals, now)
		if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: decode(%q) = %q, %v; want %q", tc.name, tc.vals, got, ok, tc.want)
		}
	}
}

// splitValues reads fuzz input as a list of values, each a uvarint length
// and that many bytes, up to the first that does not fit.
func splitValues(b []byte) []string {
	var vals []string
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			break
		}
		vals = append(vals, string(b[w:w+int(n)]))
		b = b[w+int(n):]
	}
	return vals
}

func joinValues(vals ...string) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// FuzzDecode feeds decode the values of hashes the store did not write:
// it never panics, and whatever it accepts, Save's encoding of it decodes
// back to the same data and expiry.
func FuzzDecode(f *testing.F) {
	now := time.Unix(1700000000, 0)
	e := strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)
	h := "h" + string(sessions.RecordHeader(now, "ann"))
	f.Add(joinValues(h, e, KeyValue("a", "1"), KeyValue("", "")))
	f.Add(joinValues(e, "rraw data"))
	f.Add(joinValues(h, e, KeyValue("a", "1"), KeyValue("a", "2")))
	f.Add(joinValues(h, "k\x05ab", e))
	f.Add(joinValues("x", "", e, h))
	f.Fuzz(func(t *testing.T, in []byte) {
		vals := splitValues(in)
		data, exp, ok := decode(vals, now)
		if !ok {
			if data != nil || !exp.IsZero() {
				t.Fatalf("not found, yet data %q and expiry %v", data, exp)
			}
			return
		}
		if !exp.After(now) {
			t.Fatalf("accepted an expiry %v not after now", exp)
		}
		raw := slices.ContainsFunc(vals, func(v string) bool { return v != "" && v[0] == tagRaw })
		var again []string
		if header, fields, err := sessions.SplitRecord(data); err == nil && !raw {
			for i := 1; i < len(fields); i++ {
				if fields[i-1].Key >= fields[i].Key {
					t.Fatalf("keys out of order or twice: %q then %q", fields[i-1].Key, fields[i].Key)
				}
			}
			v := newValues(header, fields)
			again = append(again, string(v.tagged(tagHeader, header)))
			for _, fl := range fields {
				again = append(again, string(v.key(fl)))
			}
		} else if raw {
			v := newValues(data, nil)
			again = append(again, string(v.tagged(tagRaw, data)))
		} else {
			t.Fatalf("%q decoded to %q, neither raw data nor a session record: %v", in, data, err)
		}
		again = append(again, strconv.FormatInt(exp.UnixMilli(), 10))
		back, backExp, ok := decode(again, now)
		if !ok || !bytes.Equal(back, data) || !backExp.Equal(exp) {
			t.Fatalf("%q decoded to %q; stored again it decodes to %q, %v (ok %v)", in, data, back, backExp, ok)
		}
	})
}
