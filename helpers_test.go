package sessions_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

var (
	testKey  = []byte("test-secret-key-0123456789abcdef!")
	otherKey = []byte("another-secret-key-0123456789abc!")
)

func init() { gin.SetMode(gin.TestMode) }

// countingStore wraps a real memstore and counts the calls that reach it.
// down makes every call fail, as a store outage would.
type countingStore struct {
	*memstore.Store
	loads, saves, deletes, touches atomic.Int64
	down                           atomic.Bool
}

var errDown = errors.New("store is down")

func newCountingStore(t *testing.T) *countingStore {
	s := &countingStore{Store: memstore.New()}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *countingStore) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	s.loads.Add(1)
	if s.down.Load() {
		return nil, time.Time{}, false, errDown
	}
	return s.Store.Load(ctx, id)
}

func (s *countingStore) Save(ctx context.Context, id string, data []byte, exp time.Time) error {
	s.saves.Add(1)
	if s.down.Load() {
		return errDown
	}
	return s.Store.Save(ctx, id, data, exp)
}

// Update counts as a save.
func (s *countingStore) Update(ctx context.Context, id string, exp time.Time, fn func([]byte) ([]byte, error)) (bool, error) {
	s.saves.Add(1)
	if s.down.Load() {
		return false, errDown
	}
	return s.Store.Update(ctx, id, exp, fn)
}

func (s *countingStore) Delete(ctx context.Context, id string) error {
	s.deletes.Add(1)
	if s.down.Load() {
		return errDown
	}
	return s.Store.Delete(ctx, id)
}

func (s *countingStore) Touch(ctx context.Context, id string, exp time.Time) error {
	s.touches.Add(1)
	if s.down.Load() {
		return errDown
	}
	return s.Store.Touch(ctx, id, exp)
}

func (s *countingStore) calls() int64 {
	return s.loads.Load() + s.saves.Load() + s.deletes.Load() + s.touches.Load()
}

// plainStore hides the Toucher of the store it wraps.
type plainStore struct{ inner *countingStore }

func (p plainStore) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	return p.inner.Load(ctx, id)
}
func (p plainStore) Save(ctx context.Context, id string, d []byte, e time.Time) error {
	return p.inner.Save(ctx, id, d, e)
}
func (p plainStore) Delete(ctx context.Context, id string) error { return p.inner.Delete(ctx, id) }

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func debugLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newEngine returns a gin engine with the middleware over a counting store
// and the routes most tests use:
//
//	GET  /get?k=K          200, body = the string under K
//	GET  /set?k=K&v=V      sets K to V, 200 "ok"
//	GET  /count            increments "count", body = new value
//	GET  /untouched        200, never touches the session
func newEngine(t *testing.T, opts ...sessions.Option) (*gin.Engine, *countingStore) {
	t.Helper()
	st := newCountingStore(t)
	opts = append([]sessions.Option{sessions.WithStore(st)}, opts...)
	r := gin.New()
	r.Use(sessions.New(testKey, opts...))
	addRoutes(r)
	return r, st
}

func addRoutes(r *gin.Engine) {
	r.GET("/get", func(c *gin.Context) {
		v, _ := sessions.GetAs[string](sessions.Default(c), c.Query("k"))
		c.String(http.StatusOK, v)
	})
	r.GET("/set", func(c *gin.Context) {
		sessions.Default(c).Set(c.Query("k"), c.Query("v"))
		c.String(http.StatusOK, "ok")
	})
	r.GET("/count", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		s.Set("count", n+1)
		c.String(http.StatusOK, "%d", n+1)
	})
	r.GET("/untouched", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
}

// result is one response as the client received it.
type result struct {
	code    int
	body    string
	header  http.Header
	cookies []*http.Cookie
}

func (r result) cookie(name string) *http.Cookie {
	for _, c := range r.cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// do runs one request through h and returns what was sent: Result() gives
// the headers as they were when the response started, not the live map.
func do(t *testing.T, h http.Handler, target string, cookies ...*http.Cookie) result {
	t.Helper()
	return doReq(t, h, httptest.NewRequest(http.MethodGet, target, nil), cookies...)
}

func doReq(t *testing.T, h http.Handler, req *http.Request, cookies ...*http.Cookie) result {
	t.Helper()
	for _, c := range cookies {
		if c != nil {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(notifyRecorder{w}, req)
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	return result{code: res.StatusCode, body: string(body), header: res.Header, cookies: res.Cookies()}
}

// notifyRecorder adds the CloseNotify that gin's c.Stream needs to a
// ResponseRecorder; the client never goes away.
type notifyRecorder struct{ *httptest.ResponseRecorder }

func (notifyRecorder) CloseNotify() <-chan bool { return make(chan bool) }

// login runs /set and returns the session cookie it got.
func login(t *testing.T, h http.Handler, k, v string) *http.Cookie {
	t.Helper()
	res := do(t, h, "/set?k="+url.QueryEscape(k)+"&v="+url.QueryEscape(v))
	c := res.cookie("sid")
	if res.code != http.StatusOK || c == nil {
		t.Fatalf("/set: status %d, cookie %v, body %q", res.code, c, res.body)
	}
	return c
}
