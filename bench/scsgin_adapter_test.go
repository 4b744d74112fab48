package bench

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestSCSAdapter checks that the Gin adapter for scs delivers the session
// cookie whichever way a handler sends its response, and stops the chain
// when the session cannot be loaded.
func TestSCSAdapter(t *testing.T) {
	sends := map[string]func(c *gin.Context){
		"String":         func(c *gin.Context) { c.String(http.StatusOK, "ok") },
		"Write":          func(c *gin.Context) { _, _ = c.Writer.Write([]byte("ok")) },
		"WriteString":    func(c *gin.Context) { _, _ = c.Writer.WriteString("ok") },
		"WriteHeaderNow": func(c *gin.Context) { c.Status(http.StatusAccepted); c.Writer.WriteHeaderNow() },
		"Flush":          func(c *gin.Context) { c.Writer.Flush() },
		"no body":        func(c *gin.Context) { c.Status(http.StatusNoContent) },
		"Redirect":       func(c *gin.Context) { c.Redirect(http.StatusFound, "/next") },
	}
	for name, send := range sends {
		t.Run(name, func(t *testing.T) {
			sm := newSCS(t)
			e := gin.New()
			e.Use(scsMiddleware(sm))
			e.GET("/", func(c *gin.Context) {
				sm.Put(c.Request.Context(), newKey, newValue)
				send(c)
				// Written after the headers went out: must not reach the
				// store under a cookie the client never got.
				sm.Put(c.Request.Context(), "late", 1)
			})
			e.GET("/who", func(c *gin.Context) {
				v := sm.GetString(c.Request.Context(), newKey)
				c.String(http.StatusOK, v)
			})
			w := httptest.NewRecorder()
			e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			var cookie *http.Cookie
			for _, ck := range w.Result().Cookies() {
				if ck.Name == sm.Cookie.Name {
					cookie = ck
				}
			}
			if cookie == nil {
				t.Fatalf("no session cookie reached the client; headers sent: %v", w.Result().Header)
			}
			r := httptest.NewRequest(http.MethodGet, "/who", nil)
			r.AddCookie(cookie)
			w = httptest.NewRecorder()
			e.ServeHTTP(w, r)
			if got := w.Body.String(); got != newValue {
				t.Errorf("the session read back holds %q, want %q", got, newValue)
			}
		})
	}

	t.Run("a failed load stops the chain", func(t *testing.T) {
		sm := newSCS(t)
		sm.Store = findFailing{}
		sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
		}
		e := gin.New()
		e.Use(scsMiddleware(sm))
		ran := false
		e.GET("/", func(c *gin.Context) { ran = true; c.String(http.StatusOK, "ok") })
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: "some-token"})
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		if ran {
			t.Error("the handler ran without a session")
		}
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", w.Code)
		}
	})
}

// findFailing is an scs store whose every call fails.
type findFailing struct{}

func (findFailing) Find(string) ([]byte, bool, error) { return nil, false, errors.New("down") }
func (findFailing) Commit(string, []byte, time.Time) error {
	return errors.New("down")
}
func (findFailing) Delete(string) error { return errors.New("down") }
