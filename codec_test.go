package sessions

import (
	"crypto/rand"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type codecPoint struct{ X, Y int }

func TestBinaryCodecKeepsTypes(t *testing.T) {
	Register(codecPoint{})
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", -5*3600))
	values := []any{
		nil, true, false, "", "text", 0, -1, math.MaxInt, math.MinInt,
		int8(-8), int16(-16), int32(-32), int64(math.MinInt64),
		uint(1), uint8(255), uint16(65535), uint32(math.MaxUint32), uint64(math.MaxUint64),
		float32(1.5), 2.25, math.Inf(-1), []byte{}, []byte{0, 255}, at, 90 * time.Second,
		[]string{}, []string{"a", "b"}, []int{1, -2}, []any{}, []any{1, "x", nil, []any{true}},
		map[string]any{}, map[string]any{"a": map[string]any{"b": []any{int64(3)}}},
		map[string]string{"k": "v"}, []map[string]any{{"role": "user", "text": "hi"}},
		map[string]int{"n": 7}, codecPoint{1, 2},
	}
	c := BinaryCodec()
	for _, v := range values {
		b, err := c.Append(nil, v)
		require.NoError(t, err, "%T", v)
		got, err := c.Decode(b)
		require.NoError(t, err, "%T", v)
		require.Equal(t, reflect.TypeOf(v), reflect.TypeOf(got), "%#v", v)
		if tv, ok := v.(time.Time); ok {
			assert.True(t, tv.Equal(got.(time.Time)))
			_, off := got.(time.Time).Zone()
			assert.Equal(t, -5*3600, off, "the zone offset survives")
			continue
		}
		assert.Equal(t, v, got)
	}
	_, err := c.Append(nil, make(chan int))
	assert.True(t, errors.Is(err, ErrEncode))
	type notRegistered struct{ A int }
	_, err = c.Append(nil, notRegistered{})
	assert.ErrorIs(t, err, ErrEncode)
}

func TestBinaryCodecRejectsGarbage(t *testing.T) {
	c := BinaryCodec()
	bad := [][]byte{
		{}, {0xee}, {tString, 0xff, 0xff, 0xff, 0xff, 0x0f}, {tSlice, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{tInt8, 0x80, 0x02}, {tFloat64, 1, 2}, {tTime, 3, 1, 2, 3}, {tGob, 4, 1, 2, 3, 4},
		{tNil, tNil}, {tMap, 1, 1, 'k'},
	}
	deep := []byte{}
	for i := 0; i < 200; i++ {
		deep = append(deep, tSlice, 1)
	}
	bad = append(bad, append(deep, tNil))
	for _, b := range bad {
		v, err := c.Decode(b)
		assert.ErrorIs(t, err, ErrDecode, "%x", b)
		assert.Nil(t, v)
	}
	// Random bytes never panic.
	buf := make([]byte, 64)
	for i := 0; i < 20000; i++ {
		_, _ = rand.Read(buf)
		_, _ = c.Decode(buf[:i%64])
		_, _ = parseRecord(buf[:i%64])
	}
}

func TestRecordRejectsGarbage(t *testing.T) {
	good := appendEntry(appendRecordHeader(nil, time.Now(), "", 1), "k", []byte{tTrue})
	rec, err := parseRecord(good)
	require.NoError(t, err)
	v, ok := rec.lookup("k")
	assert.True(t, ok)
	assert.Equal(t, []byte{tTrue}, v)
	for i := 0; i < len(good); i++ {
		_, err := parseRecord(good[:i])
		assert.ErrorIs(t, err, ErrDecode, "truncated at %d", i)
	}
	_, err = parseRecord(append(append([]byte{}, good...), 0))
	assert.ErrorIs(t, err, ErrDecode, "trailing bytes")
	wrongVersion := append([]byte{}, good...)
	wrongVersion[0] = 9
	_, err = parseRecord(wrongVersion)
	assert.ErrorIs(t, err, ErrDecode)
}

func TestBuildAppliesChangesToRecords(t *testing.T) {
	base := JoinRecord(RecordHeader(time.Unix(1700000000, 0), "ann"), []Field{
		{Key: "a", Value: []byte{tTrue}}, {Key: "b", Value: []byte{tFalse}}, {Key: "c", Value: []byte{tNil}}, {Key: "d", Value: []byte{tTrue}},
	})
	rec, err := parseRecord(base)
	require.NoError(t, err)
	changes := []change{{key: "b", del: true}, {key: "c", val: []byte{tFalse}}, {key: "e", val: []byte{tTrue}}}
	changed := func(k []byte) bool {
		for _, ch := range changes {
			if ch.key == string(k) {
				return true
			}
		}
		return false
	}
	for _, user := range []string{"ann", "", "a much longer user name than before"} {
		out := build(nil, rec.created, user, rec, func(k []byte) bool { return !changed(k) }, changes)
		got, err := parseRecord(out)
		require.NoError(t, err, "build made an invalid record")
		assert.Equal(t, rec.created, got.created)
		assert.Equal(t, user, got.user)
		_, fields, err := SplitRecord(out)
		require.NoError(t, err)
		kv := map[string][]byte{}
		for _, f := range fields {
			kv[f.Key] = f.Value
		}
		assert.Equal(t, map[string][]byte{"a": {tTrue}, "c": {tFalse}, "d": {tTrue}, "e": {tTrue}}, kv)
		assert.Equal(t, trusted(out), got, "trusted agrees with parseRecord on built records")
	}
	cleared := build(nil, rec.created, "", rec, func([]byte) bool { return false }, nil)
	_, fields, err := SplitRecord(cleared)
	require.NoError(t, err)
	assert.Empty(t, fields)
}

func TestMintedIDsAreDistinctAndWellFormed(t *testing.T) {
	m := newManager(make([]byte, 32), nil)
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		id := m.mintID()
		require.True(t, validID([]byte(id)), "malformed ID %q", id)
		require.False(t, seen[id], "ID %q minted twice", id)
		seen[id] = true
	}
}
