package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/gin-gonic/gin"
)

// TestCountCarriesAcrossInstances runs two app instances on one Redis: a
// visitor's count continues on whichever instance serves the request.
func TestCountCarriesAcrossInstances(t *testing.T) {
	gin.SetMode(gin.TestMode)
	client := newClient(redisAddr())
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		storetest.Unreachable(t, "Redis at "+redisAddr(), "redis-server --daemonize yes --bind 127.0.0.1 --port 6379", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "example-test-" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
	})
	secret := bytes.Repeat([]byte("s"), 32)
	store := redisstore.New(client, redisstore.WithKeyPrefix(prefix))
	a, bInst := newRouter(secret, store), newRouter(secret, store)
	var cookie *http.Cookie
	for i, r := range []*gin.Engine{a, bInst, a, bInst} {
		req := httptest.NewRequest(http.MethodGet, "/count", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if cs := w.Result().Cookies(); len(cs) == 1 {
			cookie = cs[0]
		}
		want := `{"count":` + string(rune('1'+i)) + `}`
		if w.Code != http.StatusOK || w.Body.String() != want {
			t.Fatalf("request %d: %d %s, want %s", i, w.Code, w.Body.String(), want)
		}
	}
	keys, err := client.Keys(context.Background(), prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("Redis holds %d session keys (%v), want 1", len(keys), err)
	}
}
