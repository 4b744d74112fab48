package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var testKey = bytes.Repeat([]byte("k"), 32)

// visitor is one browser: it keeps the cookie the app last set.
type visitor struct {
	t      *testing.T
	r      http.Handler
	cookie *http.Cookie
}

func (v *visitor) do(method, path string) *httptest.ResponseRecorder {
	v.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if v.cookie != nil {
		req.AddCookie(v.cookie)
	}
	w := httptest.NewRecorder()
	v.r.ServeHTTP(w, req)
	for _, ck := range w.Result().Cookies() {
		if ck.MaxAge < 0 {
			v.cookie = nil
		} else {
			v.cookie = ck
		}
	}
	return w
}

// count visits /count and returns the count the app answered.
func (v *visitor) count() int {
	v.t.Helper()
	w := v.do(http.MethodGet, "/count")
	var body struct{ Count int }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &body) != nil {
		v.t.Fatalf("/count: %d %s", w.Code, w.Body.String())
	}
	return body.Count
}

// scrape fetches /metrics and parses the text exposition format.
func scrape(t *testing.T, r http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body.String())
	}
	if len(w.Result().Cookies()) != 0 {
		t.Fatal("/metrics set a cookie")
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series returns the metric of family name whose label has the value
// (any metric if label is ""), or nil.
func series(fams map[string]*dto.MetricFamily, name, label, value string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		if label == "" {
			return m
		}
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				return m
			}
		}
	}
	return nil
}

func counter(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	return series(fams, name, label, value).GetCounter().GetValue()
}

func histCount(fams map[string]*dto.MetricFamily, name, label, value string) uint64 {
	return series(fams, name, label, value).GetHistogram().GetSampleCount()
}

func newTestApp(t *testing.T) (*gin.Engine, *memstore.Store) {
	t.Helper()
	gin.SetMode(gin.TestMode)
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	r, _ := newApp(testKey, sessions.WithStore(st))
	return r, st
}

func TestMetricsCountWhatHappened(t *testing.T) {
	r, st := newTestApp(t)
	before := scrape(t, r)
	for _, k := range eventKinds {
		if series(before, metricEvents, "kind", k.String()) == nil {
			t.Errorf("%s{kind=%q} is not exported from the start", metricEvents, k)
		}
	}

	// Three new visitors, each coming back twice.
	visitors := make([]*visitor, 3)
	for i := range visitors {
		visitors[i] = &visitor{t: t, r: r}
		if n := visitors[i].count(); n != 1 || visitors[i].cookie == nil {
			t.Fatalf("new visitor %d: count %d, cookie %v", i, n, visitors[i].cookie)
		}
	}
	for range 2 {
		for _, v := range visitors {
			v.count()
		}
	}
	for i, v := range visitors {
		if n := v.count(); n != 4 {
			t.Fatalf("visitor %d: count %d after four visits", i, n)
		}
	}
	// A forged cookie: rejected, and its bearer gets a fresh session.
	val := []byte(visitors[0].cookie.Value)
	val[len(val)/2] ^= 1
	forger := &visitor{t: t, r: r, cookie: &http.Cookie{Name: visitors[0].cookie.Name, Value: string(val)}}
	if n := forger.count(); n != 1 {
		t.Fatalf("forged cookie: count %d, want a fresh session", n)
	}
	// One visitor logs out; a copy of the old cookie then finds nothing.
	bob := visitors[1]
	stale := *bob.cookie
	if w := bob.do(http.MethodPost, "/logout"); w.Code != http.StatusOK || bob.cookie != nil {
		t.Fatalf("logout: %d, cookie %v", w.Code, bob.cookie)
	}
	replay := &visitor{t: t, r: r, cookie: &stale}
	replay.do(http.MethodPost, "/logout")

	after := scrape(t, r)
	want := map[string]float64{
		"created":     4, // three new visitors and the forger
		"rejected":    1,
		"destroyed":   1,
		"unknown":     1, // the replayed cookie
		"regenerated": 0,
		"expired":     0,
		"store_error": 0,
	}
	for kind, n := range want {
		if d := counter(after, metricEvents, "kind", kind) - counter(before, metricEvents, "kind", kind); d != n {
			t.Errorf("%s{kind=%q} moved by %v, want %v", metricEvents, kind, d, n)
		}
	}

	// How long the destroyed session lived: one observation, above zero.
	if age := series(after, metricAge, "kind", "destroyed").GetHistogram(); age.GetSampleCount() != 1 || age.GetSampleSum() <= 0 {
		t.Errorf("%s{kind=\"destroyed\"}: count %d, sum %v; want 1 and > 0", metricAge, age.GetSampleCount(), age.GetSampleSum())
	}
	if c := histCount(after, metricAge, "kind", "regenerated"); c != 0 {
		t.Errorf("%s{kind=\"regenerated\"}: count %d, want 0", metricAge, c)
	}

	// Store calls: a load for each request whose cookie passed the checks
	// (nine visits back, the logout, the replay), a write for each /count.
	if c := histCount(after, metricCallTime, "op", "load"); c != 11 {
		t.Errorf("%s{op=\"load\"}: count %d, want 11", metricCallTime, c)
	}
	var writes uint64
	for _, op := range []string{"save", "save_delta", "update"} {
		writes += histCount(after, metricCallTime, "op", op)
	}
	if writes != 13 {
		t.Errorf("%s{op=\"save|save_delta|update\"}: count %d, want 13 (one per /count)", metricCallTime, writes)
	}
	if c := histCount(after, metricCallTime, "op", "delete"); c != 1 {
		t.Errorf("%s{op=\"delete\"}: count %d, want 1", metricCallTime, c)
	}
	for _, op := range []string{"load", "delete"} {
		if m := series(after, metricCallErrors, "op", op); m == nil || m.GetCounter().GetValue() != 0 {
			t.Errorf("%s{op=%q}: %v, want 0", metricCallErrors, op, m)
		}
	}

	// Live sessions: the two visitors still logged in and the forger.
	live := series(after, metricLive, "", "")
	if live == nil || live.GetGauge().GetValue() != 3 || st.Len() != 3 {
		t.Errorf("%s = %v, store holds %d; want 3", metricLive, live, st.Len())
	}
}

