package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

// unavailable is the body the default error handler answers a store error
// with.
const unavailable = `{"error":"session store unavailable"}`

// redisProc is a redis-server process of the test's own, on a free loopback
// port, that the test can kill and start again on the same port and data
// directory.
//
// It runs with --save "" (no RDB snapshots) and --appendonly yes
// --appendfsync always: every write is appended to the AOF and fsynced
// before its reply is sent, so a write that was acknowledged survives a
// SIGKILL, and a restart on the same directory replays it. A kill is the
// harshest stop there is (no shutdown hook, no final save); SHUTDOWN NOSAVE
// or DEBUG RELOAD would be gentler and prove less.
type redisProc struct {
	t       *testing.T
	bin     string
	port    string
	dir     string
	logFile string
	cmd     *exec.Cmd
}

func (p *redisProc) addr() string { return "127.0.0.1:" + p.port }

// newRedisProc finds redis-server and picks a free port and a data
// directory. The process is started with start and killed when the test
// ends.
func newRedisProc(t *testing.T) *redisProc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		storetest.Unreachable(t, "redis-server", installRedis, err)
	}
	dir := t.TempDir()
	p := &redisProc{t: t, bin: bin, port: strconv.Itoa(freePort(t)), dir: dir, logFile: filepath.Join(dir, "redis.log")}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.logFile)
			t.Logf("redis.log:\n%s", tail(b, 3000))
		}
	})
	return p
}

// freePort returns a free TCP port on 127.0.0.1, never 6379.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if port != 6379 {
			return port
		}
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}

// start starts the server and waits (at most 10 s) until it answers PING,
// its data loaded.
func (p *redisProc) start() {
	p.t.Helper()
	p.startWith()
	p.waitFor("answers PING", func(admin *redis.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return admin.Ping(ctx).Err()
	})
}

// startWith starts the server, with extra arguments, and returns at once.
func (p *redisProc) startWith(extra ...string) {
	p.t.Helper()
	args := []string{
		"--port", p.port,
		"--bind", "127.0.0.1",
		"--dir", p.dir,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "always",
		"--daemonize", "no",
		"--logfile", p.logFile,
	}
	cmd := exec.Command(p.bin, append(args, extra...)...)
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start redis-server on port %s: %v", p.port, err)
	}
	p.cmd = cmd
}

// waitFor polls check (at most 10 s) until it returns nil.
func (p *redisProc) waitFor(what string, check func(admin *redis.Client) error) {
	p.t.Helper()
	admin := p.admin()
	defer admin.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check(admin)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("redis-server on port %s: waited 10s until it %s: %v", p.port, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops the server with SIGKILL and reaps it.
func (p *redisProc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// admin returns a client of the server for the test's own commands, apart
// from the one the application uses. The caller closes it.
func (p *redisProc) admin() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.addr(), MaxRetries: -1, DialTimeout: time.Second, DialerRetries: 1})
}

// probeKey is the request-context key of a request's *probe.
type probeKey struct{}

// probe records the store calls of one request: the middleware passes the
// request's context (and its values) on to the store.
type probe struct {
	mu    sync.Mutex
	calls []storeCall
}

type storeCall struct {
	op          string
	err         error
	hadDeadline bool
}

func (p *probe) failed() []storeCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []storeCall
	for _, c := range p.calls {
		if c.err != nil {
			out = append(out, c)
		}
	}
	return out
}

func (p *probe) ops() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls {
		out = append(out, c.op)
	}
	return out
}

// recordingStore passes every call on to the Redis store and records it,
// with its error, in the probe of the request it was made for. It keeps the
// store's DeltaSaver and Toucher, so the middleware takes the same paths as
// on the bare store.
type recordingStore struct{ s *redisstore.Store }

var (
	_ sessions.DeltaSaver = recordingStore{}
	_ sessions.Toucher    = recordingStore{}
)

func (r recordingStore) note(ctx context.Context, op string, err error) {
	p, _ := ctx.Value(probeKey{}).(*probe)
	if p == nil {
		return
	}
	_, dl := ctx.Deadline()
	p.mu.Lock()
	p.calls = append(p.calls, storeCall{op: op, err: err, hadDeadline: dl})
	p.mu.Unlock()
}

func (r recordingStore) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	data, exp, found, err := r.s.Load(ctx, id)
	r.note(ctx, "load", err)
	return data, exp, found, err
}

