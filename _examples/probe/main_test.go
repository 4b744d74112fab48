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

func TestProbesNeverReachTheStore(t *testing.T) {
	gin.SetMode(gin.TestMode)
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	r := newRouter(bytes.Repeat([]byte("k"), 32), sessions.WithStore(st))
	for i := 0; i < 1000; i++ {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Header.Set("X-FastSession-Skip", "skip")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusOK || len(w.Result().Cookies()) != 0 {
			t.Fatalf("probe %d: status %d, cookies %v", i, w.Code, w.Result().Cookies())
		}
	}
	if n := st.Len(); n != 0 {
		t.Fatalf("1000 probes left %d sessions in the store", n)
	}
	// Without the header the same handler creates a session.
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if len(w.Result().Cookies()) != 1 || st.Len() != 1 {
		t.Fatalf("a real visit: cookies %v, %d sessions", w.Result().Cookies(), st.Len())
	}
}
