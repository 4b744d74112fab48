package sessions_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

// A visit counter. The session is saved without a call to Save, and the
// browser gets a cookie holding only the signed session ID.
func Example() {
	gin.SetMode(gin.ReleaseMode)
	store := memstore.New()
	defer store.Close()

	r := gin.New()
	r.Use(sessions.New([]byte("a-32-byte-or-longer-secret-key!!"), sessions.WithStore(store)))
	r.GET("/count", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		s.Set("count", n+1)
		c.String(http.StatusOK, "visit %d", n+1)
	})

	var cookie *http.Cookie
	for i := 0; i < 3; i++ {
		req := httptest.NewRequest(http.MethodGet, "/count", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if cs := w.Result().Cookies(); len(cs) > 0 {
			cookie = cs[0]
		}
		fmt.Println(w.Body.String())
	}
	// Output:
	// visit 1
	// visit 2
	// visit 3
}

// Log in with Regenerate, so that an ID planted before login is worthless,
// and log out with Destroy.
func ExampleSession_Regenerate() {
	login := func(c *gin.Context) {
		s := sessions.Default(c)
		if err := s.Regenerate(); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		s.Set("user", "ann")
		c.Redirect(http.StatusSeeOther, "/")
	}
	logout := func(c *gin.Context) {
		_ = sessions.Default(c).Destroy()
		c.Redirect(http.StatusSeeOther, "/")
	}
	r := gin.New()
	r.Use(sessions.New([]byte("a-32-byte-or-longer-secret-key!!")))
	r.POST("/login", login)
	r.POST("/logout", logout)
	fmt.Println(len(r.Routes()))
	// Output: 2
}

// Health checks carrying the skip header bypass sessions: no cookie, no
// store access.
func ExampleWithSkipHeader() {
	r := gin.New()
	r.Use(sessions.New([]byte("a-32-byte-or-longer-secret-key!!"),
		sessions.WithSkipHeader("X-FastSession-Skip", "skip")))
	r.GET("/healthz", func(c *gin.Context) {
		err := sessions.Default(c).Save()
		c.String(http.StatusOK, "ok, sessions skipped: %v", err != nil)
	})
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Header.Set("X-FastSession-Skip", "skip")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	fmt.Println(w.Body.String(), len(w.Result().Cookies()))
	// Output: ok, sessions skipped: true 0
}
