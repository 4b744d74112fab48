package memstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// decodeID must accept exactly the strings the standard library decodes
// strictly into 32 bytes, and agree with it on the bytes.
func TestDecodeIDMatchesBase64(t *testing.T) {
	check := func(s string) {
		t.Helper()
		var k key
		ok := decodeID(s, &k)
		want, err := base64.RawURLEncoding.Strict().DecodeString(s)
		// The standard decoder skips CR and LF; IDs never hold them.
		wantOK := err == nil && len(want) == 32 && !strings.ContainsAny(s, "\r\n")
		if ok != wantOK {
			t.Fatalf("decodeID(%q) = %v, base64 says %v (%v)", s, ok, wantOK, err)
		}
		if ok && !bytes.Equal(k[:], want) {
			t.Fatalf("decodeID(%q) = %x, base64 gives %x", s, k, want)
		}
	}
	accepted := 0
	for range 2000 {
		id := randomID()
		check(id)
		accepted++
		b := []byte(id)
		// Every byte value at a random position, the last one included.
		pos := mrand.IntN(len(b))
		if mrand.IntN(4) == 0 {
			pos = len(b) - 1
		}
		for c := range 256 {
			b[pos] = byte(c)
			check(string(b))
		}
	}
	for _, s := range []string{"", "abc", randomID()[:42], randomID() + "A", strings.Repeat("_", 43), strings.Repeat("A", 43)} {
		check(s)
	}
	if accepted == 0 {
		t.Fatal("no canonical ID was tried")
	}
}

// Non-canonical IDs are stored under a hash of the ID and keep the ID with
// their data; they never meet a canonical ID's entry.
func TestOddIDs(t *testing.T) {
	s := New(WithCleanupInterval(0))
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	canon := randomID()
	// The same 32 bytes with the unused bits set: decodes to the same bytes
	// leniently, but is another ID.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", canon[42])
	sibling := canon[:42] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1])
	ids := []string{canon, sibling, "a", "user-42:session", strings.Repeat("x", 300), canon[:42], canon + "="}
	for i, id := range ids {
		if err := s.Save(ctx, id, []byte(fmt.Sprint("data ", i)), exp); err != nil {
			t.Fatalf("Save(%q): %v", id, err)
		}
	}
	for i, id := range ids {
		data, _, found, err := s.Load(ctx, id)
		if err != nil || !found || string(data) != fmt.Sprint("data ", i) {
			t.Fatalf("Load(%q) = %q, %v, %v; want %q", id, data, found, err, fmt.Sprint("data ", i))
		}
	}
	seen := map[string]string{}
	if err := s.Range(ctx, func(id string, data []byte, _ time.Time) bool {
		seen[id] = string(data)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if seen[id] != fmt.Sprint("data ", i) {
			t.Fatalf("Range gave %q for %q, want %q (all: %q)", seen[id], id, fmt.Sprint("data ", i), seen)
		}
	}
	if len(seen) != len(ids) {
		t.Fatalf("Range gave %d entries, want %d", len(seen), len(ids))
	}
	if err := s.Delete(ctx, sibling); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := s.Load(ctx, sibling); found {
		t.Fatal("the deleted sibling ID is still found")
	}
	if data, _, found, _ := s.Load(ctx, canon); !found || string(data) != "data 0" {
		t.Fatalf("deleting the sibling ID touched the canonical one: %q, %v", data, found)
	}
}

// Overwriting and deleting leave dead bytes that compaction reclaims; data
// read before a compaction stays intact after it, and what is stored reads
// back right.
func TestCompactionKeepsDataAndBoundsMemory(t *testing.T) {
	s := New(WithCleanupInterval(0))
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	const n = 2000
	ids := make([]string, n)
	want := make([][]byte, n)
	for i := range ids {
		ids[i] = randomID()
	}
	held, _, _, _ := func() ([]byte, time.Time, bool, error) {
		_ = s.Save(ctx, ids[0], []byte("first version of entry 0"), exp)
		return s.Load(ctx, ids[0])
	}()
	heldCopy := bytes.Clone(held)
	for round := range 20 {
		for i, id := range ids {
			if (i+round)%7 == 0 {
				_ = s.Delete(ctx, id)
				want[i] = nil
				continue
			}
			data := bytes.Repeat([]byte{byte(round), byte(i)}, 50+mrand.IntN(400))
			if err := s.Save(ctx, id, data, exp); err != nil {
				t.Fatal(err)
			}
			want[i] = data
		}
	}
	if !bytes.Equal(held, heldCopy) {
		t.Fatal("a slice returned by Load changed after later saves")
	}
	live, total := 0, 0
	for i := range s.s.shards {
		sh := &s.s.shards[i]
		sh.mu.RLock()
		live += sh.live
		for _, c := range sh.chunks {
			total += cap(c)
		}
		sh.mu.RUnlock()
	}
	for i, id := range ids {
		data, _, found, _ := s.Load(ctx, id)
		if found != (want[i] != nil) || !bytes.Equal(data, want[i]) {
			t.Fatalf("entry %d: found %v, %d bytes; want %d bytes", i, found, len(data), len(want[i]))
		}
	}
	// 20 rounds wrote about 20 times the live data: without compaction the
	// chunks would hold all of it.
	limit := live + live/2 + shardCount*(chunkMax+minDead)
	if total > limit {
		t.Fatalf("chunks hold %d bytes for %d live ones (limit %d)", total, live, limit)
	}
	if total > 10*live {
		t.Fatalf("chunks hold %d bytes for %d live ones: no compaction ran", total, live)
	}
}

// Appending to a slice returned by Load must not write into the next entry.
func TestLoadedSliceIsCapped(t *testing.T) {
	s := New(WithCleanupInterval(0))
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	a, b := randomID(), randomID()
	// Same shard or not, each entry's slice must be capped.
	_ = s.Save(ctx, a, []byte("aaaa"), exp)
	_ = s.Save(ctx, b, []byte("bbbb"), exp)
	data, _, _, _ := s.Load(ctx, a)
	if cap(data) != len(data) {
		t.Fatalf("Load returned len %d cap %d", len(data), cap(data))
	}
	_ = append(data, "XXXX"...)
	if got, _, _, _ := s.Load(ctx, b); string(got) != "bbbb" {
		t.Fatalf("the other entry now reads %q", got)
	}
}

// The point of the design: sessions add no heap objects for the garbage
// collector to trace, only a few large chunks and tables.
func TestSessionsAddNoHeapObjects(t *testing.T) {
	const n = 20_000
	s := New(WithCleanupInterval(0))
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		// A fresh ID and record per session, as each request makes.
		_ = s.Save(ctx, randomID(), bytes.Repeat([]byte{byte(i)}, 200), exp)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if s.Len() != n {
		t.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	objects := int64(after.HeapObjects) - int64(before.HeapObjects)
	t.Logf("%d sessions added %d heap objects", n, objects)
	if objects > n/20 {
		t.Fatalf("%d sessions added %d heap objects: the store holds objects per session", n, objects)
	}
}
