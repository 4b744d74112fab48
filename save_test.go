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

// A write to a session on the memory store builds the new data in the
// store's own memory, where the same store behind a wrapper, which gets the
// general Update path, allocates the data and then the store copies it: per
// request, the memory store itself allocates at least half the session's
// size less. (Both also allocate the store's chunks, which the new data
// fills whichever way it arrives.)
func TestWritesBuildInTheMemoryStore(t *testing.T) {
	const size = 8 << 10
	perRequest := func(store sessions.Store) uint64 {
		e := gin.New()
		e.Use(sessions.New(testKey, sessions.WithStore(store)))
		e.GET("/seed", func(c *gin.Context) {
			sessions.Default(c).Set("big", strings.Repeat("x", size))
			c.Status(http.StatusNoContent)
		})
		e.GET("/inc", func(c *gin.Context) {
			s := sessions.Default(c)
			n, _ := sessions.GetAs[int](s, "n")
			s.Set("n", n+1)
			c.Status(http.StatusNoContent)
		})
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/seed", nil))
		cookie := w.Header().Get("Set-Cookie")
		if cookie == "" {
			t.Fatal("no session cookie")
		}
		// One context, served again and again, so gin's context pool does
		// not enter the count.
		c := gin.CreateTestContextOnly(httptest.NewRecorder(), e)
		req := httptest.NewRequest(http.MethodGet, "/inc", nil)
		req.Header.Set("Cookie", strings.SplitN(cookie, ";", 2)[0])
		const n = 200
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			c.Request = req
			e.HandleContext(c)
		}
		runtime.ReadMemStats(&after)
		if c.Writer.Status() != http.StatusNoContent {
			t.Fatalf("status %d", c.Writer.Status())
		}
		return (after.TotalAlloc - before.TotalAlloc) / n
	}
	direct := memstore.New()
	wrapped := newCountingStore(t)
	t.Cleanup(func() { _ = direct.Close() })
	got, general := perRequest(direct), perRequest(wrapped)
	t.Logf("bytes allocated per write of a %d-byte session: %d on the memory store, %d through a wrapper", size, got, general)
	if general < got+size/2 {
		t.Fatalf("a write allocates %d bytes on the memory store and %d through a wrapper; want at least %d fewer", got, general, size/2)
	}
}
