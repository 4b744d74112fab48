package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The bodies the default error handler answers with: a store error, and a
// session whose lock could not be taken.
const (
	faultUnavailable = `{"error":"session store unavailable"}`
	faultBusy        = `{"error":"session busy, try again"}`
)

// faultProbeKey is the request-context key of a request's *faultProbe.
type faultProbeKey struct{}

// faultCall is one store call of a request.
type faultCall struct {
	op  string
	err error
	// fnCalled: an Update whose fn ran, so its write batch (UPDATE and
	// COMMIT) may have reached the server even if the call failed.
	fnCalled bool
}

// faultProbe records the store calls of one request: the middleware passes
// the request's context (and its values) on to the store.
type faultProbe struct {
	mu         sync.Mutex
	id         string
	calls      []faultCall
	locked     bool // Lock succeeded
	overlapped bool // the /count handler found another request of the session inside it
}

func (p *faultProbe) add(id string, c faultCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.id == "" {
		p.id = id
	}
	p.calls = append(p.calls, c)
	if c.op == "lock" && c.err == nil {
		p.locked = true
	}
}

// faultStore passes every call on to the PostgreSQL store and records it,
// with its error, in the probe of the request it was made for. It keeps the
// store's Updater, Toucher and Locker, so the middleware takes the same
// paths as on the bare store.
type faultStore struct{ s *Store }

var (
	_ sessions.Updater = faultStore{}
	_ sessions.Toucher = faultStore{}
	_ sessions.Locker  = faultStore{}
)

func (f faultStore) note(ctx context.Context, id string, c faultCall) {
	if p, _ := ctx.Value(faultProbeKey{}).(*faultProbe); p != nil {
		p.add(id, c)
	}
}

func (f faultStore) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	data, exp, found, err := f.s.Load(ctx, id)
	f.note(ctx, id, faultCall{op: "load", err: err})
	return data, exp, found, err
}

func (f faultStore) Save(ctx context.Context, id string, data []byte, exp time.Time) error {
	err := f.s.Save(ctx, id, data, exp)
	f.note(ctx, id, faultCall{op: "save", err: err})
	return err
}

func (f faultStore) Delete(ctx context.Context, id string) error {
	err := f.s.Delete(ctx, id)
	f.note(ctx, id, faultCall{op: "delete", err: err})
	return err
}

func (f faultStore) Touch(ctx context.Context, id string, exp time.Time) error {
	err := f.s.Touch(ctx, id, exp)
	f.note(ctx, id, faultCall{op: "touch", err: err})
	return err
}

func (f faultStore) Update(ctx context.Context, id string, exp time.Time, fn func([]byte) ([]byte, error)) (bool, error) {
	called := false
	found, err := f.s.Update(ctx, id, exp, func(cur []byte) ([]byte, error) {
		called = true
		return fn(cur)
	})
	f.note(ctx, id, faultCall{op: "update", err: err, fnCalled: called})
	return found, err
}

func (f faultStore) Lock(ctx context.Context, id string, wait, lease time.Duration) (func(), error) {
	unlock, err := f.s.Lock(ctx, id, wait, lease)
	f.note(ctx, id, faultCall{op: "lock", err: err})
	return unlock, err
}

// faultErrKind names the kind of a failed store call: "terminated" for the
// server's FATAL 57P01 (the backend was terminated), "connection" for a
// connection that was closed or reset under the call, "deadline" for the
// deadline of WithStoreTimeout, "waited" for a lock that stayed held for
// the whole wait, "" for anything else.
func faultErrKind(err error) string {
	var pe *pgconn.PgError
	var opErr *net.OpError
	switch {
	case errors.As(err, &pe) && pe.Code == "57P01":
		return "terminated"
	case errors.Is(err, sessions.ErrLocked):
		return "waited"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "deadline"
	case errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		errors.As(err, &opErr):
		return "connection"
	}
	return ""
}

// faultResult is one request, as the client saw it. Times are offsets from
// the start of the run, on the monotonic clock.
type faultResult struct {
	path       string
	sess       int // index of the session; -1 for /health
	start, end time.Duration
	code       int
	body       string
	setCookie  string
	id         string
	calls      []faultCall
	locked     bool
	overlapped bool
	panicked   any
}