// TestObserverStartsNoGoroutines runs concurrent traffic and scrapes
// through the observer: no goroutine of Prometheus or of this package runs
// meanwhile, and none outlives the test once the store is closed.
func TestObserverStartsNoGoroutines(t *testing.T) {
	gin.SetMode(gin.TestMode)
	base := runtime.NumGoroutine()
	st := memstore.New()
	r, _ := newApp(testKey, sessions.WithStore(st))

	const clients, visits = 8, 25
	var wg sync.WaitGroup
	failures := make(chan string, clients)
	for range clients {
		wg.Go(func() {
			var ck *http.Cookie
			for i := range visits {
				req := httptest.NewRequest(http.MethodGet, "/count", nil)
				if ck != nil {
					req.AddCookie(ck)
				}
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				if cs := w.Result().Cookies(); len(cs) == 1 {
					ck = cs[0]
				}
				if want := fmt.Sprintf(`{"count":%d}`, i+1); w.Body.String() != want {
					failures <- fmt.Sprintf("visit %d: %s, want %s", i+1, w.Body.String(), want)
					return
				}
				if i%5 == 0 { // scrape while requests run
					r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	fams := scrape(t, r)
	if c := counter(fams, metricEvents, "kind", "created"); c != clients {
		t.Errorf("created %v, want %d", c, clients)
	}
	if g := series(fams, metricLive, "", "").GetGauge().GetValue(); g != clients {
		t.Errorf("%s = %v, want %d", metricLive, g, clients)
	}

	for _, g := range goroutines() {
		if strings.Contains(g, "prometheus") || strings.Contains(g, "_examples/metrics.") {
			t.Errorf("a goroutine runs while the app is idle:\n%s", g)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before the app, %d after:\n%s", base, runtime.NumGoroutine(), strings.Join(goroutines(), "\n\n"))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// goroutines returns the stacks of every goroutine but the caller's.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	all := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
	return all[1:] // the first is the calling goroutine
}

// onlyBasics is a store with none of the optional capabilities, so
// Manager.Range is not supported.
type onlyBasics struct{ st *memstore.Store }

func (o onlyBasics) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	return o.st.Load(ctx, id)
}

func (o onlyBasics) Save(ctx context.Context, id string, data []byte, exp time.Time) error {
	return o.st.Save(ctx, id, data, exp)
}

func (o onlyBasics) Delete(ctx context.Context, id string) error { return o.st.Delete(ctx, id) }

func TestLiveGaugeNeedsAStoreThatLists(t *testing.T) {
	gin.SetMode(gin.TestMode)
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	r, reg := newApp(testKey, sessions.WithStore(onlyBasics{st}))
	v := &visitor{t: t, r: r}
	v.count()
	// The registry reports why the gauge is missing; /metrics serves the rest.
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "cannot list its sessions") {
		t.Errorf("gather: %v, want the store's lack of Range", err)
	}
	fams := scrape(t, r)
	if fams[metricLive] != nil {
		t.Errorf("%s is exported without a count", metricLive)
	}
	if c := counter(fams, metricEvents, "kind", "created"); c != 1 {
		t.Errorf("created %v, want 1", c)
	}
}
