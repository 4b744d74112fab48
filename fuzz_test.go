package sessions

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

var fuzzKey = []byte("fuzz-secret-key-0123456789abcdef!!")

// FuzzCookieDecode feeds arbitrary cookie values to the cookie decoder. It
// must never panic, must accept only values that securecookie itself
// accepts (signed under the key, within the lifetime) and that carry a
// well-formed ID, and must agree with securecookie on the ID.
func FuzzCookieDecode(f *testing.F) {
	cc := newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, fuzzKey)
	now := time.Now()
	f.Add(cc.encode(newID(), now))
	f.Add(cc.encode(newID(), now.Add(-2*time.Hour)))
	f.Add("")
	f.Add("=")
	f.Add("MTcwMDAwMDAwMHx8")
	f.Add(string(bytes.Repeat([]byte("A"), 600)))
	ref := securecookie.New(deriveKey(fuzzKey), nil)
	ref.SetSerializer(securecookie.NopEncoder{})
	ref.MaxAge(int(cc.window))
	ref.MaxLength(maxCookieLen)
	f.Fuzz(func(t *testing.T, value string) {
		id, old, err := cc.decode(value, time.Now().Unix())
		if err != nil {
			return
		}
		if old {
			t.Fatal("a cookie under the only key was reported as signed with a previous one")
		}
		if !validID([]byte(id)) {
			t.Fatalf("accepted a malformed ID %q", id)
		}
		var got []byte
		if err := ref.Decode("sid", value, &got); err != nil {
			t.Fatalf("accepted a value securecookie rejects (%v)", err)
		}
		if string(got) != id {
			t.Fatalf("ID %q, securecookie says %q", id, got)
		}
	})
}

// FuzzValueDecode feeds arbitrary bytes, as a broken or hostile store might
// return, to the value codec. It must never panic, and whatever it accepts
// must encode and decode again to an equal value of the same type.
func FuzzValueDecode(f *testing.F) {
	c := BinaryCodec()
	for _, v := range []any{nil, true, "text", -7, int64(1 << 40), 2.5, []byte{1, 2}, time.Unix(1700000000, 5).UTC(),
		[]string{"a"}, []any{1, "x", []any{false}}, map[string]any{"k": map[string]any{"n": 1}},
		map[string]string{"a": "b"}, []map[string]any{{"role": "user"}}, map[string]int{"n": 1}, []int{3}, time.Second} {
		b, err := c.Append(nil, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{tSlice, 0xff, 0xff, 0xff, 0xff, 0x07})
	f.Add([]byte{tGob, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.Decode(data)
		if err != nil {
			return
		}
		b, err := c.Append(nil, v)
		if err != nil {
			t.Fatalf("decoded %T that cannot be encoded again: %v", v, err)
		}
		v2, err := c.Decode(b)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if reflect.TypeOf(v) != reflect.TypeOf(v2) {
			t.Fatalf("type changed: %T then %T", v, v2)
		}
		if !equalValues(v, v2) {
			t.Fatalf("value changed: %#v then %#v", v, v2)
		}
	})
}

// equalValues compares decoded values; NaN floats and times compare by
// their encoded form.
func equalValues(a, b any) bool {
	ba, errA := BinaryCodec().Append(nil, a)
	bb, errB := BinaryCodec().Append(nil, b)
	if errA == nil && errB == nil && bytes.Equal(ba, bb) {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// FuzzRecord feeds arbitrary bytes to the session record parser, and
// checks that SplitRecord and JoinRecord are inverse on what it accepts.
func FuzzRecord(f *testing.F) {
	f.Add(JoinRecord(RecordHeader(time.Unix(1700000000, 0), "u"), []Field{{Key: "k", Value: []byte{tTrue}}}))
	f.Add(JoinRecord(RecordHeader(time.Unix(0, 0), ""), nil))
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseRecord(data)
		if err != nil {
			return
		}
		header, fields, err := SplitRecord(data)
		if err != nil {
			t.Fatalf("parseRecord accepts what SplitRecord rejects: %v", err)
		}
		if !bytes.Equal(JoinRecord(header, fields), data) {
			t.Fatal("JoinRecord(SplitRecord(data)) != data")
		}
		seen := map[string]bool{}
		for _, fl := range fields {
			if seen[fl.Key] {
				continue // lookup finds the first of duplicated keys
			}
			seen[fl.Key] = true
			if v, ok := rec.lookup(fl.Key); !ok || !bytes.Equal(v, fl.Value) {
				t.Fatalf("lookup(%q) disagrees with SplitRecord", fl.Key)
			}
		}
	})
}