func (r faultResult) failed() []faultCall {
	var out []faultCall
	for _, c := range r.calls {
		if c.err != nil {
			out = append(out, c)
		}
	}
	return out
}

// faultServe serves one GET request through h with a probe in its context.
func faultServe(h http.Handler, path, cookie string) (res faultResult) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	p := &faultProbe{}
	req = req.WithContext(context.WithValue(req.Context(), faultProbeKey{}, p))
	w := httptest.NewRecorder()
	func() {
		defer func() { res.panicked = recover() }()
		h.ServeHTTP(w, req)
	}()
	res.path, res.code, res.body = path, w.Code, w.Body.String()
	res.setCookie = w.Header().Get("Set-Cookie")
	p.mu.Lock()
	res.id, res.calls, res.locked, res.overlapped = p.id, append([]faultCall(nil), p.calls...), p.locked, p.overlapped
	p.mu.Unlock()
	return res
}

// faultCount reads {"count":n}; ok is false for any other body.
func faultCount(body string) (int, bool) {
	var v struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Count == nil {
		return 0, false
	}
	return *v.Count, true
}

// faultEngine is the application: /count increments a counter in the
// session (holding the session for hold between its read and its write),
// /peek reads it, /health never touches the session. Store calls are
// bounded by a store timeout of 500 ms.
func faultEngine(store sessions.Store, hold time.Duration, extra ...sessions.Option) *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New() // no Recovery: a panic reaches faultServe, which records it
	opts := append([]sessions.Option{
		sessions.WithStore(store),
		sessions.WithStoreTimeout(500 * time.Millisecond),
		sessions.WithLogger(slog.New(slog.DiscardHandler)), // hundreds of expected store errors
	}, extra...)
	r.Use(sessions.New(bytes.Repeat([]byte("p"), 32), opts...))
	var inside sync.Map // session ID -> *atomic.Int32: /count handlers running for it
	r.GET("/count", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		if s.Err() != nil {
			return // the error handler has answered
		}
		v, _ := inside.LoadOrStore(s.ID(), new(atomic.Int32))
		in := v.(*atomic.Int32)
		if in.Add(1) > 1 {
			if p, _ := c.Request.Context().Value(faultProbeKey{}).(*faultProbe); p != nil {
				p.mu.Lock()
				p.overlapped = true
				p.mu.Unlock()
			}
		}
		if hold > 0 {
			time.Sleep(hold)
		}
		s.Set("count", n+1)
		c.JSON(http.StatusOK, gin.H{"count": n + 1}) // saves the session first
		in.Add(-1)
	})
	r.GET("/peek", func(c *gin.Context) {
		n, _ := sessions.GetAs[int](sessions.Default(c), "count")
		c.JSON(http.StatusOK, gin.H{"count": n})
	})
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	return r
}

// faultAppPool returns the application's pool, whose connections carry a
// per-run application_name, so that the test can terminate exactly them,
// and the admin pool the test's own statements use.
func faultAppPool(t *testing.T, maxConns int32) (pool, admin *pgxpool.Pool, app string) {
	t.Helper()
	admin = testPool(t) // skips (or fails with CI set) when the server is down
	cfg, err := pgxpool.ParseConfig(dsn())
	if err != nil {
		t.Fatalf("pgxpool.ParseConfig: %v", err)
	}
	app = "fastsession_fault_" + randHex()
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.MaxConns = maxConns
	pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgxpool.NewWithConfig: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, admin, app
}

// faultKillSQL terminates the backends of the application's pool ($1 is its
// application_name), or with $2 only those that hold an advisory lock. It
// returns each victim's pid, the keys of the advisory locks it held, and
// whether it was signalled.
const faultKillSQL = `WITH victims AS (
	SELECT a.pid,
	       array_remove(array_agg((l.classid::bigint << 32) | l.objid::bigint), NULL) AS keys
	FROM pg_stat_activity a
	LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
	WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.application_name = $1
	GROUP BY a.pid
)
SELECT pid, keys, pg_terminate_backend(pid) FROM victims
WHERE NOT $2::boolean OR cardinality(keys) > 0`

// faultKill is one round of terminations, with the window in which they
// happened: from before the statement was sent until every victim had
// exited (a backend releases its locks before it leaves pg_stat_activity).
type faultKill struct {
	from, to time.Duration
	lockOnly bool
	pids     []int32 // backends terminated
	lockKeys []int64 // the advisory locks they held
}

