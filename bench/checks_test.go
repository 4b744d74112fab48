package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	fs "github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	gc "github.com/gin-contrib/sessions"
	gcmem "github.com/gin-contrib/sessions/memstore"
	"github.com/gin-gonic/gin"
)

// failRecorder stands in for the test while a scenario that must fail
// runs: it records Fatal and Error calls instead of failing the test.
type failRecorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *failRecorder) record(msg string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.mu.Unlock()
}

func (r *failRecorder) Error(args ...any)                 { r.record(fmt.Sprint(args...)) }
func (r *failRecorder) Errorf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }
func (r *failRecorder) Fatal(args ...any)                 { r.record(fmt.Sprint(args...)); runtime.Goexit() }
func (r *failRecorder) Fatalf(format string, args ...any) {
	r.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// failure runs the scenario a few times and returns what it reported, ""
// if nothing.
func failure(t *testing.T, run func(*driver, *env), e *env) string {
	rec := &failRecorder{TB: t}
	d := testDriver(t, 4)
	d.TB = rec
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(d, e)
	}()
	<-done
	return strings.Join(rec.msgs, "; ")
}

// scsAfterChainOnly is the adapter mistake the benchmarks must catch: the
// commit hooked only after the chain, when a handler that wrote a body has
// already sent the headers.
func scsAfterChainOnly(sm *scs.SessionManager) gin.HandlerFunc {
	return func(c *gin.Context) {
		var token string
		if ck, err := c.Request.Cookie(sm.Cookie.Name); err == nil {
			token = ck.Value
		}
		ctx, err := sm.Load(c.Request.Context(), token)
		if err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.Request = c.Request.WithContext(ctx)
		c.Next()
		if sm.Status(ctx) == scs.Modified {
			if token, expiry, err := sm.Commit(ctx); err == nil {
				sm.WriteSessionCookie(ctx, c.Writer, token, expiry)
			}
		}
	}
}

// loadFailing is a store whose saves work and whose loads fail.
type loadFailing struct{ *memstore.Store }

func (loadFailing) Load(context.Context, string) ([]byte, time.Time, bool, error) {
	return nil, time.Time{}, false, errors.New("connection refused")
}

func newMemstore(t *testing.T) *memstore.Store {
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestChecksCatchBrokenPaths runs the scenarios on deliberately broken
// implementations: each must fail rather than be timed.
func TestChecksCatchBrokenPaths(t *testing.T) {
	quiet := fs.WithLogger(slog.New(slog.DiscardHandler))
	cases := []struct {
		name string
		run  func(*driver, *env)
		env  func(t *testing.T) *env
		want string // part of the failure message
	}{
		{
			name: "scs committed only after the chain loses the new cookie",
			run:  runNew,
			env: func(t *testing.T) *env {
				sm := newSCS(t)
				return newEnv(sm.Cookie.Name, scsAfterChainOnly(sm), scsRoutes(sm))
			},
			want: "cookie reached the client",
		},
		{
			name: "gin-contrib saved after the body loses the new cookie",
			run:  runNew,
			env: func(t *testing.T) *env {
				r := gincontribRoutes
				r.create = func(c *gin.Context) {
					s := gc.Default(c)
					s.Set(newKey, newValue)
					c.String(http.StatusOK, "ok")
					_ = s.Save() // returns nil; the headers are gone
				}
				return newEnv(gcCookie, gc.Sessions(gcCookie, gcmem.NewStore(secret)), r)
			},
			want: "cookie reached the client",
		},
		{
			name: "a write that is never saved",
			run:  runWrite,
			env: func(t *testing.T) *env {
				r := gincontribRoutes
				r.write = func(c *gin.Context) {
					s := gc.Default(c)
					n, _ := s.Get(countKey).(int)
					s.Set(countKey, n+1)
					c.String(http.StatusOK, "ok")
				}
				return newEnv(gcCookie, gc.Sessions(gcCookie, gcmem.NewStore(secret)), r)
			},
			want: "counter is 0 after 4 writes",
		},
		{
			name: "parallel writes that are lost",
			run:  runWriteParallel,
			env: func(t *testing.T) *env {
				r := fastsessionRoutes
				r.write = func(c *gin.Context) {
					_, _ = fs.GetAs[int](fs.Default(c), countKey)
					c.String(http.StatusOK, "ok")
				}
				return newEnv(fs.DefaultCookieName, fs.New(secret, fs.WithStore(newMemstore(t))), r)
			},
			want: "counter is 0 after",
		},
		{
			name: "a read of the wrong value",
			run:  runRead,
			env: func(t *testing.T) *env {
				r := fastsessionRoutes
				r.read = func(c *gin.Context) {
					v, _ := fs.GetAs[string](fs.Default(c), "k4")
					c.String(http.StatusOK, v)
				}
				return newEnv(fs.DefaultCookieName, fs.New(secret, fs.WithStore(newMemstore(t))), r)
			},
			want: `want "ddd`,
		},
		{
			name: "a store whose loads fail",
			run:  runReadParallel,
			env: func(t *testing.T) *env {
				st := loadFailing{newMemstore(t)}
				return newEnv(fs.DefaultCookieName, fs.New(secret, fs.WithStore(st), quiet), fastsessionRoutes)
			},
			want: "status 503",
		},
		{
			name: "an untouched request that sets a cookie",
			run:  runUntouched,
			env: func(t *testing.T) *env {
				r := fastsessionRoutes
				r.untouched = func(c *gin.Context) {
					fs.Default(c).Set("x", 1)
					c.String(http.StatusOK, "ok")
				}
				return newEnv(fs.DefaultCookieName, fs.New(secret, fs.WithStore(newMemstore(t))), r)
			},
			want: "sent Set-Cookie",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := failure(t, tc.run, tc.env(t))
			if msg == "" {
				t.Fatal("the scenario passed on a broken implementation")
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("failure %q does not mention %q", msg, tc.want)
			}
			t.Logf("failed as it should: %.300s", msg)
		})
	}
}

