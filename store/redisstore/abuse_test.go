package redisstore_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

// monitor reads the MONITOR feed of a Redis server, in which the server
// lists every command it executes, from every client, in order. It counts
// what it sees between two marker commands (ECHO start, ECHO end).
type monitor struct {
	conn        net.Conn
	done        chan struct{}
	prefix      string
	start, stop string

	mu       sync.Mutex
	inWindow bool
	started  bool
	ended    bool
	commands int // every command in the window
	hvals    int // HVALS (how the store loads), from any client, on any key
	ours     int // commands naming a key under prefix
	example  string
}

// startMonitor opens a connection of its own to addr and sends MONITOR.
// It is closed when the test ends.
func startMonitor(t *testing.T, addr, prefix string) *monitor {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	var tag [6]byte
	_, _ = rand.Read(tag[:])
	m := &monitor{conn: conn, done: make(chan struct{}), prefix: prefix,
		start: "flood-start-" + hex.EncodeToString(tag[:]), stop: "flood-end-" + hex.EncodeToString(tag[:])}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatalf("monitor: %v", err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR answered %q, %v", line, err)
	}
	_ = conn.SetDeadline(time.Time{})
	go func() {
		defer close(m.done)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // the connection was closed
			}
			m.observe(line)
		}
	}()
	t.Cleanup(m.close)
	return m
}

func (m *monitor) close() {
	_ = m.conn.Close()
	<-m.done
}

// observe counts one line of the feed, such as
// +1700000000.123456 [0 127.0.0.1:50000] "hvals" "prefix:id".
func (m *monitor) observe(line string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case strings.Contains(line, m.start):
		m.inWindow, m.started = true, true
		return
	case strings.Contains(line, m.stop):
		m.inWindow, m.ended = false, true
		return
	case !m.inWindow:
		return
	}
	m.commands++
	_, args, _ := strings.Cut(line, `] "`)
	name, _, _ := strings.Cut(args, `"`)
	if strings.EqualFold(name, "hvals") {
		m.hvals++
	}
	if strings.Contains(line, m.prefix) {
		m.ours++
		if m.example == "" {
			m.example = strings.TrimSpace(line)
		}
	}
}