func (r recordingStore) Save(ctx context.Context, id string, data []byte, exp time.Time) error {
	err := r.s.Save(ctx, id, data, exp)
	r.note(ctx, "save", err)
	return err
}

func (r recordingStore) Delete(ctx context.Context, id string) error {
	err := r.s.Delete(ctx, id)
	r.note(ctx, "delete", err)
	return err
}

func (r recordingStore) SaveDelta(ctx context.Context, id string, d sessions.Delta, exp time.Time) (bool, error) {
	found, err := r.s.SaveDelta(ctx, id, d, exp)
	r.note(ctx, "save_delta", err)
	return found, err
}

func (r recordingStore) Touch(ctx context.Context, id string, exp time.Time) error {
	err := r.s.Touch(ctx, id, exp)
	r.note(ctx, "touch", err)
	return err
}

// errKind names the kind of a store error: "deadline" for one wrapping
// context.DeadlineExceeded, "timeout" for a network timeout, "connection"
// for a refused, reset or closed connection, "" for anything else.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return "connection"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return "connection"
	}
	return ""
}

// faultResult is one request of the load run, as the client saw it. Times
// are offsets from the start of the run, on the monotonic clock.
type faultResult struct {
	path       string
	sess       int // index of the session; -1 for /health
	start, end time.Duration
	code       int
	body       string
	setCookie  string
	calls      []string    // store operations, in order
	failed     []storeCall // the store calls that returned an error
	panicked   any
}

// serveProbed serves one GET request through h with a probe in its context.
func serveProbed(h http.Handler, path, cookie string) (res faultResult) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	p := &probe{}
	req = req.WithContext(context.WithValue(req.Context(), probeKey{}, p))
	w := httptest.NewRecorder()
	func() {
		defer func() { res.panicked = recover() }()
		h.ServeHTTP(w, req)
	}()
	res.path, res.code, res.body = path, w.Code, w.Body.String()
	res.setCookie = w.Header().Get("Set-Cookie")
	res.calls, res.failed = p.ops(), p.failed()
	return res
}

func countOf(t *testing.T, body string) int {
	t.Helper()
	var v struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Count == nil {
		t.Fatalf("body %q is not {\"count\":n}: %v", body, err)
	}
	return *v.Count
}

// faultEngine is the application of the fault tests: /count increments a
// counter in the session, /peek reads it without writing, /health never
// touches the session.
func faultEngine(store sessions.Store, storeTimeout time.Duration) *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New() // no Recovery: a panic reaches serveProbed, which records it
	r.Use(sessions.New(bytes.Repeat([]byte("f"), 32),
		sessions.WithStore(store),
		sessions.WithStoreTimeout(storeTimeout),
		sessions.WithLogger(slog.New(slog.DiscardHandler)), // thousands of expected store errors
	))
	r.GET("/count", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		s.Set("count", n+1)
		c.JSON(http.StatusOK, gin.H{"count": n + 1})
	})
	r.GET("/peek", func(c *gin.Context) {
		n, _ := sessions.GetAs[int](sessions.Default(c), "count")
		c.JSON(http.StatusOK, gin.H{"count": n})
	})
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	return r
}

