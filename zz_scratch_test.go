package sessions_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func engine(st sessions.Store) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(sessions.New(key, sessions.WithStore(st)))
	r.GET("/untouched", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/read", func(c *gin.Context) { v, _ := sessions.GetAs[string](sessions.Default(c), "k3"); c.String(200, v[:2]) })
	r.GET("/write", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		s.Set("count", n+1)
		c.String(200, "ok")
	})
	r.GET("/setup", func(c *gin.Context) {
		s := sessions.Default(c)
		for i := 0; i < 10; i++ {
			s.Set("k"+string(rune('0'+i)), string(make([]byte, 100))+"xx")
		}
		c.String(200, "ok")
	})
	return r
}

func BenchmarkScratch(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	r := engine(st)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/setup", nil))
	ck := w.Result().Cookies()[0]
	bare := gin.New()
	bare.GET("/untouched", func(c *gin.Context) { c.String(200, "ok") })
	for _, tc := range []struct {
		name string
		r    *gin.Engine
		path string
		ck   bool
	}{{"bare", bare, "/untouched", false}, {"untouched", r, "/untouched", false}, {"read", r, "/read", true}, {"write", r, "/write", true}, {"new", r, "/write", false}} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.ck {
				req.AddCookie(ck)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				tc.r.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
	_ = http.StatusOK
}
