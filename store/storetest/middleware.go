package storetest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/gin-gonic/gin"
)

// middlewareTests drive the store through the HTTP middleware, the way an
// app uses it.
var middlewareTests = []struct {
	name string
	fn   func(*testing.T, sessions.Store)
}{
	{"8 clients of one session lose no update to their own keys", testNoLostUpdates},
	{"with locking, 8 clients incrementing one key lose nothing", testLockedCounter},
	{"log out everywhere ends every session of a user and no other", testLogoutEverywhere},
}

const (
	clients = 8
	rounds  = 200
)

func newEngine(s sessions.Store, opts ...sessions.Option) (*gin.Engine, *sessions.Manager) {
	gin.SetMode(gin.TestMode)
	mg := sessions.NewManager(bytes.Repeat([]byte("m"), 32),
		append([]sessions.Option{sessions.WithStore(s), sessions.WithSecure(false)}, opts...)...)
	r := gin.New()
	r.Use(mg.Middleware())
	r.GET("/inc", func(c *gin.Context) {
		s := sessions.Default(c)
		k := c.Query("k")
		n, _ := sessions.GetAs[int](s, k)
		s.Set(k, n+1)
		c.String(http.StatusOK, "%d", n+1)
	})
	r.GET("/get", func(c *gin.Context) {
		n, _ := sessions.GetAs[int](sessions.Default(c), c.Query("k"))
		c.String(http.StatusOK, "%d", n)
	})
	r.GET("/login", func(c *gin.Context) {
		s := sessions.Default(c)
		if err := s.Regenerate(); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		s.SetUser(c.Query("user"))
		c.String(http.StatusOK, "ok")
	})
	r.GET("/whoami", func(c *gin.Context) { c.String(http.StatusOK, sessions.Default(c).User()) })
	return r, mg
}

type client struct {
	h      http.Handler
	cookie *http.Cookie
}

func (cl *client) get(t testing.TB, target string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if cl.cookie != nil {
		req.AddCookie(cl.cookie)
	}
	w := httptest.NewRecorder()
	cl.h.ServeHTTP(w, req)
	for _, c := range w.Result().Cookies() {
		if c.Name == "sid" && c.MaxAge >= 0 {
			cl.cookie = c
		}
	}
	return w.Code, w.Body.String()
}

// hammer runs clients goroutines of rounds requests each, all with cookie.
func hammer(t *testing.T, h http.Handler, cookie *http.Cookie, target func(w int) string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{h: h, cookie: cookie}
			for i := 0; i < rounds; i++ {
				if code, body := cl.get(t, target(w)); code != http.StatusOK {
					errs <- fmt.Sprintf("client %d request %d: %d %s", w, i, code, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func testNoLostUpdates(t *testing.T, s sessions.Store) {
	_, delta := s.(sessions.DeltaSaver)
	_, updater := s.(sessions.Updater)
	if !delta && !updater {
		t.Skip("the store implements neither sessions.DeltaSaver nor sessions.Updater: saves rewrite the whole session")
	}
	r, _ := newEngine(s)
	first := &client{h: r}
	first.get(t, "/inc?k=start")
	if first.cookie == nil {
		t.Fatal("no session cookie")
	}
	hammer(t, r, first.cookie, func(w int) string { return fmt.Sprint("/inc?k=c", w) })
	for w := 0; w < clients; w++ {
		if _, body := first.get(t, fmt.Sprint("/get?k=c", w)); body != strconv.Itoa(rounds) {
			t.Errorf("client %d's counter is %s after %d increments", w, body, rounds)
		}
	}
}

func testLockedCounter(t *testing.T, s sessions.Store) {
	if _, ok := s.(sessions.Locker); !ok {
		t.Skip("the store does not implement sessions.Locker")
	}
	r, _ := newEngine(s, sessions.WithLocking(30*time.Second))
	first := &client{h: r}
	first.get(t, "/inc?k=n")
	hammer(t, r, first.cookie, func(int) string { return "/inc?k=n" })
	if _, body := first.get(t, "/get?k=n"); body != strconv.Itoa(1+clients*rounds) {
		t.Fatalf("counter is %s after %d locked increments", body, 1+clients*rounds)
	}
}

func testLogoutEverywhere(t *testing.T, s sessions.Store) {
	if _, ok := s.(sessions.UserIndexer); !ok {
		t.Skip("the store does not implement sessions.UserIndexer")
	}
	r, mg := newEngine(s)
	ann, bob := "ann-"+NewID()[:8], "bob-"+NewID()[:8]
	var anns []*client
	for i := 0; i < 3; i++ {
		cl := &client{h: r}
		cl.get(t, "/inc?k=visits") // an anonymous session first
		cl.get(t, "/login?user="+ann)
		if _, who := cl.get(t, "/whoami"); who != ann {
			t.Fatalf("client %d logged in as %q", i, who)
		}
		anns = append(anns, cl)
	}
	bobs := &client{h: r}
	bobs.get(t, "/login?user="+bob)

	ctx := context.Background()
	infos, err := mg.UserSessions(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 {
		t.Fatalf("ann has %d sessions listed, want 3: %+v", len(infos), infos)
	}
	for _, in := range infos {
		if in.User != ann || in.Ref == "" || in.Created.IsZero() || !in.ExpiresAt.After(time.Now()) {
			t.Errorf("session info incomplete: %+v", in)
		}
	}
	n, err := mg.DestroyUser(ctx, ann)
	if err != nil || n != 3 {
		t.Fatalf("DestroyUser: %d, %v; want 3", n, err)
	}
	for i, cl := range anns {
		if _, who := cl.get(t, "/whoami"); who != "" {
			t.Errorf("client %d still logged in as %q after log out everywhere", i, who)
		}
	}
	if _, who := bobs.get(t, "/whoami"); who != bob {
		t.Errorf("another user's session was ended: whoami = %q", who)
	}
	if infos, _ := mg.UserSessions(ctx, ann); len(infos) != 0 {
		t.Errorf("ann still has sessions listed: %+v", infos)
	}
}