// TestRedisFaults runs a load of session requests against a redis-server
// of the test's own, and meanwhile freezes it (CLIENT PAUSE), then kills it
// (SIGKILL) and starts it again on the same port and data directory. The
// application (engine, store, go-redis client) is never restarted.
//
// Asserted, counting outcomes and never durations:
//   - no request panics;
//   - every request that ran entirely while the server was frozen or down
//     answers 503 with the default error handler's JSON if it used its
//     session, and 200 if it did not (/health);
//   - every 503 comes from a store call that ended with the deadline of
//     WithStoreTimeout (context.DeadlineExceeded, or the network timeout
//     go-redis sets from it) or a connection error, and every store call
//     had that deadline: no request waits on the store beyond it;
//   - after the restart requests succeed again, with the same client;
//   - the sessions stored before the faults survive the kill (DBSIZE after
//     the restart) and hold exactly their count before the load plus the
//     increments answered 200, plus at most the writes whose reply was lost
//     (a save sent, failed at the client, that the server may still have
//     applied); a 200 never hands out a new session.
func TestRedisFaults(t *testing.T) {
	const (
		numSessions  = 20
		workers      = 4
		maxPerWorker = 40_000 // requests; the run ends long before
		pauseFor     = 1500 * time.Millisecond
		waitLimit    = 20 * time.Second // for each stage of the run
	)
	srv := newRedisProc(t)
	srv.start()
	{
		admin := srv.admin()
		ctx := ctxT(t)
		for name, want := range map[string]string{"appendonly": "yes", "appendfsync": "always", "save": ""} {
			got, err := admin.ConfigGet(ctx, name).Result()
			if err != nil || got[name] != want {
				t.Fatalf("CONFIG GET %s = %v (%v), want %q", name, got, err, want)
			}
		}
		_ = admin.Close()
	}

	client := redis.NewClient(&redis.Options{
		Addr:                  srv.addr(),
		ContextTimeoutEnabled: true,
		DialTimeout:           200 * time.Millisecond,
		DialerRetries:         1,
		// Longer than the store timeout, so that a frozen server is cut off
		// by the request's deadline.
		ReadTimeout:  500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond,
		MaxRetries:   -1, // one attempt per store call: every outcome is counted
		PoolSize:     8,
	})
	t.Cleanup(func() { _ = client.Close() })
	store := recordingStore{redisstore.New(client, redisstore.WithKeyPrefix("fault:"))}
	r := faultEngine(store, 300*time.Millisecond)

	// N sessions with known counts: session i holds i+1.
	cookies := make([]string, numSessions)
	before := make([]int, numSessions)
	for i := range cookies {
		for k := 0; k <= i; k++ {
			res := serveProbed(r, "/count", cookies[i])
			if res.code != http.StatusOK || res.panicked != nil {
				t.Fatalf("setting up session %d: %d %s (panic %v, failed calls %v)", i, res.code, res.body, res.panicked, res.failed)
			}
			if k == 0 {
				c := (&http.Response{Header: http.Header{"Set-Cookie": {res.setCookie}}}).Cookies()
				if len(c) != 1 {
					t.Fatalf("session %d: Set-Cookie %q", i, res.setCookie)
				}
				cookies[i] = c[0].Name + "=" + c[0].Value
			}
		}
		before[i] = i + 1
	}

	// The load: each worker drives its own sessions (i%workers), one
	// request at a time, so the requests of one session never race, and
	// sends /health between two of them.
	base := time.Now()
	since := func() time.Duration { return time.Since(base) }
	var (
		stop                   atomic.Bool
		ok200, count503, total atomic.Int64
		downFrom               atomic.Int64 // offset when the server was down; 0 while up
		restartFrom            atomic.Int64 // offset when the restart began; 0 before
		downCount503           atomic.Int64 // /count 503s started after downFrom
		afterRestart200        atomic.Int64 // /count 200s started after restartFrom
	)
	results := make([][]faultResult, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []int
			for i := w; i < numSessions; i += workers {
				mine = append(mine, i)
			}
			for n := 0; n < maxPerWorker && !stop.Load(); n++ {
				var res faultResult
				start := since()
				if n%2 == 0 {
					i := mine[(n/2)%len(mine)]
					res = serveProbed(r, "/count", cookies[i])
					res.sess = i
				} else {
					res = serveProbed(r, "/health", "")
					res.sess = -1
				}
				res.start, res.end = start, since()
				results[w] = append(results[w], res)
				total.Add(1)
				if res.sess >= 0 {
					switch res.code {
					case http.StatusOK:
						ok200.Add(1)
						if rf := restartFrom.Load(); rf > 0 && int64(start) >= rf {
							afterRestart200.Add(1)
						}
					case http.StatusServiceUnavailable:
						count503.Add(1)
						if df := downFrom.Load(); df > 0 && int64(start) >= df {
							downCount503.Add(1)
						}
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			stop.Store(true)
			wg.Wait()
		}
	}
	defer stopLoad()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for !cond() {
			if time.Now().After(deadline) {
				stopLoad()
				t.Fatalf("waited %v for %s; %d requests, %d /count answered 200, %d answered 503", waitLimit, what, total.Load(), ok200.Load(), count503.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// 1. Up.
	waitFor("40 counts answered 200 before the faults", func() bool { return ok200.Load() >= 40 })

	// 2. Frozen: CLIENT PAUSE holds every command of every client for
	// pauseFor. The server cannot resume before pauseSent+pauseFor, so a
	// request that started after the PAUSE reply and ended before then
	// found it frozen throughout.
	admin := srv.admin()
	pauseSent := since()
	if err := admin.Do(ctxT(t), "CLIENT", "PAUSE", strconv.FormatInt(pauseFor.Milliseconds(), 10), "ALL").Err(); err != nil {
		stopLoad()
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	pauseReplied := since()
	_ = admin.Close()
	time.Sleep(time.Until(base.Add(pauseSent + pauseFor)))
	pauseEnd := pauseSent + pauseFor
	resumed := ok200.Load()
	waitFor("40 counts answered 200 after the pause", func() bool { return ok200.Load() >= resumed+40 })

	// 3. Down: SIGKILL, after which nothing listens on the port.
	srv.kill()
	down := since()
	downFrom.Store(int64(down))
	waitFor("30 counts answered 503 while the server is down", func() bool { return downCount503.Load() >= 30 })

	// 4. Up again, on the same port and AOF directory.
	restart := since()
	restartFrom.Store(int64(restart))
	srv.start()
	{
		admin := srv.admin()
		n, err := admin.DBSize(ctxT(t)).Result()
		_ = admin.Close()
		if err != nil || n != numSessions {
			stopLoad()
			t.Fatalf("after the restart the server holds %d keys (%v), want the %d sessions", n, err, numSessions)
		}
	}
	waitFor("the first count answered 200 after the restart", func() bool { return afterRestart200.Load() >= 1 })
	waitFor("40 counts answered 200 after the restart", func() bool { return afterRestart200.Load() >= 40 })
	stopLoad()

	// Every request, one session at a time in the order it was sent.
	type sessState struct {
		last, pending, ok, lost int
	}
	state := make([]sessState, numSessions)
	for i := range state {
		state[i].last = before[i]
	}
	type tally struct{ count503, health200, n int }
	var inPause, inDown tally
	kinds := map[string]int{}
	var first200AfterRestart bool
	for w := range results {
		for _, res := range results[w] {
			if res.panicked != nil {
				t.Errorf("%s panicked: %v", res.path, res.panicked)
				continue
			}
			var tl *tally
			switch {
			case res.start >= pauseReplied && res.end <= pauseEnd:
				tl = &inPause
			case res.start >= down && res.end <= restart:
				tl = &inDown
			}
			if res.sess < 0 {
				if res.code != http.StatusOK || res.body != "ok" || len(res.calls) != 0 || res.setCookie != "" {
					t.Errorf("/health at %v: %d %q, store calls %v, Set-Cookie %q; want 200 without the store", res.start, res.code, res.body, res.calls, res.setCookie)
				}
				if tl != nil {
					tl.health200++
				}
				continue
			}
			if tl != nil {
				tl.n++
			}
			st := &state[res.sess]
			if res.setCookie != "" {
				t.Errorf("/count of session %d at %v (%d) set a cookie: the session was replaced", res.sess, res.start, res.code)
			}
			switch res.code {
			case http.StatusOK:
				if tl != nil {
					t.Errorf("/count of session %d answered 200 while the server was frozen or down (%v to %v)", res.sess, res.start, res.end)
				}
				if len(res.failed) > 0 {
					t.Errorf("/count of session %d answered 200 despite failed store calls %v", res.sess, res.failed)
				}
				k := countOf(t, res.body)
				if k < st.last+1 || k > st.last+1+st.pending {
					t.Errorf("session %d answered count %d after %d (with %d unacknowledged writes since): an increment was lost or invented", res.sess, k, st.last, st.pending)
				}
				st.last, st.pending = k, 0
				st.ok++
				if res.start >= restart {
					first200AfterRestart = true
				}
			case http.StatusServiceUnavailable:
				if tl != nil {
					tl.count503++
				}
				if res.body != unavailable {
					t.Errorf("/count 503 body %q, want %s", res.body, unavailable)
				}
				if len(res.failed) == 0 {
					t.Errorf("/count of session %d answered 503 without a failed store call (calls %v)", res.sess, res.calls)
				}
				for _, c := range res.failed {
					kind := errKind(c.err)
					kinds[c.op+": "+kind]++
					if kind == "" {
						t.Errorf("/count of session %d: store %s failed with %v (%T), neither a deadline nor a connection error", res.sess, c.op, c.err, c.err)
					}
					if !c.hadDeadline {
						t.Errorf("store %s ran without a deadline", c.op)
					}
					if c.op != "load" {
						// Sent, then cut off: the server may have applied it.
						st.pending++
						st.lost++
					}
				}
			default:
				t.Errorf("/count of session %d: %d %q", res.sess, res.code, res.body)
			}
		}
	}
	if inPause.n == 0 || inPause.count503 != inPause.n || inPause.health200 == 0 {
		t.Errorf("while frozen: %d /count, %d answered 503, %d /health answered 200; want at least one of each, every /count 503", inPause.n, inPause.count503, inPause.health200)
	}
	if inDown.n == 0 || inDown.count503 != inDown.n || inDown.health200 == 0 {
		t.Errorf("while down: %d /count, %d answered 503, %d /health answered 200; want at least one of each, every /count 503", inDown.n, inDown.count503, inDown.health200)
	}
	if !first200AfterRestart {
		t.Error("no /count answered 200 after the restart")
	}

	// The stored counts: before + the increments answered 200 + at most the
	// writes whose reply was lost. Then each session takes one more count.
	var lostTotal, landed int
	for i, st := range state {
		res := serveProbed(r, "/peek", cookies[i])
		if res.code != http.StatusOK || res.setCookie != "" {
			t.Errorf("/peek of session %d after the run: %d %q, Set-Cookie %q", i, res.code, res.body, res.setCookie)
			continue
		}
		got := countOf(t, res.body)
		if got < st.last || got > st.last+st.pending {
			t.Errorf("session %d holds %d: before the faults %d, %d increments answered 200, last answered %d, %d unacknowledged writes since; want %d to %d",
				i, got, before[i], st.ok, st.last, st.pending, st.last, st.last+st.pending)
		}
		lostTotal += st.lost
		landed += got - before[i] - st.ok
		res = serveProbed(r, "/count", cookies[i])
		if res.code != http.StatusOK || countOf(t, res.body) != got+1 {
			t.Errorf("/count of session %d after the run: %d %q, want 200 {\"count\":%d}", i, res.code, res.body, got+1)
		}
	}
	t.Logf("%d requests: %d /count answered 200, %d answered 503; while frozen %d /count all 503, %d /health 200; while down %d /count all 503, %d /health 200; failed store calls by kind %v; %d writes cut off, %d of them applied by the server",
		total.Load(), ok200.Load(), count503.Load(), inPause.n, inPause.health200, inDown.n, inDown.health200, kinds, lostTotal, landed)
}

// blockingStore wraps a store; while block is set, its Load and Save wait
// until their context is done (or an hour passes) and report what they saw.
type blockingStore struct {
	sessions.Store
	block       atomic.Bool
	calls       atomic.Int32
	noDeadline  atomic.Int32
	notDeadline atomic.Int32 // calls that ended other than by DeadlineExceeded
}

func (b *blockingStore) wait(ctx context.Context) error {
	b.calls.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		b.noDeadline.Add(1)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			b.notDeadline.Add(1)
		}
		return fmt.Errorf("blocking store: %w", ctx.Err())
	case <-timer.C:
		b.notDeadline.Add(1)
		return errors.New("blocking store: an hour passed")
	}
}

func (b *blockingStore) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	if b.block.Load() {
		return nil, time.Time{}, false, b.wait(ctx)
	}
	return b.Store.Load(ctx, id)
}

func (b *blockingStore) Save(ctx context.Context, id string, data []byte, exp time.Time) error {
	if b.block.Load() {
		return b.wait(ctx)
	}
	return b.Store.Save(ctx, id, data, exp)
}

// TestSlowStoreNeverHangsARequest: a store that never answers cannot hold
// a request past WithStoreTimeout. Its calls get a context with a deadline,
// which ends them, and the request is answered 503. Neither could happen
// otherwise: without the deadline the request would wait an hour.
func TestSlowStoreNeverHangsARequest(t *testing.T) {
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	st := &blockingStore{Store: mem}
	r := faultEngine(st, 100*time.Millisecond)

	res := serveProbed(r, "/count", "")
	c := (&http.Response{Header: http.Header{"Set-Cookie": {res.setCookie}}}).Cookies()
	if res.code != http.StatusOK || len(c) != 1 {
		t.Fatalf("first /count: %d %q, Set-Cookie %q", res.code, res.body, res.setCookie)
	}
	cookie := c[0].Name + "=" + c[0].Value
	st.block.Store(true)

	for _, tc := range []struct{ name, cookie string }{
		{"load of a stored session", cookie},
		{"save of a new session", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := st.calls.Load()
			done := make(chan faultResult, 1)
			go func() { done <- serveProbed(r, "/count", tc.cookie) }()
			var res faultResult
			select {
			case res = <-done:
			case <-time.After(30 * time.Second):
				// Not a timing assertion: a hung request is unbounded, and
				// the test must end.
				t.Fatal("the request was still running after 30s")
			}
			if res.panicked != nil {
				t.Fatalf("panic: %v", res.panicked)
			}
			if res.code != http.StatusServiceUnavailable || res.body != unavailable {
				t.Errorf("got %d %q, want 503 %s", res.code, res.body, unavailable)
			}
			if res.setCookie != "" {
				t.Errorf("Set-Cookie %q on a failed request", res.setCookie)
			}
			if n := st.calls.Load() - calls; n != 1 {
				t.Errorf("%d blocking store calls, want 1", n)
			}
			if n := st.noDeadline.Load(); n != 0 {
				t.Errorf("%d store calls got a context without a deadline", n)
			}
			if n := st.notDeadline.Load(); n != 0 {
				t.Errorf("%d store calls ended other than by their deadline", n)
			}
		})
	}

	// Once the store answers again, so does the session.
	st.block.Store(false)
	if res := serveProbed(r, "/count", cookie); res.code != http.StatusOK || !strings.Contains(res.body, `"count":2`) {
		t.Errorf("/count after the store recovered: %d %q, want 200 count 2", res.code, res.body)
	}
}

// TestLoadingServerIsNotAnEmptySession: a restarted Redis answers every
// command with a LOADING error while it replays its data. A request of a
// stored session made then must fail (503) like any other store outage,
// not be served an empty new session: that would show a signed-in visitor
// as signed out, and a handler that then writes would start over.
func TestLoadingServerIsNotAnEmptySession(t *testing.T) {
	srv := newRedisProc(t)
	srv.start()
	client := redis.NewClient(&redis.Options{
		Addr: srv.addr(), ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond,
	})
	t.Cleanup(func() { _ = client.Close() })
	r := faultEngine(recordingStore{redisstore.New(client, redisstore.WithKeyPrefix("loading:"))}, time.Second)

	var cookie string
	for range 3 {
		res := serveProbed(r, "/count", cookie)
		if res.code != http.StatusOK {
			t.Fatalf("/count: %d %q", res.code, res.body)
		}
		if cookie == "" {
			c := (&http.Response{Header: http.Header{"Set-Cookie": {res.setCookie}}}).Cookies()
			if len(c) != 1 {
				t.Fatalf("Set-Cookie %q", res.setCookie)
			}
			cookie = c[0].Name + "=" + c[0].Value
		}
	}
	// Other data, so that replaying the AOF takes a while.
	admin := srv.admin()
	p := admin.Pipeline()
	for i := range 20_000 {
		p.Set(ctxT(t), "filler:"+strconv.Itoa(i), "x", 0)
	}
	if _, err := p.Exec(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()

	srv.kill()
	// key-load-delay (microseconds per key) slows the replay down, and
	// loading-process-events-interval-bytes makes the server answer
	// (LOADING) while it replays.
	srv.startWith("--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024")
	loading := func(admin *redis.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := admin.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
			return fmt.Errorf("not loading: PING answered %v", err)
		}
		return nil
	}
	srv.waitFor("replays its data (LOADING)", loading)
	admin = srv.admin()
	during := 0
	for range 50 {
		if loading(admin) != nil {
			break
		}
		res := serveProbed(r, "/peek", cookie)
		if loading(admin) != nil {
			break // the request may have run once the data was back
		}
		during++
		if res.code != http.StatusServiceUnavailable || res.body != unavailable || res.setCookie != "" {
			t.Errorf("/peek while the server loads: %d %q (Set-Cookie %q, store calls %v, failed %v); want 503 %s",
				res.code, res.body, res.setCookie, res.calls, res.failed, unavailable)
		}
	}
	_ = admin.Close()
	if during == 0 {
		t.Fatal("no request ran while the server was loading")
	}
	srv.waitFor("answers PING", func(admin *redis.Client) error { return admin.Ping(context.Background()).Err() })
	if res := serveProbed(r, "/peek", cookie); res.code != http.StatusOK || countOf(t, res.body) != 3 {
		t.Errorf("/peek once loaded: %d %q, want 200 count 3", res.code, res.body)
	}
	t.Logf("%d requests ran while the server was loading", during)
}