// mark sends the ECHO marker through c and waits (at most 10 s) until the
// feed shows it, so that every command the server ran before it has been
// counted or skipped.
func (m *monitor) mark(t *testing.T, c *redis.Client, start bool) {
	t.Helper()
	word := m.stop
	if start {
		word = m.start
	}
	if err := c.Echo(ctxT(t), word).Err(); err != nil {
		t.Fatalf("ECHO marker: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		seen := (start && m.started) || (!start && m.ended)
		m.mu.Unlock()
		if seen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the MONITOR feed did not show the marker %q within 10s", word)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sessionKeys returns the keys under prefix, sorted.
func sessionKeys(t *testing.T, c *redis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	ctx := ctxT(t)
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s*: %v", prefix, err)
	}
	slices.Sort(keys)
	return keys
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// floodEngine serves /get (reads a key of the session, writes nothing)
// and /set (writes one) on store.
func floodEngine(key []byte, store sessions.Store) *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(sessions.New(key, sessions.WithStore(store), sessions.WithLogger(slog.New(slog.DiscardHandler))))
	r.GET("/get", func(c *gin.Context) {
		v, _ := sessions.GetAs[string](sessions.Default(c), "k")
		c.String(http.StatusOK, "v=%s", v)
	})
	r.GET("/set", func(c *gin.Context) {
		sessions.Default(c).Set("k", c.Query("v"))
		c.String(http.StatusOK, "ok")
	})
	return r
}

// TestFloodsNeverReachRedis sends a million cookie-less requests and a
// hundred thousand forged cookies to a handler that reads the session, on
// real Redis. Neither creates a key, forged cookies never reach the server
// (the client sends no command and the server runs no HVALS while the
// floods last), and the heap returns to where it was.
func TestFloodsNeverReachRedis(t *testing.T) {
	const (
		plainRequests  = 1_000_000
		forgedRequests = 100_000
		workers        = 4
	)
	hook := &countHook{}
	c := newClient(t, hook)
	prefix := runPrefix(t, c)
	key := bytes.Repeat([]byte("a"), 32)
	r := floodEngine(key, redisstore.New(c, redisstore.WithKeyPrefix(prefix)))

	// The one genuine session.
	req := httptest.NewRequest(http.MethodGet, "/set?v=genuine", nil)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	cookies := w.Result().Cookies()
	if w.Code != http.StatusOK || len(cookies) != 1 {
		t.Fatalf("/set: %d %q, cookies %v", w.Code, w.Body.String(), cookies)
	}
	genuine := cookies[0]
	keys := sessionKeys(t, c, prefix)
	if len(keys) != 1 {
		t.Fatalf("after one session, %d keys under the prefix: %v", len(keys), keys)
	}

	// Forged cookies, each of the genuine cookie's length: random bytes;
	// the genuine cookie with one byte of its payload flipped (every
	// position in turn: timestamp, ID, separators, signature); and
	// well-formed cookies signed with another key.
	raw, err := base64.URLEncoding.DecodeString(genuine.Value)
	if err != nil {
		t.Fatalf("the genuine cookie is not base64url: %v", err)
	}
	other := floodEngine(bytes.Repeat([]byte("b"), 32), redisstore.New(c, redisstore.WithKeyPrefix(prefix+"other:")))
	forged := make([]string, 0, 1200)
	for i := range 400 {
		b := make([]byte, len(raw))
		_, _ = rand.Read(b)
		forged = append(forged, base64.URLEncoding.EncodeToString(b))
		b = bytes.Clone(raw)
		b[i%len(b)] ^= 1 << (i % 8)
		forged = append(forged, base64.URLEncoding.EncodeToString(b))
	}
	for range 400 {
		// /get on another key's engine mints an ID only when asked; ask
		// for one and sign it, without storing anything (no Set).
		w := httptest.NewRecorder()
		other.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/set?v=x", nil))
		cs := w.Result().Cookies()
		if len(cs) != 1 {
			t.Fatalf("other engine: cookies %v", cs)
		}
		forged = append(forged, cs[0].Value)
	}
	for _, v := range forged {
		if len(v) != len(genuine.Value) || v == genuine.Value {
			t.Fatalf("forged value of length %d (genuine %d), or equal to the genuine one", len(v), len(genuine.Value))
		}
	}
	// The other engine stored its sessions under prefix+"other:"; drop
	// them now, so that the prefix holds only the genuine session.
	for _, k := range sessionKeys(t, c, prefix+"other:") {
		if err := c.Del(ctxT(t), k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got := sessionKeys(t, c, prefix); !slices.Equal(got, keys) {
		t.Fatalf("keys under the prefix before the floods: %v, want %v", got, keys)
	}

	plain := httptest.NewRequest(http.MethodGet, "/get", nil)
	forgedReqs := make([]*http.Request, len(forged))
	for i, v := range forged {
		forgedReqs[i] = httptest.NewRequest(http.MethodGet, "/get", nil)
		forgedReqs[i].Header.Set("Cookie", genuine.Name+"="+v)
	}

	var failures atomic.Int64
	run := func(total int, req func(i int) *http.Request) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := httptest.NewRecorder()
				h, body := rec.Header(), rec.Body
				for i := w; i < total; i += workers {
					clear(h)
					body.Reset()
					*rec = httptest.ResponseRecorder{HeaderMap: h, Body: body, Code: http.StatusOK}
					r.ServeHTTP(rec, req(i))
					if rec.Code != http.StatusOK || body.String() != "v=" || len(h["Set-Cookie"]) != 0 {
						if failures.Add(1) <= 5 {
							t.Errorf("request %d: %d %q, Set-Cookie %q; want 200 \"v=\" and no cookie", i, rec.Code, body.String(), h["Set-Cookie"])
						}
						return
					}
				}
			}()
		}
		wg.Wait()
	}

	mon := startMonitor(t, redisAddr(), prefix)
	mon.mark(t, c, true)
	statsBefore, err := commandCalls(ctxT(t), c)
	if err != nil {
		t.Fatal(err)
	}
	hook.reset()
	heapBefore := heapAlloc()

	run(plainRequests, func(int) *http.Request { return plain })
	run(forgedRequests, func(i int) *http.Request { return forgedReqs[i%len(forgedReqs)] })

	heapAfter := heapAlloc()
	sent, cmds := hook.take()
	statsAfter, err := commandCalls(ctxT(t), c)
	if err != nil {
		t.Fatal(err)
	}
	mon.mark(t, c, false)
	mon.close()

	if sent != 0 {
		t.Errorf("the client sent %d round trips to Redis during the floods: [%s]", sent, names(cmds))
	}
	mon.mu.Lock()
	commands, hvals, ours, example := mon.commands, mon.hvals, mon.ours, mon.example
	mon.mu.Unlock()
	if ours != 0 {
		t.Errorf("during the floods the server ran %d commands on keys under this run's prefix, such as %s", ours, example)
	}
	// On a server nobody else uses, both are 0. A client of another test
	// sharing the server may run HVALS meanwhile; MONITOR shows those,
	// and none of them named a key of this run (ours == 0 above).
	serverHvals := statsAfter["hvals"] - statsBefore["hvals"]
	if serverHvals != 0 && serverHvals > int64(hvals) {
		t.Errorf("commandstats: the server ran %d HVALS during the floods, more than the %d MONITOR showed from other clients", serverHvals, hvals)
	}
	if got := sessionKeys(t, c, prefix); !slices.Equal(got, keys) {
		t.Errorf("keys under the prefix after the floods: %v, want only the genuine session %v", got, keys)
	}
	growth := int64(heapAfter) - int64(heapBefore)
	if growth >= 8<<20 {
		t.Errorf("the heap grew by %d bytes over the floods (%d to %d), want less than 8 MiB", growth, heapBefore, heapAfter)
	}

	req = httptest.NewRequest(http.MethodGet, "/get", nil)
	req.AddCookie(&http.Cookie{Name: genuine.Name, Value: genuine.Value})
	w = httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusOK || w.Body.String() != "v=genuine" {
		t.Errorf("the genuine session after the floods: %d %q, want 200 \"v=genuine\"", w.Code, w.Body.String())
	}
	t.Logf("%d cookie-less and %d forged requests (%d distinct forged values); client round trips %d; server: %d commands seen by MONITOR (none on this run's keys), %d of them HVALS, commandstats HVALS delta %d; heap %d -> %d bytes (%+d)",
		plainRequests, forgedRequests, len(forged), sent, commands, hvals, serverHvals, heapBefore, heapAfter, growth)
}