// TestSentCookie checks the benchmarks' cookie check against net/http's
// parser: for every Set-Cookie header here, sentCookie must find the cookie
// that searching Response.Cookies() finds.
func TestSentCookie(t *testing.T) {
	type header struct {
		lines []string
		name  string
	}
	var headers []header
	for _, lines := range [][]string{
		{"sid=abc; Path=/; Max-Age=86400; HttpOnly; Secure; SameSite=Lax"},
		{"sid=abc; Path=/; Max-Age=0"},
		{"sid=abc; Max-Age=-1"},
		{"sid=abc; max-age=0"},
		{"sid=abc; Max-Age=00"},
		{"sid=abc; Max-Age=007"},
		{"sid=abc; Max-Age=x"},
		{"sid=abc; Max-Age=0; Max-Age=10"},
		{"sid=abc; Max-Age=10; Max-Age=0"},
		{"sid=; Path=/"},
		{`sid="abc"; Path=/`},
		{`sid="abc; Path=/`},
		{"sid=a b"},
		{"sid= abc"},
		{"sid=abc ; Path=/"},
		{" sid = abc"},
		{"sid=a\x01b"},
		{"sid=a\\b"},
		{"sids=abc", "other=1; sid=2"},
		{"SID=abc"},
		{"sid"},
		{""},
		{"sid=old; Max-Age=0", "sid=new; Path=/"},
		{"sid=one", "sid=two"},
		{"other=x; Max-Age=0", "sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT"},
	} {
		headers = append(headers, header{lines, "sid"})
	}
	// And what the implementations really send, for a new session and a
	// destroyed one.
	for _, impl := range impls {
		switch impl.name {
		case "fastsession-memstore", "gincontrib-memstore", "gincontrib-cookie", "scs-memstore":
		default:
			continue
		}
		e := impl.setup(t)
		w := e.serve(newRequest("/new", ""))
		headers = append(headers, header{w.Result().Header["Set-Cookie"], e.cookie})
	}
	found := 0
	for _, h := range headers {
		want := ""
		resp := http.Response{Header: http.Header{"Set-Cookie": h.lines}}
		for _, ck := range resp.Cookies() {
			if ck.Name == h.name && ck.Value != "" && ck.MaxAge >= 0 {
				want = ck.Name + "=" + ck.Value
				break
			}
		}
		if want != "" {
			found++
		}
		if got := sentCookie(h.lines, h.name); got != want {
			t.Errorf("Set-Cookie %q: sentCookie gives %q, net/http %q", h.lines, got, want)
		}
	}
	if found < 10 {
		t.Errorf("only %d of %d headers hold a live cookie: the cases test too little", found, len(headers))
	}
}
