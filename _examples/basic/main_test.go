package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

func TestCounterCountsPerVisitor(t *testing.T) {
	gin.SetMode(gin.TestMode)
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	r := newRouter(bytes.Repeat([]byte("k"), 32), sessions.WithStore(st))
	visit := func(ck *http.Cookie) (string, *http.Cookie) {
		req := httptest.NewRequest(http.MethodGet, "/count", nil)
		if ck != nil {
			req.AddCookie(ck)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if cs := w.Result().Cookies(); len(cs) == 1 {
			ck = cs[0]
		}
		return w.Body.String(), ck
	}
	body, ann := visit(nil)
	if body != `{"count":1}` || ann == nil {
		t.Fatalf("first visit: %s, cookie %v", body, ann)
	}
	if !ann.HttpOnly || !ann.Secure || ann.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie lacks the secure defaults: %+v", ann)
	}
	body, _ = visit(ann)
	if body != `{"count":2}` {
		t.Fatalf("second visit: %s", body)
	}
	body, bob := visit(nil)
	if body != `{"count":1}` || bob.Value == ann.Value {
		t.Fatalf("another visitor shares the count: %s", body)
	}
	if body, _ = visit(ann); body != `{"count":3}` {
		t.Fatalf("third visit: %s", body)
	}
}
