package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
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

var (
	_ sessions.Store   = (*redisstore.Store)(nil)
	_ sessions.Toucher = (*redisstore.Store)(nil)
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

// header decodes the expiry prefix of a raw stored value.
func header(t *testing.T, raw []byte) int64 {
	t.Helper()
	if len(raw) < 8 {
		t.Fatalf("raw value is %d bytes, want at least the 8-byte header", len(raw))
	}
	return int64(binary.BigEndian.Uint64(raw[:8]))
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
			data := []byte("payload \x00\xff")
			if err := s.Save(ctx, id, data, tc.exp); err != nil {
				t.Fatal(err)
			}
			raw, err := c.Get(ctx, prefix+id).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if got := header(t, raw); got != tc.want {
				t.Errorf("embedded expiry %d, want %d", got, tc.want)
			}
			if !bytes.Equal(raw[8:], data) {
				t.Errorf("value after the header is %q, want %q", raw[8:], data)
			}
			if got := c.PExpireTime(ctx, prefix+id).Val(); got != time.Duration(tc.want)*time.Millisecond {
				t.Errorf("PEXPIRETIME %v, want %d ms", got, tc.want)
			}
			_, exp, found, err := s.Load(ctx, id)
			if err != nil || !found {
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

	// A value whose embedded expiry has passed but that Redis still holds
	// (no TTL): Load must not return it.
	id := storetest.NewID()
	v := make([]byte, 8, 12)
	binary.BigEndian.PutUint64(v, uint64(time.Now().Add(-time.Second).UnixMilli()))
	v = append(v, "old!"...)
	if err := c.Set(ctx, prefix+id, v, 0).Err(); err != nil {
		t.Fatal(err)
	}
	data, _, found, err := s.Load(ctx, id)
	if err != nil || found || data != nil {
		t.Fatalf("Load of a value past its embedded expiry: found=%v data=%q err=%v", found, data, err)
	}
	// Touch must not revive it either: the key has no TTL, so the script
	// leaves it alone.
	if err := s.Touch(ctx, id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := s.Load(ctx, id); found {
		t.Fatal("Touch revived an expired value")
	}

	// A short-lived save is gone once its expiry has passed.
	id = storetest.NewID()
	exp := time.Now().Add(150 * time.Millisecond)
	if err := s.Save(ctx, id, []byte("brief"), exp); err != nil {
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

func TestGarbageValue(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))

	for _, raw := range []string{"abc", "", "1234567"} {
		id := storetest.NewID()
		if err := c.Set(ctx, prefix+id, raw, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		data, exp, found, err := s.Load(ctx, id)
		if err != nil || found || data != nil || !exp.IsZero() {
			t.Fatalf("Load of a %d-byte value: data=%q exp=%v found=%v err=%v", len(raw), data, exp, found, err)
		}
		if err := s.Touch(ctx, id, time.Now().Add(2*time.Hour)); err != nil {
			t.Fatalf("Touch of a %d-byte value: %v", len(raw), err)
		}
		if got := c.Get(ctx, prefix+id).Val(); got != raw {
			t.Fatalf("Touch rewrote a %d-byte value to %q", len(raw), got)
		}
	}
}

func TestTouch(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))

	id := storetest.NewID()
	data := bytes.Repeat([]byte("session-bytes "), 100)
	if err := s.Save(ctx, id, data, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	newExp := time.Now().Add(3 * time.Hour).Add(123 * time.Microsecond)
	want := newExp.UnixMilli() + 1 // rounded up
	if err := s.Touch(ctx, id, newExp); err != nil {
		t.Fatal(err)
	}
	raw, err := c.Get(ctx, prefix+id).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if got := header(t, raw); got != want {
		t.Errorf("embedded expiry after Touch %d, want %d", got, want)
	}
	if !bytes.Equal(raw[8:], data) {
		t.Errorf("Touch changed the data")
	}
	if got := c.PExpireTime(ctx, prefix+id).Val(); got != time.Duration(want)*time.Millisecond {
		t.Errorf("PEXPIRETIME after Touch %v, want %d ms", got, want)
	}
	got, exp, found, err := s.Load(ctx, id)
	if err != nil || !found || !bytes.Equal(got, data) || !exp.Equal(time.UnixMilli(want)) {
		t.Fatalf("Load after Touch: found=%v exp=%v err=%v equal=%v", found, exp, err, bytes.Equal(got, data))
	}

	missing := storetest.NewID()
	if err := s.Touch(ctx, missing, newExp); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, prefix+missing).Val(); n != 0 {
		t.Fatal("Touch created a missing key")
	}
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
	data := bytes.Repeat([]byte("D"), 4096)
	// Warm up: a connection in the pool and the Touch script cached on the
	// server, so that what follows counts the steady state.
	if err := s.Touch(ctx, id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	check := func(op, wantCmd string, fn func() error) []redis.Cmder {
		t.Helper()
		h.reset()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		n, cmds := h.take()
		if n != 1 || len(cmds) != 1 || cmds[0].Name() != wantCmd {
			t.Errorf("%s: %d round trips sending [%s], want 1 sending [%s]", op, n, names(cmds), wantCmd)
		}
		return cmds
	}
	check("Save", "set", func() error { return s.Save(ctx, id, data, time.Now().Add(time.Hour)) })
	check("Load", "get", func() error {
		got, _, found, err := s.Load(ctx, id)
		if err == nil && (!found || !bytes.Equal(got, data)) {
			err = fmt.Errorf("found=%v, %d bytes", found, len(got))
		}
		return err
	})
	cmds := check("Touch", "evalsha", func() error { return s.Touch(ctx, id, time.Now().Add(2*time.Hour)) })
	// Touch does not send the session data.
	if len(cmds) == 1 {
		size := 0
		for _, a := range cmds[0].Args() {
			size += len(fmt.Sprint(a))
		}
		if size > 200 {
			t.Errorf("Touch sent %d bytes of arguments: it must not resend the data", size)
		}
	}
	check("Load missing", "get", func() error {
		_, _, found, err := s.Load(ctx, storetest.NewID())
		if err == nil && found {
			err = errors.New("found")
		}
		return err
	})
	check("Delete", "del", func() error { return s.Delete(ctx, id) })
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
// server executes per operation. The server may be shared, so each
// operation is measured up to five times and must match exactly once.
func TestServerCommands(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	id := storetest.NewID()
	if err := s.Touch(ctx, id, time.Now().Add(time.Hour)); err != nil { // cache the script
		t.Fatal(err)
	}
	watched := []string{"get", "set", "del", "evalsha", "eval", "setrange", "pexpireat", "getrange", "append"}

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
	data := []byte("server-side count")
	measure("Save", map[string]int64{"set": 1}, func() error { return s.Save(ctx, id, data, time.Now().Add(time.Hour)) })
	measure("Load", map[string]int64{"get": 1}, func() error {
		_, _, found, err := s.Load(ctx, id)
		if err == nil && !found {
			err = errors.New("not found")
		}
		return err
	})
	measure("Touch", map[string]int64{"evalsha": 1, "setrange": 1, "pexpireat": 1}, func() error {
		return s.Touch(ctx, id, time.Now().Add(2*time.Hour))
	})
	measure("Touch missing", map[string]int64{"evalsha": 1}, func() error {
		return s.Touch(ctx, storetest.NewID(), time.Now().Add(2*time.Hour))
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
	check("touch", s.Touch(ctx, id, time.Now().Add(time.Hour)))
	check("delete", s.Delete(ctx, id))
}

func TestContextDeadline(t *testing.T) {
	c := newClient(t)
	prefix := runPrefix(t, c)
	s := redisstore.New(c, redisstore.WithKeyPrefix(prefix))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	id := storetest.NewID()
	if _, _, _, err := s.Load(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Load: %v", err)
	}
	if err := s.Save(ctx, id, []byte("x"), time.Now().Add(time.Hour)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Save: %v", err)
	}
	if err := s.Touch(ctx, id, time.Now().Add(time.Hour)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Touch: %v", err)
	}
	if err := s.Delete(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Delete: %v", err)
	}
	if n := c.Exists(context.Background(), prefix+id).Val(); n != 0 {
		t.Error("Save with an expired context stored the key")
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
