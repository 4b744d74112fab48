package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/gin-gonic/gin"
)

// TestLoad runs the example app behind a real HTTP server on loopback, on
// real Redis: 64 clients, each with its own session, send 100,000 /count
// requests in all (FASTSESSION_LOAD_REQUESTS changes the total). Every
// response must be 200, every client's counter must go 1, 2, 3, ... up to
// its number of requests (no increment lost, none counted twice, the
// session never replaced), and Redis must hold exactly 64 sessions under
// the run's key prefix. Requests per second and latency percentiles are
// logged, not asserted.
func TestLoad(t *testing.T) {
	const clients = 64
	total := 100_000
	if v := os.Getenv("FASTSESSION_LOAD_REQUESTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < clients {
			t.Fatalf("FASTSESSION_LOAD_REQUESTS=%q: want a number of at least %d", v, clients)
		}
		total = n
	}
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
	prefix := "example-load-" + hex.EncodeToString(b) + ":"
	keys := func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out []string
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			out = append(out, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("SCAN %s*: %v", prefix, err)
		}
		return out
	}
	t.Cleanup(func() {
		if ks := keys(); len(ks) > 0 {
			_ = client.Del(context.Background(), ks...).Err()
		}
	})

	store := redisstore.New(client, redisstore.WithKeyPrefix(prefix))
	srv := httptest.NewServer(newRouter(bytes.Repeat([]byte("s"), 32), store))
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := srv.URL + "/count"

	var failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	latencies := make([][]time.Duration, clients)
	last := make([]int, clients)
	want := make([]int, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		want[c] = total / clients
		if c < total%clients {
			want[c]++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, want[c])
			defer func() { latencies[c] = lat }()
			cookie := ""
			for i := 1; i <= want[c]; i++ {
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					fail("client %d: %v", c, err)
					return
				}
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					fail("client %d, request %d: %v", c, i, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if err != nil || resp.StatusCode != http.StatusOK {
					fail("client %d, request %d: %d %q (%v)", c, i, resp.StatusCode, body, err)
					return
				}
				cs := resp.Cookies()
				switch {
				case cookie == "" && len(cs) == 1:
					cookie = cs[0].Name + "=" + cs[0].Value
				case cookie == "":
					fail("client %d: first response set cookies %v, want one", c, cs)
					return
				case len(cs) != 0:
					fail("client %d, request %d: the session was replaced (Set-Cookie %v)", c, i, cs)
					return
				}
				var v struct {
					Count int `json:"count"`
				}
				if err := json.Unmarshal(body, &v); err != nil || v.Count != i {
					fail("client %d, request %d: body %q, want count %d", c, i, body, i)
					return
				}
				last[c] = v.Count
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	if n := failures.Load(); n > 0 {
		t.Errorf("%d failed requests", n)
	}
	for c := range clients {
		if last[c] != want[c] {
			t.Errorf("client %d: last count %d, want %d (its number of requests)", c, last[c], want[c])
		}
	}
	if ks := keys(); len(ks) != clients {
		t.Errorf("Redis holds %d keys under the run's prefix, want %d sessions", len(ks), clients)
	}

	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	t.Logf("%d requests from %d clients in %v: %.0f requests/s; latency p50 %v, p99 %v, max %v",
		len(all), clients, elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
}
