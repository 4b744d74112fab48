package sessions_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

// A session saved to the memory store is built in the store's own memory,
// both when it is created and when it is written to. The same store behind
// a wrapper, which gets the general Save and Update, allocates the data and
// then the store copies it: per request, the memory store itself allocates
// at least half the session's size less. (Both also allocate the store's
// chunks, which the new data fills whichever way it arrives.)
func TestSavesBuildInTheMemoryStore(t *testing.T) {
	const size = 8 << 10
	big := strings.Repeat("x", size)
	// perRequest returns the bytes allocated by one request to path, with
	// cookie (or none) and the store.
	perRequest := func(store sessions.Store, path string, withCookie bool) uint64 {
		e := gin.New()
		e.Use(sessions.New(testKey, sessions.WithStore(store)))
		e.GET("/new", func(c *gin.Context) {
			sessions.Default(c).Set("big", big)
			c.Status(http.StatusNoContent)
		})
		e.GET("/inc", func(c *gin.Context) {
			s := sessions.Default(c)
			n, _ := sessions.GetAs[int](s, "n")
			s.Set("n", n+1)
			c.Status(http.StatusNoContent)
		})
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if withCookie {
			w := httptest.NewRecorder()
			e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/new", nil))
			cookie := w.Header().Get("Set-Cookie")
			if cookie == "" {
				t.Fatal("no session cookie")
			}
			req.Header.Set("Cookie", strings.SplitN(cookie, ";", 2)[0])
		}
		const n = 200
		var w *httptest.ResponseRecorder
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			w = httptest.NewRecorder()
			e.ServeHTTP(w, req)
		}
		runtime.ReadMemStats(&after)
		if w.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d", path, w.Code)
		}
		if !withCookie && len(w.Header().Values("Set-Cookie")) == 0 {
			t.Fatalf("%s: no session was created", path)
		}
		return (after.TotalAlloc - before.TotalAlloc) / n
	}
	for _, tc := range []struct {
		name, path string
		withCookie bool
	}{
		{"write", "/inc", true},
		{"new", "/new", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := memstore.New()
			t.Cleanup(func() { _ = direct.Close() })
			got := perRequest(direct, tc.path, tc.withCookie)
			general := perRequest(newCountingStore(t), tc.path, tc.withCookie)
			t.Logf("bytes allocated per request, %d-byte session: %d on the memory store, %d through a wrapper", size, got, general)
			if general < got+size/2 {
				t.Fatalf("a request allocates %d bytes on the memory store and %d through a wrapper; want at least %d fewer", got, general, size/2)
			}
		})
	}
}

// The middleware reaches a *memstore.Store through its own methods
// (LoadAt, UpdateAppend, SaveAppend) rather than the Store interface: the
// same visits give the same answers as through a wrapper, which gets the
// interface, and the sessions of two visitors stay apart.
func TestMemoryStorePathsAnswerAsTheGeneralOnes(t *testing.T) {
	direct := memstore.New()
	t.Cleanup(func() { _ = direct.Close() })
	visit := func(store sessions.Store) []string {
		r := gin.New()
		r.Use(sessions.New(testKey, sessions.WithStore(store)))
		addRoutes(r)
		var got []string
		alice := login(t, r, "name", "alice")
		bob := login(t, r, "name", "bob")
		for i := range 3 {
			got = append(got, do(t, r, "/count", alice).body)
			if i == 1 {
				got = append(got, do(t, r, "/count", bob).body)
			}
		}
		got = append(got,
			do(t, r, "/set?k=topic&v=tides", alice).body,
			do(t, r, "/get?k=name", alice).body,
			do(t, r, "/get?k=topic", alice).body,
			do(t, r, "/get?k=name", bob).body,
			do(t, r, "/get?k=topic", bob).body,
			do(t, r, "/count", bob).body,
		)
		return got
	}
	want := []string{"1", "2", "1", "3", "ok", "alice", "tides", "bob", "", "2"}
	if got := visit(direct); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("on the memory store itself: %q, want %q", got, want)
	}
	if got := visit(newCountingStore(t)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("through a wrapper: %q, want %q", got, want)
	}
}
