package redisstore

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions"
)

// decode rebuilds a session from the fields of its hash as HGETALL returns
// them: its keys sorted, whatever order the map gives them in, its values
// whole, and fields that are not session keys left out. Sessions of up to
// 40 keys are drawn, so the fields outgrow decode's small inline array.
func TestDecodeRebuildsTheRecord(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	exp := now.Add(time.Hour).UnixMilli()
	header := sessions.RecordHeader(now, "")
	for round := range 500 {
		n := r.IntN(41)
		m := map[string]string{
			fieldHeader: string(header),
			fieldExpiry: strconv.FormatInt(exp, 10),
			"x:other":   "not a session key",
		}
		var fields []sessions.Field
		for i := range n {
			key := "key" + strconv.Itoa(r.IntN(1000)) + "-" + strconv.Itoa(i)
			value := bytes.Repeat([]byte{byte('a' + r.IntN(26))}, r.IntN(300))
			fields = append(fields, sessions.Field{Key: key, Value: value})
			m[fieldKey+key] = string(value)
		}
		slices.SortFunc(fields, func(a, b sessions.Field) int { return strings.Compare(a.Key, b.Key) })
		want := sessions.JoinRecord(header, fields)

		got, gotExp, ok := decode(maps.Clone(m), now)
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
