package sessions

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"unsafe"

	"github.com/gin-gonic/gin"
)

// bindings counts the requests the registry holds (the zero binding that
// keeps each shard's overflow map from emptying names none).
func bindings() int {
	n := 0
	for i := range bound.shards {
		sh := &bound.shards[i]
		sh.mu.Lock()
		for _, e := range sh.e {
			if e.b != (binding{}) {
				n++
			}
		}
		for b := range sh.more {
			if b != (binding{}) {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// Every way a request can end leaves the registry as it found it: nothing
// of a finished request stays reachable, and its gin.Context, reused by the
// next request, carries no stale session.
func TestRequestsLeaveNoBindings(t *testing.T) {
	gin.SetMode(gin.TestMode)
	if n := bindings(); n != 0 {
		t.Fatalf("%d bindings before the test", n)
	}
	r := gin.New()
	r.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, _ any) { c.AbortWithStatus(http.StatusInternalServerError) }))
	r.Use(New(make([]byte, 32), WithSkipHeader("X-Skip", "1")))
	r.Use(New(make([]byte, 32), WithContextKey("second"), WithCookieName("sid2")))
	r.GET("/untouched", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	r.GET("/set", func(c *gin.Context) {
		Default(c).Set("k", "v")
		FromContext(c, "second").Set("k", "v")
		c.Status(http.StatusNoContent)
	})
	r.GET("/panic", func(c *gin.Context) {
		Default(c).Set("k", "v")
		panic("handler bug")
	})
	r.GET("/copy", func(c *gin.Context) {
		cp := c.Copy()
		Default(c).Set("k", "v")
		done := make(chan struct{})
		go func() {
			defer close(done)
			Default(cp).Set("from", "copy")
		}()
		<-done
		c.Status(http.StatusNoContent)
	})
	r.GET("/forward", func(c *gin.Context) {
		c.Request.URL.Path = "/set"
		r.HandleContext(c)
	})
	for _, tc := range []struct {
		path, skip string
		code       int
	}{
		{"/untouched", "", http.StatusNoContent},
		{"/set", "", http.StatusNoContent},
		{"/set", "1", http.StatusNoContent},
		{"/panic", "", http.StatusInternalServerError},
		{"/copy", "", http.StatusNoContent},
		{"/forward", "", http.StatusNoContent},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.skip != "" {
			req.Header.Set("X-Skip", tc.skip)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != tc.code {
			t.Fatalf("%s (skip %q): status %d, want %d", tc.path, tc.skip, w.Code, tc.code)
		}
		if n := bindings(); n != 0 {
			t.Fatalf("%s (skip %q): %d bindings left after the request", tc.path, tc.skip, n)
		}
	}
}

// A request that never touches its session allocates nothing more than
// the same request without the middleware. The requests run through
// HandleContext on one context, so gin's context pool, which the race
// detector makes drop entries at random, plays no part in the count.
func TestUntouchedRequestAllocatesNothing(t *testing.T) {
	gin.SetMode(gin.TestMode)
	allocs := func(e *gin.Engine) float64 {
		e.GET("/", func(c *gin.Context) { c.Status(http.StatusNoContent) })
		c := gin.CreateTestContextOnly(httptest.NewRecorder(), e)
		c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
		return testing.AllocsPerRun(200, func() { e.HandleContext(c) })
	}
	bare := gin.New()
	with := gin.New()
	with.Use(New(make([]byte, 32)))
	want, got := allocs(bare), allocs(with)
	if got != want {
		t.Fatalf("an untouched request allocates %v times with the middleware, %v without", got, want)
	}
}

// A Session fits the runtime's 512-byte size class, the largest whose
// objects need no malloc header: one allocation per used session, kept
// small. Grow it past that only for a reason worth 192 more bytes on
// every request that uses its session.
func TestSessionFits512Bytes(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 512 {
		t.Fatalf("Session is %d bytes, want 512 at most", n)
	}
}