// faultLoad is a bounded load of /count and /health requests, run by a
// few workers, with the bookkeeping the waits need.
type faultLoad struct {
	t       *testing.T
	r       http.Handler
	cookies []string
	base    time.Time

	stop    atomic.Bool
	wg      sync.WaitGroup
	stopped bool
	results [][]faultResult

	total, ok200, count503 atomic.Int64
	last200                atomic.Int64   // end offset of the latest /count answered 200
	sess200                []atomic.Int64 // per session: start offset of its latest /count answered 200
	kills                  []faultKill
}

func (l *faultLoad) since() time.Duration { return time.Since(l.base) }

// run starts workers; worker w sends /count for session pick(w, n) as its
// n-th count, with a /health between two counts, at most maxPerWorker
// requests.
func (l *faultLoad) run(workers, maxPerWorker int, pick func(w, n int) int) {
	l.base = time.Now()
	l.results = make([][]faultResult, workers)
	l.sess200 = make([]atomic.Int64, len(l.cookies))
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; n < maxPerWorker && !l.stop.Load(); n++ {
				var res faultResult
				start := l.since()
				if n%2 == 0 {
					i := pick(w, n/2)
					res = faultServe(l.r, "/count", l.cookies[i])
					res.sess = i
				} else {
					res = faultServe(l.r, "/health", "")
					res.sess = -1
				}
				res.start, res.end = start, l.since()
				l.results[w] = append(l.results[w], res)
				l.total.Add(1)
				if res.sess >= 0 {
					switch res.code {
					case http.StatusOK:
						l.ok200.Add(1)
						l.sess200[res.sess].Store(int64(res.start))
						l.last200.Store(int64(res.end))
					case http.StatusServiceUnavailable:
						l.count503.Add(1)
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
}

func (l *faultLoad) halt() {
	if !l.stopped {
		l.stopped = true
		l.stop.Store(true)
		l.wg.Wait()
	}
}

// waitFor polls cond, at most 20 s, stopping the load and failing the test
// if it does not hold by then.
func (l *faultLoad) waitFor(what string, cond func() bool) {
	l.t.Helper()
	const limit = 20 * time.Second
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			l.halt()
			l.t.Fatalf("waited %v for %s; %d requests, %d /count answered 200, %d answered 503", limit, what, l.total.Load(), l.ok200.Load(), l.count503.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill runs faultKillSQL once, waits (at most 10 s) until its victims have
// exited, and records the round.
func (l *faultLoad) kill(admin *pgxpool.Pool, app string, lockOnly bool) faultKill {
	l.t.Helper()
	k := faultKill{lockOnly: lockOnly, from: l.since()}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fail := func(err error) {
		l.t.Helper()
		l.halt()
		l.t.Fatalf("terminating the pool's backends: %v", err)
	}
	rows, err := admin.Query(c, faultKillSQL, app, lockOnly)
	if err != nil {
		fail(err)
	}
	for rows.Next() {
		var (
			pid  int32
			keys []int64
			sent bool
		)
		if err := rows.Scan(&pid, &keys, &sent); err != nil {
			rows.Close()
			fail(err)
		}
		if !sent {
			rows.Close()
			fail(errors.New("pg_terminate_backend returned false"))
		}
		k.pids = append(k.pids, pid)
		k.lockKeys = append(k.lockKeys, keys...)
	}
	if err := rows.Err(); err != nil {
		fail(err)
	}
	if len(k.pids) == 0 {
		return k
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left int
		if err := admin.QueryRow(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", k.pids).Scan(&left); err != nil {
			fail(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			fail(errors.New("terminated backends still running after 10s"))
		}
		time.Sleep(time.Millisecond)
	}
	k.to = l.since()
	l.kills = append(l.kills, k)
	return k
}

// faultSetup creates n sessions through the engine; session i holds i+1.
// It returns their cookies and IDs.
func faultSetup(t *testing.T, r http.Handler, n int) (cookies, ids []string) {
	t.Helper()
	cookies, ids = make([]string, n), make([]string, n)
	for i := range cookies {
		for k := 0; k <= i; k++ {
			res := faultServe(r, "/count", cookies[i])
			if res.code != http.StatusOK || res.panicked != nil {
				t.Fatalf("setting up session %d: %d %s (panic %v, failed calls %v)", i, res.code, res.body, res.panicked, res.failed())
			}
			if got, ok := faultCount(res.body); !ok || got != k+1 {
				t.Fatalf("setting up session %d: body %q, want count %d", i, res.body, k+1)
			}
			if k == 0 {
				c := (&http.Response{Header: http.Header{"Set-Cookie": {res.setCookie}}}).Cookies()
				if len(c) != 1 {
					t.Fatalf("session %d: Set-Cookie %q", i, res.setCookie)
				}
				cookies[i] = c[0].Name + "=" + c[0].Value
			}
			if k == i {
				ids[i] = res.id
			}
		}
	}
	return cookies, ids
}

// faultRows counts the rows of table.
func faultRows(t *testing.T, admin *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := admin.QueryRow(ctx(t), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

// faultCheckFailures checks the failed store calls of every request
// against the kills: each failure is a lost connection (or the store
// timeout), never anything else, and no more calls failed on a lost
// connection than backends were terminated, since pgxpool drops a
// connection once a call on it has failed. It returns the failures by kind.
func faultCheckFailures(t *testing.T, all []faultResult, kills []faultKill) map[string]int {
	t.Helper()
	kinds := map[string]int{}
	terminated := 0
	for _, k := range kills {
		terminated += len(k.pids)
	}
	for _, res := range all {
		for _, c := range res.failed() {
			kind := faultErrKind(c.err)
			kinds[c.op+": "+kind]++
			switch kind {
			case "terminated", "connection", "deadline":
			case "waited":
				t.Errorf("%s of session %d at %v: the lock stayed held for the whole wait: %v", res.path, res.sess, res.start, c.err)
			default:
				t.Errorf("%s of session %d at %v: store %s failed with %v (%T), not a lost connection", res.path, res.sess, res.start, c.op, c.err, c.err)
			}
		}
	}
	lost := 0
	for k, n := range kinds {
		if strings.HasSuffix(k, ": terminated") || strings.HasSuffix(k, ": connection") {
			lost += n
		}
	}
	if lost > terminated {
		t.Errorf("%d store calls failed on a lost connection, but only %d backends were terminated: a dead connection was used more than once", lost, terminated)
	}
	return kinds
}

// faultCheckResponse checks what every request may answer: /health 200
// "ok" without the store; /count 200 with a count, or the error handler's
// 503 JSON with a failed store call; never a panic or a new cookie. busyOK
// allows the answer to a lock that could not be taken.
func faultCheckResponse(t *testing.T, res faultResult, busyOK bool) {
	t.Helper()
	if res.panicked != nil {
		t.Errorf("%s panicked: %v", res.path, res.panicked)
		return
	}
	if res.sess < 0 {
		if res.code != http.StatusOK || res.body != "ok" || len(res.calls) != 0 || res.setCookie != "" {
			t.Errorf("/health at %v: %d %q, store calls %v, Set-Cookie %q; want 200 without the store", res.start, res.code, res.body, res.calls, res.setCookie)
		}
		return
	}
	if res.setCookie != "" {
		t.Errorf("%s of session %d at %v (%d) set a cookie %q: the session was replaced", res.path, res.sess, res.start, res.code, res.setCookie)
	}
	failed := res.failed()
	switch res.code {
	case http.StatusOK:
		if _, ok := faultCount(res.body); !ok {
			t.Errorf("%s of session %d: 200 with body %q", res.path, res.sess, res.body)
		}
		if len(failed) > 0 {
			t.Errorf("%s of session %d answered 200 despite failed store calls %v", res.path, res.sess, failed)
		}
	case http.StatusServiceUnavailable:
		if len(failed) != 1 {
			t.Errorf("%s of session %d answered 503 with %d failed store calls %v, want 1", res.path, res.sess, len(failed), failed)
			return
		}
		switch {
		case failed[0].op == "lock" && !busyOK:
			t.Errorf("%s of session %d: a lock was taken without WithLocking", res.path, res.sess)
		case failed[0].op == "lock":
			// A Lock that failed on a lost connection is a store failure
			// and also a lock not taken: either answer fits.
			if res.body != faultBusy && res.body != faultUnavailable {
				t.Errorf("%s of session %d: 503 body %q after a failed lock, want %s or %s", res.path, res.sess, res.body, faultBusy, faultUnavailable)
			}
		case res.body != faultUnavailable:
			t.Errorf("%s of session %d: 503 body %q after a failed %s, want %s", res.path, res.sess, res.body, failed[0].op, faultUnavailable)
		}
	default:
		t.Errorf("%s of session %d: %d %q", res.path, res.sess, res.code, res.body)
	}
}

// faultRetry sends path for session i until it is answered 200, at most 5
// times, checking every answer, and returns every attempt.
func faultRetry(t *testing.T, r http.Handler, cookie string, i int, path string, busyOK bool) []faultResult {
	t.Helper()
	var out []faultResult
	for range 5 {
		res := faultServe(r, path, cookie)
		res.sess = i
		faultCheckResponse(t, res, busyOK)
		out = append(out, res)
		if res.code != http.StatusServiceUnavailable {
			break
		}
	}
	return out
}

// TestFaultRestartConnections runs a bounded load of session requests
// against PostgreSQL and meanwhile, several times, terminates every backend
// of the application's pool from a separate connection
// (pg_terminate_backend on the pool's application_name). The application
// (engine, store, pool) is never restarted: pgxpool replaces the dead
// connections.
//
// Asserted, counting outcomes and never durations:
//   - no request panics; /health always answers 200 without the store;
//   - every /count answers 200 with a count, or 503 with the default error
//     handler's JSON and exactly one failed store call, which failed on the
//     lost connection (or, at worst, at the store timeout); no more calls
//     fail on a lost connection than backends were terminated (a request may
//     fail once on a killed connection; the pool then drops it);
//   - after each round of terminations, and after the last, requests
//     succeed again, with the same pool;
//   - the sessions saved before the terminations are intact: every count
//     answered 200 is the previous one plus one, plus at most the updates
//     cut off after their fn ran (their COMMIT may have been applied, its
//     reply lost); the final count is the count before plus the increments
//     answered 200, plus at most those; no request hands out a new session
//     and the table holds exactly the sessions made before.
func TestFaultRestartConnections(t *testing.T) {
	const (
		numSessions  = 20
		workers      = 4
		maxPerWorker = 40_000 // requests; the run ends long before
		rounds       = 5
	)
	pool, admin, app := faultAppPool(t, 8)
	table := testTable(t, admin)
	st := New(pool, WithTableName(table))
	t.Cleanup(func() { st.Close() })
	if err := st.CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	r := faultEngine(faultStore{st}, 0)
	cookies, _ := faultSetup(t, r, numSessions)
	before := make([]int, numSessions)
	for i := range before {
		before[i] = i + 1
	}

	// Each worker drives its own sessions, one request at a time, so the
	// requests of one session never race and each answer can be checked
	// against the one before.
	l := &faultLoad{t: t, r: r, cookies: cookies}
	l.run(workers, maxPerWorker, func(w, n int) int {
		// Sessions w, w+workers, ..., in turn.
		return w + (n%(numSessions/workers))*workers
	})
	defer l.halt()

	l.waitFor("40 counts answered 200 before the terminations", func() bool { return l.ok200.Load() >= 40 })
	var lastKill faultKill
	for round := range rounds {
		k := l.kill(admin, app, false)
		if len(k.pids) == 0 {
			l.halt()
			t.Fatalf("round %d: no backend of the pool (application_name %s) to terminate", round, app)
		}
		lastKill = k
		from := l.ok200.Load()
		l.waitFor("30 counts answered 200 after a round of terminations", func() bool { return l.ok200.Load() >= from+30 })
	}
	// After the last round: the first success, then more.
	l.waitFor("the first count answered 200 after the terminations stopped", func() bool {
		return time.Duration(l.last200.Load()) > lastKill.to
	})
	from := l.ok200.Load()
	l.waitFor("40 counts answered 200 after the terminations stopped", func() bool { return l.ok200.Load() >= from+40 })
	l.halt()

	// Every request, one session at a time in the order it was sent.
	type sessState struct {
		last    int // the count last answered 200
		pending int // updates cut off after their fn ran, since then
		ok      int // increments answered 200
		cut     int // updates cut off after their fn ran, in all
	}
	state := make([]sessState, numSessions)
	for i := range state {
		state[i].last = before[i]
	}
	account := func(res faultResult) {
		if res.sess < 0 || res.panicked != nil {
			return
		}
		s := &state[res.sess]
		switch res.code {
		case http.StatusOK:
			k, _ := faultCount(res.body)
			if res.path == "/peek" {
				if k < s.last || k > s.last+s.pending {
					t.Errorf("session %d holds %d: before the terminations %d, %d increments answered 200, last answered %d, %d updates cut off since; want %d to %d",
						res.sess, k, before[res.sess], s.ok, s.last, s.pending, s.last, s.last+s.pending)
				}
				return
			}
			if k < s.last+1 || k > s.last+1+s.pending {
				t.Errorf("session %d answered count %d after %d (with %d updates cut off since): an increment was lost or invented", res.sess, k, s.last, s.pending)
			}
			s.last, s.pending = k, 0
			s.ok++
		case http.StatusServiceUnavailable:
			for _, c := range res.failed() {
				if c.op == "update" && c.fnCalled {
					s.pending++
					s.cut++
				}
			}
		}
	}
	var all []faultResult
	health := 0
	for w := range l.results {
		for _, res := range l.results[w] {
			faultCheckResponse(t, res, false)
			account(res)
			if res.sess < 0 {
				health++
			}
			all = append(all, res)
		}
	}
	if l.count503.Load() == 0 {
		t.Error("no /count answered 503: the terminations hit no store call")
	}

	// The stored counts, then one more count each, on the same engine.
	var cutTotal, landed, okTotal int
	for i := range state {
		for _, res := range faultRetry(t, r, cookies[i], i, "/peek", false) {
			all = append(all, res)
			account(res)
			if res.code == http.StatusOK {
				// account has checked it against the last count answered.
				got, _ := faultCount(res.body)
				landed += got - before[i] - state[i].ok
			}
		}
		atts := faultRetry(t, r, cookies[i], i, "/count", false)
		for _, res := range atts {
			all = append(all, res)
			account(res)
		}
		if atts[len(atts)-1].code != http.StatusOK {
			t.Errorf("/count of session %d after the run: %d %q", i, atts[len(atts)-1].code, atts[len(atts)-1].body)
		}
		cutTotal += state[i].cut
		okTotal += state[i].ok
	}
	if n := faultRows(t, admin, table); n != numSessions {
		t.Errorf("the table holds %d sessions, want the %d made before the terminations", n, numSessions)
	}
	kinds := faultCheckFailures(t, all, l.kills)
	terminated := 0
	for _, k := range l.kills {
		terminated += len(k.pids)
	}
	t.Logf("%d requests (%d /health, all 200); %d rounds terminated %d backends; %d /count answered 200, %d answered 503; failed store calls by kind %v; %d updates cut off after their fn ran, %d of them applied by the server",
		l.total.Load(), health, len(l.kills), terminated, okTotal, l.count503.Load(), kinds, cutTotal, landed)
}

// TestFaultRestartConnectionsLocking is the same load with WithLocking on,
// two workers driving each session at once (so requests of a session wait
// for its lock) and a handler that holds the session for 20 ms. The rounds
// alternate between terminating the backends that hold a session's advisory
// lock and terminating every backend of the pool.
//
// Asserted, counting outcomes and never durations:
//   - no request panics; /health always answers 200 without the store;
//   - every /count answers 200, or 503 with the default error handler's
//     JSON ("session busy" after a failed Lock, "store unavailable" after a
//     failed Load or Update) and exactly one failed store call, which failed
//     on the lost connection: no Lock ever fails because a lock stayed held
//     for its whole wait; no more calls fail that way than backends were
//     terminated;
//   - after each round, every session whose lock holder was terminated
//     answers a later /count 200: its lock was taken again; at the end the
//     pool's backends hold no advisory lock and no connection is acquired;
//   - two requests of a session run the handler at once only when one of
//     them held its lock across a termination (the server frees the lock of
//     a terminated backend, and its holder is not told);
//   - the final count is the count before plus the increments answered 200,
//     plus at most the updates cut off after their fn ran, minus at most the
//     increments that could be lost to those overlaps; each session answers
//     one more count exactly; the table holds exactly the sessions made
//     before.
func TestFaultRestartConnectionsLocking(t *testing.T) {
	const (
		numSessions  = 20
		pairs        = 4 // worker pairs; both workers of a pair drive the same session at once
		maxPerWorker = 20_000
		rounds       = 6
		hold         = 20 * time.Millisecond
	)
	// Each request holds a lock connection and takes another to load and
	// update: twice the workers, and room for the lock polls.
	pool, admin, app := faultAppPool(t, 2*(2*pairs)+4)
	table := testTable(t, admin)
	st := New(pool, WithTableName(table))
	t.Cleanup(func() { st.Close() })
	if err := st.CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	r := faultEngine(faultStore{st}, hold, sessions.WithLocking(2*time.Second))
	cookies, ids := faultSetup(t, r, numSessions)
	before := make([]int, numSessions)
	sessOfKey := map[int64]int{}
	for i := range before {
		before[i] = i + 1
		sessOfKey[st.s.lockKey(ids[i])] = i
	}

	l := &faultLoad{t: t, r: r, cookies: cookies}
	// The two workers of pair p share a cursor over sessions p, p+pairs,
	// ...: they move on to the next session together, every four counts, so
	// one of them mostly waits for the lock the other holds.
	cursors := make([]atomic.Int64, pairs)
	l.run(2*pairs, maxPerWorker, func(w, _ int) int {
		p := w % pairs
		c := cursors[p].Add(1) - 1
		return p + int((c/4)%(numSessions/pairs))*pairs
	})
	defer l.halt()

	l.waitFor("40 counts answered 200 before the terminations", func() bool { return l.ok200.Load() >= 40 })
	var (
		lastKill     faultKill
		holdersKills int
		relocked     = map[int]bool{}
	)
	for round := range rounds {
		lockOnly := round%2 == 0
		var k faultKill
		// A lock round needs a lock held at that moment; most moments have
		// several.
		for try := 0; try < 500; try++ {
			if k = l.kill(admin, app, lockOnly); len(k.pids) > 0 {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if len(k.pids) == 0 {
			l.halt()
			t.Fatalf("round %d: no backend to terminate (lock holders only: %v)", round, lockOnly)
		}
		lastKill = k
		var hit []int
		for _, key := range k.lockKeys {
			if i, ok := sessOfKey[key]; ok {
				hit = append(hit, i)
			}
		}
		holdersKills += len(hit)
		// The sessions whose lock holder died are locked again, by later
		// requests.
		l.waitFor("a later /count answered 200 for each session whose lock holder was terminated", func() bool {
			for _, i := range hit {
				if time.Duration(l.sess200[i].Load()) <= k.to {
					return false
				}
			}
			return true
		})
		for _, i := range hit {
			relocked[i] = true
		}
		from := l.ok200.Load()
		l.waitFor("30 counts answered 200 after a round of terminations", func() bool { return l.ok200.Load() >= from+30 })
	}
	if holdersKills == 0 {
		t.Error("no terminated backend held a session's lock")
	}
	l.waitFor("the first count answered 200 after the terminations stopped", func() bool {
		return time.Duration(l.last200.Load()) > lastKill.to
	})
	from := l.ok200.Load()
	l.waitFor("40 counts answered 200 after the terminations stopped", func() bool { return l.ok200.Load() >= from+40 })
	l.halt()

	// No lock outlives the load, and every connection is back.
	eventually(t, "the pool's backends holding no advisory lock", func() bool {
		var n int
		err := admin.QueryRow(ctx(t), "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"+
			" WHERE l.locktype = 'advisory' AND a.application_name = $1", app).Scan(&n)
		if err != nil {
			t.Fatalf("pg_locks: %v", err)
		}
		return n == 0
	})
	eventually(t, "every connection back in the pool", func() bool { return pool.Stat().AcquiredConns() == 0 })

	// A request held its lock across a kill if it had taken it and ran
	// while some backend was terminated.
	acrossKill := func(res faultResult) bool {
		if !res.locked {
			return false
		}
		for _, k := range l.kills {
			if res.start <= k.to && res.end >= k.from {
				return true
			}
		}
		return false
	}
	overlaps := func(a, b faultResult) bool { return a.start <= b.end && b.start <= a.end }

	bySess := make([][]faultResult, numSessions)
	var all []faultResult
	health := 0
	for w := range l.results {
		for _, res := range l.results[w] {
			faultCheckResponse(t, res, true)
			all = append(all, res)
			if res.sess < 0 {
				health++
				continue
			}
			bySess[res.sess] = append(bySess[res.sess], res)
		}
	}
	var (
		okTotal, cutTotal, suspects, overlapped, lostBoundTotal, lostTotal, landedTotal int
		lockBodies                                                                      = map[string]int{}
	)
	for i := range numSessions {
		ok, cut, lostBound := 0, 0, 0
		for _, res := range bySess[i] {
			switch res.code {
			case http.StatusOK:
				ok++
			case http.StatusServiceUnavailable:
				for _, c := range res.failed() {
					if c.op == "update" && c.fnCalled {
						cut++
					}
					if c.op == "lock" {
						lockBodies[res.body]++
					}
				}
			}
			if acrossKill(res) {
				suspects++
				// Every /count of the session that ran alongside it may
				// have read what it then overwrote, or the other way round.
				for _, o := range bySess[i] {
					if o.start != res.start || o.end != res.end {
						if overlaps(o, res) {
							lostBound++
						}
					}
				}
			}
			if res.overlapped {
				overlapped++
				explained := false
				for _, o := range bySess[i] {
					if overlaps(o, res) && acrossKill(o) {
						explained = true
						break
					}
				}
				if !explained {
					t.Errorf("/count of session %d at %v ran alongside another of the session, though no request of it held its lock across a termination", i, res.start)
				}
			}
		}
		var got int
		peeked := false
		for _, res := range faultRetry(t, r, cookies[i], i, "/peek", true) {
			all = append(all, res)
			if res.code == http.StatusOK {
				got, _ = faultCount(res.body)
				peeked = true
			}
		}
		if peeked {
			want := before[i] + ok
			if got < want-lostBound || got > want+cut {
				t.Errorf("session %d holds %d: before the terminations %d, %d increments answered 200, %d updates cut off after their fn ran, at most %d increments lost to requests that held their lock across a termination; want %d to %d",
					i, got, before[i], ok, cut, lostBound, want-lostBound, want+cut)
			}
			if got < want {
				lostTotal += want - got
			} else {
				landedTotal += got - want
			}
		}
		atts := faultRetry(t, r, cookies[i], i, "/count", true)
		for _, res := range atts {
			all = append(all, res)
		}
		cutAfter := 0
		for _, res := range atts[:len(atts)-1] {
			for _, c := range res.failed() {
				if c.op == "update" && c.fnCalled {
					cutAfter++
				}
			}
		}
		last := atts[len(atts)-1]
		if n, _ := faultCount(last.body); last.code != http.StatusOK || (peeked && (n < got+1 || n > got+1+cutAfter)) {
			t.Errorf("/count of session %d after the run: %d %q, want 200 {\"count\":%d} (plus at most %d cut-off updates)", i, last.code, last.body, got+1, cutAfter)
		}
		okTotal += ok
		cutTotal += cut
		lostBoundTotal += lostBound
	}
	if n := faultRows(t, admin, table); n != numSessions {
		t.Errorf("the table holds %d sessions, want the %d made before the terminations", n, numSessions)
	}
	kinds := faultCheckFailures(t, all, l.kills)
	terminated := 0
	for _, k := range l.kills {
		terminated += len(k.pids)
	}
	t.Logf("%d requests (%d /health, all 200); %d rounds terminated %d backends, %d of them holding a session's lock (sessions locked again afterwards: %d); %d /count answered 200, %d answered 503; failed store calls by kind %v",
		l.total.Load(), health, len(l.kills), terminated, holdersKills, len(relocked), okTotal, l.count503.Load(), kinds)
	t.Logf("answers to a Lock that failed on a lost connection: %v", lockBodies)
	t.Logf("%d requests held their lock across a termination; %d ran the handler alongside another request of their session; increments lost: %d (bound %d); updates cut off after their fn ran: %d, applied by the server: %d",
		suspects, overlapped, lostTotal, lostBoundTotal, cutTotal, landedTotal)
}
