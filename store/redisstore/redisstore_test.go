package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/redis/go-redis/v9"
)

const startRedis = `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`

func redisAddr() string {
	if a := os.Getenv("FASTSESSION_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func ctxT(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// newClient returns a client of the test server, closed at the end of the
// test, or skips (fails under CI) when the server cannot be reached.
func newClient(t *testing.T, hooks ...redis.Hook) *redis.Client {
	t.Helper()
	addr := redisAddr()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	for _, h := range hooks {
		c.AddHook(h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		storetest.Unreachable(t, "Redis at "+addr, startRedis, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// runPrefix returns a fresh random key prefix; every key under it is deleted
// at the end of the test.
func runPrefix(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "fastsession-test-" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { deleteUnder(t, c, prefix) })
	return prefix
}

func deleteUnder(t *testing.T, c redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("cleanup: scan %s*: %v", prefix, err)
		return
	}
	for _, k := range keys {
		if err := c.Del(ctx, k).Err(); err != nil {
			t.Errorf("cleanup: del %s: %v", k, err)
		}
	}
}

func TestContract(t *testing.T) {
	c := newClient(t)
	prefix := runPrefix(t, c)
	storetest.Run(t, func(t *testing.T) sessions.Store {
		s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// rec builds a session record created at created for user, with the
// given keys and values, in the order given.
func rec(created time.Time, user string, kv ...string) []byte {
	var fields []sessions.Field
	for i := 0; i+1 < len(kv); i += 2 {
		fields = append(fields, sessions.Field{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return sessions.JoinRecord(sessions.RecordHeader(created, user), fields)
}

// hash returns the raw fields of the hash under key.
func hash(t *testing.T, c redis.UniversalClient, key string) map[string]string {
	t.Helper()
	m, err := c.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	return m
}

func ms(v int64) string { return strconv.FormatInt(v, 10) }

// layout returns the fields a session of the given header and keys and
// values is stored as, e aside: "h" and the header in h, and for each key
// a field k:<key> holding what KeyValue gives.
func layout(header []byte, kv ...string) map[string]string {
	m := map[string]string{"h": "h" + string(header)}
	for i := 0; i+1 < len(kv); i += 2 {
		m["k:"+kv[i]] = redisstore.KeyValue(kv[i], kv[i+1])
	}
	return m
}

func TestKeyPrefix(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)

	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	if err := s.Save(ctx, id, []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, prefix+id).Val(); n != 1 {
		t.Fatalf("EXISTS %s%s = %d, want 1", prefix, id, n)
	}
	if n := c.Exists(ctx, redisstore.DefaultKeyPrefix+id).Val(); n != 0 {
		t.Fatalf("the default prefix was used despite WithKeyPrefix")
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, prefix+id).Val(); n != 0 {
		t.Fatalf("EXISTS after Delete = %d, want 0", n)
	}

	// Without the option, keys live under "fastsession:".
	def := redisstore.New(c)
	id = storetest.NewID()
	t.Cleanup(func() { c.Del(context.Background(), "fastsession:"+id) })
	if err := def.Save(ctx, id, []byte("v"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, "fastsession:"+id).Val(); n != 1 {
		t.Fatalf("default prefix: EXISTS fastsession:%s = %d, want 1", id, n)
	}
}

// TestHashLayout checks the raw layout of a session: a hash with the
// header in h, the expiry in e and each session key in a field k:<key>,
// every value but e's starting with the letter that says what it is.
func TestHashLayout(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	key := prefix + id

	created := time.Unix(1700000000, 5)
	header := sessions.RecordHeader(created, "ann")
	// Sorted by key, the order Load rebuilds them in; "\x00sys" is a key
	// starting with NUL, as the middleware's own keys do.
	data := rec(created, "ann", "\x00sys", "s", "a", "1", "b", "\x00\xff", "empty", "")
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := s.Save(ctx, id, data, exp); err != nil {
		t.Fatal(err)
	}
	if typ := c.Type(ctx, key).Val(); typ != "hash" {
		t.Fatalf("TYPE %s = %q, want hash", key, typ)
	}
	want := map[string]string{
		"h":         "h" + string(header),
		"e":         ms(exp.UnixMilli()),
		"k:\x00sys": "k\x04\x00syss",
		"k:a":       "k\x01a1",
		"k:b":       "k\x01b\x00\xff",
		"k:empty":   "k\x05empty",
	}
	if got := hash(t, c, key); !maps.Equal(got, want) {
		t.Fatalf("stored hash %q, want %q", got, want)
	}
	if got := c.PExpireTime(ctx, key).Val(); got != time.Duration(exp.UnixMilli())*time.Millisecond {
		t.Errorf("PEXPIRETIME %v, want %d ms", got, exp.UnixMilli())
	}
	got, gotExp, found, err := s.Load(ctx, id)
	if err != nil || !found || !bytes.Equal(got, data) || !gotExp.Equal(exp) {
		t.Fatalf("Load: found=%v exp=%v err=%v, data %q, want %q", found, gotExp, err, got, data)
	}

	// Fields stored in any order load in key order.
	shuffled := rec(created, "ann", "b", "\x00\xff", "empty", "", "a", "1", "\x00sys", "s")
	if err := s.Save(ctx, id, shuffled, exp); err != nil {
		t.Fatal(err)
	}
	if got, _, _, _ := s.Load(ctx, id); !bytes.Equal(got, data) {
		t.Fatalf("Load of fields saved in another order: %q, want %q", got, data)
	}

	// A Save replaces the whole hash: fields of the previous save are gone.
	if err := s.Save(ctx, id, rec(created, "", "c", "3"), exp); err != nil {
		t.Fatal(err)
	}
	want = layout(sessions.RecordHeader(created, ""), "c", "3")
	want["e"] = ms(exp.UnixMilli())
	if got := hash(t, c, key); !maps.Equal(got, want) {
		t.Fatalf("hash after a second Save %q, want %q", got, want)
	}

	// Data that is not a session record is kept whole in r.
	raw := []byte("not a record \x00\xff")
	if err := s.Save(ctx, id, raw, exp); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"r": "r" + string(raw), "e": ms(exp.UnixMilli())}
	if got := hash(t, c, key); !maps.Equal(got, want) {
		t.Fatalf("hash of data that is not a record %q, want %q", got, want)
	}
	if got, _, found, err := s.Load(ctx, id); err != nil || !found || !bytes.Equal(got, raw) {
		t.Fatalf("Load of data that is not a record: found=%v err=%v data=%q", found, err, got)
	}
	// and SaveDelta refuses it without changing it.
	found, err = s.SaveDelta(ctx, id, sessions.Delta{Set: []sessions.Field{{Key: "x", Value: []byte("y")}}}, exp.Add(time.Hour))
	if found || !errors.Is(err, sessions.ErrDecode) || !strings.HasPrefix(err.Error(), "redisstore: save delta: ") {
		t.Fatalf("SaveDelta on data kept whole: found=%v err=%v, want an error wrapping ErrDecode", found, err)
	}
	if got := hash(t, c, key); !maps.Equal(got, want) {
		t.Fatalf("a refused SaveDelta changed the hash to %q", got)
	}
}

func TestValueFormatAndRounding(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))

	base := time.Now().Add(time.Hour).UnixMilli()
	for _, tc := range []struct {
		name string
		exp  time.Time
		want int64
	}{
		{"whole millisecond", time.UnixMilli(base), base},
		{"one nanosecond past", time.UnixMilli(base).Add(time.Nanosecond), base + 1},
		{"half a millisecond past", time.UnixMilli(base).Add(500 * time.Microsecond), base + 1},
		{"just under a millisecond past", time.UnixMilli(base).Add(999999 * time.Nanosecond), base + 1},
		{"whole second", time.Unix(base/1000+1, 0), (base/1000 + 1) * 1000},
		{"whole second plus 1µs", time.Unix(base/1000+1, 1000), (base/1000+1)*1000 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := storetest.NewID()
			data := rec(time.Now(), "", "k", "payload \x00\xff")
			if err := s.Save(ctx, id, data, tc.exp); err != nil {
				t.Fatal(err)
			}
			if got := hash(t, c, prefix+id)["e"]; got != ms(tc.want) {
				t.Errorf("field e %q, want %d", got, tc.want)
			}
			if got := c.PExpireTime(ctx, prefix+id).Val(); got != time.Duration(tc.want)*time.Millisecond {
				t.Errorf("PEXPIRETIME %v, want %d ms", got, tc.want)
			}
			got, exp, found, err := s.Load(ctx, id)
			if err != nil || !found || !bytes.Equal(got, data) {
				t.Fatalf("Load: found=%v err=%v", found, err)
			}
			if exp.Before(tc.exp) || !exp.Equal(time.UnixMilli(tc.want)) {
				t.Errorf("Load reports expiry %v, want %v (not before %v)", exp, time.UnixMilli(tc.want), tc.exp)
			}
		})
	}
}

func TestExpiredNeverReturned(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))

	// A hash whose e has passed but that Redis still holds (no TTL): Load
	// must not return it, and neither Touch nor SaveDelta may revive it.
	id := storetest.NewID()
	past := time.Now().Add(-time.Second).UnixMilli()
	stored := layout(sessions.RecordHeader(time.Now(), ""), "a", "old")
	stored["e"] = ms(past)
	if err := c.HSet(ctx, prefix+id, stored).Err(); err != nil {
		t.Fatal(err)
	}
	data, _, found, err := s.Load(ctx, id)
	if err != nil || found || data != nil {
		t.Fatalf("Load of a hash past its e: found=%v data=%q err=%v", found, data, err)
	}
	if err := s.Touch(ctx, id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	found, err = s.SaveDelta(ctx, id, sessions.Delta{Set: []sessions.Field{{Key: "a", Value: []byte("new")}}}, time.Now().Add(time.Hour))
	if err != nil || found {
		t.Fatalf("SaveDelta of an expired session: found=%v err=%v", found, err)
	}
	if got := hash(t, c, prefix+id); !maps.Equal(got, stored) {
		t.Fatalf("Touch or SaveDelta changed an expired session: %q", got)
	}
	if _, _, found, _ := s.Load(ctx, id); found {
		t.Fatal("an expired session was revived")
	}

	// A short-lived save is gone once its expiry has passed.
	id = storetest.NewID()
	exp := time.Now().Add(150 * time.Millisecond)
	if err := s.Save(ctx, id, rec(time.Now(), "", "a", "brief"), exp); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	if _, _, found, err := s.Load(ctx, id); err != nil || found {
		t.Fatalf("after expiry: found=%v err=%v", found, err)
	}

	// An expiry already in the past (or the zero time) stores nothing
	// loadable and is not an error.
	for _, past := range []time.Time{time.Now().Add(-time.Minute), {}} {
		id = storetest.NewID()
		if err := s.Save(ctx, id, []byte("x"), past); err != nil {
			t.Fatalf("Save with expiry %v: %v", past, err)
		}
		if _, _, found, err := s.Load(ctx, id); err != nil || found {
			t.Fatalf("Save with expiry %v: then found=%v err=%v", past, found, err)
		}
	}
}

// TestGarbage stores values the store did not write under session keys:
// each loads as not found, and Touch and SaveDelta leave it alone.
func TestGarbage(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	later := ms(time.Now().Add(time.Hour).UnixMilli())
	hdr := string(sessions.RecordHeader(time.Now(), ""))

	oldFormat := make([]byte, 8, 16) // the string layout of earlier versions
	binary.BigEndian.PutUint64(oldFormat, uint64(time.Now().Add(time.Hour).UnixMilli()))
	oldFormat = append(oldFormat, "old data"...)

	for _, tc := range []struct {
		name  string
		store func(key string) error
		// session says the value has the shape of a session hash (type,
		// e and h are right) but a header that is not one. Touch and
		// SaveDelta do not parse headers, so they apply to it, and it
		// stays unloadable.
		session bool
	}{
		{"a string", func(k string) error { return c.Set(ctx, k, "abc", time.Hour).Err() }, false},
		{"an empty string", func(k string) error { return c.Set(ctx, k, "", time.Hour).Err() }, false},
		{"the string format of earlier versions", func(k string) error { return c.Set(ctx, k, oldFormat, time.Hour).Err() }, false},
		{"a set", func(k string) error { return c.SAdd(ctx, k, "x").Err() }, false},
		{"a hash without e", func(k string) error { return c.HSet(ctx, k, "h", "h"+hdr, "k:a", redisstore.KeyValue("a", "1")).Err() }, false},
		{"a hash with a non-numeric e", func(k string) error { return c.HSet(ctx, k, "h", "h"+hdr, "e", "soon").Err() }, false},
		{"a hash with two expiries", func(k string) error { return c.HSet(ctx, k, "h", "h"+hdr, "e", later, "k:a", later).Err() }, true},
		{"a hash without h or r", func(k string) error { return c.HSet(ctx, k, "e", later, "k:a", redisstore.KeyValue("a", "1")).Err() }, false},
		{"a hash with a garbage header", func(k string) error { return c.HSet(ctx, k, "h", "h\x07junk", "e", later).Err() }, true},
		{"a hash with an empty header", func(k string) error { return c.HSet(ctx, k, "h", "h", "e", later).Err() }, true},
		{"a hash with an untagged header", func(k string) error { return c.HSet(ctx, k, "h", hdr, "e", later, "k:a", "1").Err() }, true},
		{"a hash with two headers", func(k string) error {
			return c.HSet(ctx, k, "h", "h"+hdr, "e", later, "k:a", "h"+hdr).Err()
		}, true},
		{"a hash with a key value cut short", func(k string) error {
			return c.HSet(ctx, k, "h", "h"+hdr, "e", later, "k:abc", "k\x03ab").Err()
		}, true},
		{"a hash with a session key twice", func(k string) error {
			return c.HSet(ctx, k, "h", "h"+hdr, "e", later, "k:a", redisstore.KeyValue("a", "1"), "k:b", redisstore.KeyValue("a", "2")).Err()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A prefix of its own, for Range.
			s := redisstore.New(c, redisstore.WithKeyPrefix(prefix+tc.name+":"))
			id := storetest.NewID()
			key := prefix + tc.name + ":" + id
			if err := tc.store(key); err != nil {
				t.Fatal(err)
			}
			before, err := c.Dump(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			data, exp, found, err := s.Load(ctx, id)
			if err != nil || found || data != nil || !exp.IsZero() {
				t.Fatalf("Load: data=%q exp=%v found=%v err=%v", data, exp, found, err)
			}
			if err := s.Touch(ctx, id, time.Now().Add(2*time.Hour)); err != nil {
				t.Fatalf("Touch: %v", err)
			}
			if after := c.Dump(ctx, key).Val(); !tc.session && after != before {
				t.Fatal("Touch rewrote the value")
			}
			found, err = s.SaveDelta(ctx, id, sessions.Delta{Set: []sessions.Field{{Key: "x", Value: []byte("y")}}}, time.Now().Add(2*time.Hour))
			if err != nil || found != tc.session {
				t.Fatalf("SaveDelta: found=%v err=%v, want found=%v", found, err, tc.session)
			}
			if after := c.Dump(ctx, key).Val(); !tc.session && after != before {
				t.Fatal("SaveDelta rewrote the value")
			}
			if _, _, found, err := s.Load(ctx, id); err != nil || found {
				t.Fatalf("Load after SaveDelta: found=%v err=%v", found, err)
			}
			n := 0
			if err := s.Range(ctx, func(string, []byte, time.Time) bool { n++; return true }); err != nil || n != 0 {
				t.Fatalf("Range: %d sessions, err %v; want none", n, err)
			}
			// A Save replaces the garbage.
			data = rec(time.Now(), "", "a", "1")
			if err := s.Save(ctx, id, data, time.Now().Add(time.Hour)); err != nil {
				t.Fatalf("Save over it: %v", err)
			}
			if got, _, found, err := s.Load(ctx, id); err != nil || !found || !bytes.Equal(got, data) {
				t.Fatalf("Load after Save over it: found=%v err=%v", found, err)
			}
		})
	}
}

func TestTouch(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))

	for _, data := range [][]byte{
		rec(time.Now(), "u", "a", strings.Repeat("session-bytes ", 100), "b", "2"),
		bytes.Repeat([]byte("not a record "), 100),
	} {
		id := storetest.NewID()
		if err := s.Save(ctx, id, data, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		before := hash(t, c, prefix+id)
		newExp := time.Now().Add(3 * time.Hour).Add(123 * time.Microsecond)
		want := newExp.UnixMilli() + 1 // rounded up
		if err := s.Touch(ctx, id, newExp); err != nil {
			t.Fatal(err)
		}
		after := hash(t, c, prefix+id)
		if after["e"] != ms(want) {
			t.Errorf("field e after Touch %q, want %d", after["e"], want)
		}
		delete(before, "e")
		delete(after, "e")
		if !maps.Equal(before, after) {
			t.Errorf("Touch changed the data")
		}
		if got := c.PExpireTime(ctx, prefix+id).Val(); got != time.Duration(want)*time.Millisecond {
			t.Errorf("PEXPIRETIME after Touch %v, want %d ms", got, want)
		}
		got, exp, found, err := s.Load(ctx, id)
		if err != nil || !found || !bytes.Equal(got, data) || !exp.Equal(time.UnixMilli(want)) {
			t.Fatalf("Load after Touch: found=%v exp=%v err=%v equal=%v", found, exp, err, bytes.Equal(got, data))
		}
	}

	missing := storetest.NewID()
	if err := s.Touch(ctx, missing, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, prefix+missing).Val(); n != 0 {
		t.Fatal("Touch created a missing key")
	}
}

// TestSaveDelta checks the raw hash after each kind of delta.
func TestSaveDelta(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	key := prefix + id
	created := time.Unix(1700000000, 0)
	hdr := sessions.RecordHeader(created, "")
	if err := s.Save(ctx, id, rec(created, "", "a", "1", "b", "2", "\x00flash", "f"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	apply := func(d sessions.Delta, exp time.Time, want map[string]string) {
		t.Helper()
		found, err := s.SaveDelta(ctx, id, d, exp)
		if err != nil || !found {
			t.Fatalf("SaveDelta(%+v): found=%v err=%v", d, found, err)
		}
		want["e"] = ms(expiryMillis(exp))
		if got := hash(t, c, key); !maps.Equal(got, want) {
			t.Fatalf("hash after SaveDelta(%+v):\n got %q\nwant %q", d, got, want)
		}
		if got := c.PExpireTime(ctx, key).Val(); got != time.Duration(expiryMillis(exp))*time.Millisecond {
			t.Fatalf("PEXPIRETIME after SaveDelta %v, want %d ms", got, expiryMillis(exp))
		}
	}
	exp := time.Now().Add(time.Hour).Add(500 * time.Microsecond)
	apply(sessions.Delta{Delete: []string{"a", "never"}, Set: []sessions.Field{{Key: "b", Value: []byte("22")}, {Key: "\x00new", Value: []byte{0}}}},
		exp, layout(hdr, "b", "22", "\x00flash", "f", "\x00new", "\x00"))
	// A key named like a meta field stays apart from it.
	apply(sessions.Delta{Set: []sessions.Field{{Key: "h", Value: []byte("not the header")}, {Key: "e", Value: []byte("not the expiry")}}},
		exp.Add(time.Hour), layout(hdr, "b", "22", "\x00flash", "f", "\x00new", "\x00", "h", "not the header", "e", "not the expiry"))
	// Clear removes every session key but neither h nor e.
	apply(sessions.Delta{Clear: true, Set: []sessions.Field{{Key: "c", Value: []byte("3")}}},
		exp, layout(hdr, "c", "3"))
	newHdr := sessions.RecordHeader(created, "user-42")
	apply(sessions.Delta{Header: newHdr}, exp, layout(newHdr, "c", "3"))
	got, _, found, err := s.Load(ctx, id)
	if err != nil || !found || !bytes.Equal(got, rec(created, "user-42", "c", "3")) {
		t.Fatalf("Load after deltas: found=%v err=%v data=%q", found, err, got)
	}

	// Many fields at once (the script works through them in batches).
	var set []sessions.Field
	var del []string
	all := layout(newHdr)
	odd := layout(newHdr)
	for i := range 2500 {
		f := sessions.Field{Key: fmt.Sprint("key", i), Value: []byte(strconv.Itoa(i))}
		set = append(set, f)
		all["k:"+f.Key] = redisstore.KeyValue(f.Key, string(f.Value))
		if i%2 == 0 {
			del = append(del, f.Key)
		} else {
			odd["k:"+f.Key] = redisstore.KeyValue(f.Key, string(f.Value))
		}
	}
	apply(sessions.Delta{Clear: true, Set: set}, exp, all)
	apply(sessions.Delta{Delete: del}, exp, odd)
	apply(sessions.Delta{Clear: true}, exp, layout(newHdr))

	// A missing ID is not found and nothing is written.
	missing := storetest.NewID()
	if found, err := s.SaveDelta(ctx, missing, sessions.Delta{Header: newHdr, Set: set[:1]}, exp); err != nil || found {
		t.Fatalf("SaveDelta of a missing ID: found=%v err=%v", found, err)
	}
	if n := c.Exists(ctx, prefix+missing).Val(); n != 0 {
		t.Fatal("SaveDelta created a key")
	}
}

// expiryMillis mirrors the store's rounding: up to the next millisecond.
func expiryMillis(t time.Time) int64 {
	v := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		v++
	}
	return v
}

// countHook records every command and pipeline the client sends.
type countHook struct {
	mu   sync.Mutex
	cmds []redis.Cmder
	n    int // round trips: one per command or pipeline
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.n++
		h.cmds = append(h.cmds, cmd)
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.n++
		h.cmds = append(h.cmds, cmds...)
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *countHook) reset() {
	h.mu.Lock()
	h.n, h.cmds = 0, nil
	h.mu.Unlock()
}

func (h *countHook) take() (int, []redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, cmds := h.n, h.cmds
	h.n, h.cmds = 0, nil
	return n, cmds
}

func names(cmds []redis.Cmder) string {
	var s []string
	for _, c := range cmds {
		s = append(s, c.Name())
	}
	return strings.Join(s, ",")
}

func TestRoundTrips(t *testing.T) {
	h := &countHook{}
	c := newClient(t, h)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))

	id := storetest.NewID()
	big := strings.Repeat("D", 4096)
	data := rec(time.Now(), "", "big", big, "small", "s")
	user := "rt-" + storetest.NewID()[:8]
	// Warm up: a connection in the pool and every script cached on the
	// server, so that what follows counts the steady state.
	warm := storetest.NewID()
	if err := s.Save(ctx, warm, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, warm, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveDelta(ctx, warm, sessions.Delta{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkUser(ctx, user, warm, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if unlock, err := s.Lock(ctx, warm, 0, time.Minute); err != nil {
		t.Fatal(err)
	} else {
		unlock()
	}

	// argBytes is the size of the arguments of cmds.
	argBytes := func(cmds []redis.Cmder) int {
		size := 0
		for _, c := range cmds {
			for _, a := range c.Args() {
				size += len(fmt.Sprint(a))
			}
		}
		return size
	}
	check := func(op string, want []string, fn func() error) []redis.Cmder {
		t.Helper()
		h.reset()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		n, cmds := h.take()
		if n != 1 || names(cmds) != strings.Join(want, ",") {
			t.Errorf("%s: %d round trips sending [%s], want 1 sending [%s]", op, n, names(cmds), strings.Join(want, ","))
		}
		return cmds
	}
	check("Save", []string{"multi", "del", "hset", "pexpireat", "exec"}, func() error { return s.Save(ctx, id, data, time.Now().Add(time.Hour)) })
	check("Load", []string{"hvals"}, func() error {
		got, _, found, err := s.Load(ctx, id)
		if err == nil && (!found || !bytes.Equal(got, data)) {
			err = fmt.Errorf("found=%v, %d bytes", found, len(got))
		}
		return err
	})
	cmds := check("SaveDelta", []string{"evalsha"}, func() error {
		found, err := s.SaveDelta(ctx, id, sessions.Delta{Set: []sessions.Field{{Key: "small", Value: []byte("t")}}}, time.Now().Add(time.Hour))
		if err == nil && !found {
			err = errors.New("not found")
		}
		return err
	})
	// A delta sends what changed, not the whole session.
	if size := argBytes(cmds); size > 300 {
		t.Errorf("SaveDelta of one small key sent %d bytes of arguments", size)
	}
	cmds = check("Touch", []string{"evalsha"}, func() error { return s.Touch(ctx, id, time.Now().Add(2*time.Hour)) })
	if size := argBytes(cmds); size > 200 {
		t.Errorf("Touch sent %d bytes of arguments: it must not resend the data", size)
	}
	check("Load missing", []string{"hvals"}, func() error {
		_, _, found, err := s.Load(ctx, storetest.NewID())
		if err == nil && found {
			err = errors.New("found")
		}
		return err
	})
	check("LinkUser", []string{"evalsha"}, func() error { return s.LinkUser(ctx, user, id, time.Now().Add(time.Hour)) })
	var unlock func()
	check("Lock, free", []string{"set"}, func() (err error) {
		unlock, err = s.Lock(ctx, id, time.Second, time.Minute)
		return err
	})
	check("unlock", []string{"evalsha"}, func() error { unlock(); return nil })
	h.reset()
	unlock()
	if n, cmds := h.take(); n != 0 {
		t.Errorf("second unlock: %d round trips sending [%s], want none", n, names(cmds))
	}

	// UserSessions: SMEMBERS, then one pipeline of HGET, then (only when
	// some are gone) one SREM.
	h.reset()
	ids, err := s.UserSessions(ctx, user)
	if err != nil || len(ids) != 2 {
		t.Fatalf("UserSessions: %v, %v", ids, err)
	}
	if n, cmds := h.take(); n != 2 || names(cmds) != "smembers,hget,hget" {
		t.Errorf("UserSessions: %d round trips sending [%s], want 2 sending [smembers,hget,hget]", n, names(cmds))
	}
	check("UnlinkUser", []string{"srem"}, func() error { return s.UnlinkUser(ctx, user, warm) })
	check("Delete", []string{"del"}, func() error { return s.Delete(ctx, id) })
	h.reset()
	if ids, err := s.UserSessions(ctx, user); err != nil || len(ids) != 0 {
		t.Fatalf("UserSessions after Delete: %v, %v", ids, err)
	}
	if n, cmds := h.take(); n != 3 || names(cmds) != "smembers,hget,srem" {
		t.Errorf("UserSessions pruning: %d round trips sending [%s], want 3 sending [smembers,hget,srem]", n, names(cmds))
	}
}

// commandCalls parses INFO commandstats into calls per command.
func commandCalls(ctx context.Context, c *redis.Client) (map[string]int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		m[name] = v
	}
	return m, nil
}

// TestServerCommands checks, through INFO commandstats, which commands the
// server executes per operation, scripts' commands included. The server
// may be shared, so each operation is measured up to five times and must
// match exactly once.
func TestServerCommands(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	// Cache the scripts.
	if err := s.Touch(ctx, id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveDelta(ctx, id, sessions.Delta{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	watched := []string{"get", "set", "del", "evalsha", "eval", "hgetall", "hvals", "hset", "hdel", "hget", "hexists", "hkeys",
		"type", "pexpireat", "pexpiretime", "multi", "exec", "sadd", "srem", "smembers"}

	measure := func(op string, want map[string]int64, fn func() error) {
		t.Helper()
		var last map[string]int64
		for attempt := 0; attempt < 5; attempt++ {
			before, err := commandCalls(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := fn(); err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			after, err := commandCalls(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			delta := map[string]int64{}
			ok := true
			for _, name := range watched {
				d := after[name] - before[name]
				if d != 0 {
					delta[name] = d
				}
				if d != want[name] {
					ok = false
				}
			}
			if ok {
				return
			}
			last = delta
		}
		t.Errorf("%s: server ran %v, want %v", op, last, want)
	}
	data := rec(time.Now(), "", "a", "1", "b", "2")
	measure("Save", map[string]int64{"multi": 1, "del": 1, "hset": 1, "pexpireat": 1, "exec": 1}, func() error {
		return s.Save(ctx, id, data, time.Now().Add(time.Hour))
	})
	measure("Load", map[string]int64{"hvals": 1}, func() error {
		_, _, found, err := s.Load(ctx, id)
		if err == nil && !found {
			err = errors.New("not found")
		}
		return err
	})
	delta := func(d sessions.Delta) func() error {
		return func() error {
			found, err := s.SaveDelta(ctx, id, d, time.Now().Add(time.Hour))
			if err == nil && !found {
				err = errors.New("not found")
			}
			return err
		}
	}
	measure("SaveDelta, set", map[string]int64{"evalsha": 1, "type": 1, "hget": 1, "hexists": 1, "hset": 1, "pexpireat": 1},
		delta(sessions.Delta{Set: []sessions.Field{{Key: "c", Value: []byte("3")}}}))
	measure("SaveDelta, clear, delete and set", map[string]int64{"evalsha": 1, "type": 1, "hget": 1, "hexists": 1, "hkeys": 1, "hdel": 2, "hset": 1, "pexpireat": 1},
		delta(sessions.Delta{Clear: true, Delete: []string{"x"}, Set: []sessions.Field{{Key: "c", Value: []byte("3")}}}))
	measure("SaveDelta missing", map[string]int64{"evalsha": 1, "type": 1}, func() error {
		_, err := s.SaveDelta(ctx, storetest.NewID(), sessions.Delta{}, time.Now().Add(time.Hour))
		return err
	})
	measure("Touch", map[string]int64{"evalsha": 1, "type": 1, "hget": 1, "hexists": 1, "hset": 1, "pexpireat": 1}, func() error {
		return s.Touch(ctx, id, time.Now().Add(2*time.Hour))
	})
	measure("Touch missing", map[string]int64{"evalsha": 1, "type": 1}, func() error {
		return s.Touch(ctx, storetest.NewID(), time.Now().Add(2*time.Hour))
	})
	user := "sc-" + storetest.NewID()[:8]
	// The user's set already expires in three hours.
	if err := c.SAdd(ctx, prefix+"user:"+user, "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.PExpire(ctx, prefix+"user:"+user, 3*time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	measure("LinkUser, set expiring later", map[string]int64{"evalsha": 1, "sadd": 1, "pexpiretime": 1}, func() error {
		return s.LinkUser(ctx, user, id, time.Now().Add(time.Hour))
	})
	measure("LinkUser, set expiring earlier", map[string]int64{"evalsha": 1, "sadd": 1, "pexpiretime": 1, "pexpireat": 1}, func() error {
		return s.LinkUser(ctx, user, id, time.Now().Add(4*time.Hour))
	})
	measure("UnlinkUser", map[string]int64{"srem": 1}, func() error { return s.UnlinkUser(ctx, user, "x") })
	measure("UserSessions", map[string]int64{"smembers": 1, "hget": 1}, func() error {
		ids, err := s.UserSessions(ctx, user)
		if err == nil && len(ids) != 1 {
			err = fmt.Errorf("%d sessions, want 1", len(ids))
		}
		return err
	})
	measure("Lock", map[string]int64{"set": 1}, func() error {
		unlock, err := s.Lock(ctx, id, 0, time.Minute)
		if err == nil {
			t.Cleanup(unlock)
		}
		return err
	})
	measure("Delete", map[string]int64{"del": 1}, func() error { return s.Delete(ctx, id) })
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	s := redisstore.New(c)
	ctx := ctxT(t)
	id := storetest.NewID()

	check := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s against a closed port: no error", op)
		}
		if want := "redisstore: " + op + ": "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %q does not start with %q", op, err, want)
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("%s: error %q does not wrap the *net.OpError", op, err)
		}
	}
	_, _, found, err := s.Load(ctx, id)
	if found {
		t.Error("load: found against a closed port")
	}
	check("load", err)
	check("save", s.Save(ctx, id, []byte("x"), time.Now().Add(time.Hour)))
	found, err = s.SaveDelta(ctx, id, sessions.Delta{}, time.Now().Add(time.Hour))
	if found {
		t.Error("save delta: found against a closed port")
	}
	check("save delta", err)
	check("touch", s.Touch(ctx, id, time.Now().Add(time.Hour)))
	check("delete", s.Delete(ctx, id))
	unlock, err := s.Lock(ctx, id, time.Second, time.Minute)
	if unlock != nil {
		t.Error("lock: an unlock func against a closed port")
	}
	check("lock", err)
	check("link user", s.LinkUser(ctx, "u", id, time.Now().Add(time.Hour)))
	check("unlink user", s.UnlinkUser(ctx, "u", id))
	_, err = s.UserSessions(ctx, "u")
	check("user sessions", err)
	check("range", s.Range(ctx, func(string, []byte, time.Time) bool { return true }))
}

func TestContextDeadline(t *testing.T) {
	c := newClient(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	id := storetest.NewID()
	exp := time.Now().Add(time.Hour)
	if _, _, _, err := s.Load(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Load: %v", err)
	}
	if err := s.Save(ctx, id, []byte("x"), exp); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Save: %v", err)
	}
	if _, err := s.SaveDelta(ctx, id, sessions.Delta{}, exp); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SaveDelta: %v", err)
	}
	if err := s.Touch(ctx, id, exp); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Touch: %v", err)
	}
	if err := s.Delete(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Delete: %v", err)
	}
	if _, err := s.Lock(ctx, id, time.Second, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock: %v", err)
	}
	if err := s.LinkUser(ctx, "u", id, exp); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LinkUser: %v", err)
	}
	if err := s.UnlinkUser(ctx, "u", id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("UnlinkUser: %v", err)
	}
	if _, err := s.UserSessions(ctx, "u"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("UserSessions: %v", err)
	}
	if err := s.Range(ctx, func(string, []byte, time.Time) bool { return true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Range: %v", err)
	}
	if n := c.Exists(context.Background(), prefix+id, prefix+"lock:"+id, prefix+"user:u").Val(); n != 0 {
		t.Error("a call with an expired context stored a key")
	}
}

func TestCloseIsNoop(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The client stays usable, and so does the store.
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("client after Close: %v", err)
	}
	if err := s.Save(ctx, storetest.NewID(), []byte("x"), time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("Save after Close: %v", err)
	}
}
