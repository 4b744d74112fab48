package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// driver is what a scenario needs from its runner: a *testing.B in the
// benchmarks, a *testing.T with a small fixed count in TestBenchmarkPathsWork,
// so both run the very same code.
type driver struct {
	testing.TB
	n          int
	resetTimer func()
	stopTimer  func()
	startTimer func()
	// runParallel runs body on several goroutines until n requests have
	// been made in all, and returns the first error a body returned.
	runParallel func(body func(next func() bool) error) error
	// goroutines is how many goroutines runParallel starts.
	goroutines int
	// reportFaults reports the page faults taken while the timer ran, per
	// request, once the scenario is done (nil in tests).
	reportFaults func()
}

// faultCount adds up the minor page faults the process takes while a
// benchmark's timer runs. A new session adds to the store, the store grows
// the heap, and the first touch of each fresh page of it costs a fault: on
// a virtual machine, several microseconds each, a cost the time per request
// includes and this count explains.
type faultCount struct {
	n       int64 // faults counted so far
	from    int64 // the count when the timer last started
	running bool
	ok      bool // the count can be read
}

func (f *faultCount) reset() {
	f.n, f.running = 0, false
	f.start()
}

func (f *faultCount) start() {
	f.from, f.ok = minorFaults()
	f.running = f.ok
}

func (f *faultCount) stop() {
	if !f.running {
		return
	}
	now, ok := minorFaults()
	f.n += now - f.from
	f.running, f.ok = false, ok
}

// benchDriver drives b, and counts the page faults the process takes while
// b's timer runs; call its reportFaults when the scenario is done.
func benchDriver(b *testing.B) *driver {
	var f faultCount
	return &driver{
		TB: b,
		n:  b.N,
		resetTimer: func() {
			b.ResetTimer()
			f.reset()
		},
		stopTimer: func() {
			b.StopTimer()
			f.stop()
		},
		startTimer: func() {
			f.start()
			b.StartTimer()
		},
		reportFaults: func() {
			f.stop()
			if f.ok {
				b.ReportMetric(float64(f.n)/float64(b.N), "faults/op")
			}
		},
		runParallel: func(body func(func() bool) error) error {
			var errs firstError
			b.RunParallel(func(pb *testing.PB) { errs.set(body(pb.Next)) })
			return errs.get()
		},
		goroutines: runtime.GOMAXPROCS(0),
	}
}

func testDriver(t *testing.T, n int) *driver {
	const goroutines = 2
	nop := func() {}
	return &driver{
		TB:         t,
		n:          n,
		resetTimer: nop,
		stopTimer:  nop,
		startTimer: nop,
		runParallel: func(body func(func() bool) error) error {
			var left atomic.Int64
			left.Store(int64(n))
			next := func() bool { return left.Add(-1) >= 0 }
			var errs firstError
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() { errs.set(body(next)) })
			}
			wg.Wait()
			return errs.get()
		},
		goroutines: goroutines,
	}
}

type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

type scenario struct {
	name string
	run  func(d *driver, e *env)
}

var scenarios = []scenario{
	{"untouched", runUntouched},
	{"read", runRead},
	{"write", runWrite},
	{"new", runNew},
	{"read-parallel", runReadParallel},
	{"write-parallel", runWriteParallel},
}

func newRequest(path, cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	return r
}

// serve makes one request, as the benchmarks do: a new recorder and a new
// *http.Request each time, a shallow copy of r, as a server hands each
// request its own. Reusing r itself would let middleware that keeps state
// in the request (gorilla/sessions caches the loaded session in it) skip the
// work a real request does.
func (e *env) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	req := new(http.Request)
	*req = *r
	e.engine.ServeHTTP(w, req)
	return w
}

// sessionCookie returns "name=value" for the session cookie the client
// received in w (the headers as sent, from Result()), or "" if there is
// none. A cookie counts when its value is non-empty and it is not being
// deleted (no Max-Age of zero or less).
//
// It gives the same answer as searching w.Result().Cookies() (TestSentCookie
// checks it against net/http's parser) but without parsing every attribute
// of every cookie: that parse costs more than some of the middlewares
// measured, and it would be counted in every implementation's time alike.
func (e *env) sessionCookie(w *httptest.ResponseRecorder) string {
	return sentCookie(w.Result().Header["Set-Cookie"], e.cookie)
}

func sentCookie(lines []string, name string) string {
	for _, line := range lines {
		part, rest, _ := strings.Cut(strings.TrimSpace(line), ";")
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || strings.TrimSpace(k) != name {
			continue
		}
		if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if v == "" || !validCookieValue(v) || deleting(rest) {
			continue
		}
		if len(part) == len(name)+1+len(v) {
			return part // "name=v" as sent: no copy
		}
		return name + "=" + v
	}
	return ""
}

// deleting reports whether the attributes of a Set-Cookie line tell the
// client to drop the cookie: the last valid Max-Age is zero or less.
func deleting(attrs string) bool {
	drop := false
	for attrs != "" {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
		if len(k) != len("max-age") || !strings.EqualFold(k, "max-age") {
			continue
		}
		secs, err := strconv.Atoi(v)
		if err != nil || (secs != 0 && v[0] == '0') {
			continue // net/http ignores a malformed Max-Age
		}
		drop = secs <= 0
	}
	return drop
}

// validCookieValue reports whether every byte of v may appear in a cookie
// value, as net/http's parser decides it.
func validCookieValue(v string) bool {
	for i := range len(v) {
		if !cookieValueByte[v[i]] {
			return false
		}
	}
	return true
}

// cookieValueByte[b] reports whether b may appear in a cookie value.
var cookieValueByte = func() (t [256]bool) {
	for b := range t {
		t[b] = b >= 0x20 && b < 0x7f && b != '"' && b != ';' && b != '\\'
	}
	return t
}()

func expectOK(w *httptest.ResponseRecorder, want []byte) error {
	if w.Code != http.StatusOK {
		return fmt.Errorf("status %d, want 200; body %.200q", w.Code, w.Body.String())
	}
	if want != nil && !bytes.Equal(w.Body.Bytes(), want) {
		return fmt.Errorf("body %.200q, want %.200q", w.Body.String(), want)
	}
	return nil
}

// seed stores a session of 10 keys and a zero counter, and returns the
// cookie header that names it ("" for bare Gin).
func (e *env) seed() (string, error) {
	w := e.serve(newRequest("/seed", ""))
	if err := expectOK(w, okBody); err != nil {
		return "", fmt.Errorf("seeding: %w", err)
	}
	if e.cookie == "" {
		return "", nil
	}
	ck := e.sessionCookie(w)
	if ck == "" {
		return "", fmt.Errorf("seeding: no %q cookie reached the client (Set-Cookie sent: %q)", e.cookie, w.Result().Header["Set-Cookie"])
	}
	return ck, nil
}

func (e *env) mustSeed(d *driver) string {
	d.Helper()
	ck, err := e.seed()
	if err != nil {
		d.Fatal(err)
	}
	return ck
}

// checkCount reads the counter of the session named by cookie back through
// one more request and compares it with the number of writes made.
func (e *env) checkCount(cookie string, writes int) error {
	if e.cookie == "" {
		return nil // bare Gin has no session to count in
	}
	w := e.serve(newRequest("/count", cookie))
	if err := expectOK(w, nil); err != nil {
		return fmt.Errorf("reading the counter back: %w", err)
	}
	if got := w.Body.String(); got != strconv.Itoa(writes) {
		return fmt.Errorf("counter is %s after %d writes", got, writes)
	}
	return nil
}

// follow returns the cookie to send next: the one just received when the
// cookie carries the session's data, the same one otherwise.
func (e *env) follow(w *httptest.ResponseRecorder, cookie string) (string, error) {
	if !e.cookieCarriesData {
		return cookie, nil
	}
	ck := e.sessionCookie(w)
	if ck == "" {
		return "", fmt.Errorf("the changed session's cookie did not reach the client")
	}
	return ck, nil
}

func runUntouched(d *driver, e *env) {
	r := newRequest("/untouched", "")
	d.resetTimer()
	for range d.n {
		w := e.serve(r)
		if err := expectOK(w, okBody); err != nil {
			d.Fatal(err)
		}
		if sc := w.Header()["Set-Cookie"]; len(sc) != 0 {
			d.Fatalf("an untouched session sent Set-Cookie %q", sc)
		}
	}
}

func runRead(d *driver, e *env) {
	r := newRequest("/read", e.mustSeed(d))
	want := []byte(seedValues[readIndex])
	d.resetTimer()
	for range d.n {
		if err := expectOK(e.serve(r), want); err != nil {
			d.Fatal(err)
		}
	}
}

func runWrite(d *driver, e *env) {
	cookie := e.mustSeed(d)
	r := newRequest("/write", cookie)
	d.resetTimer()
	for range d.n {
		w := e.serve(r)
		if err := expectOK(w, nil); err != nil {
			d.Fatal(err)
		}
		if e.cookieCarriesData {
			var err error
			if cookie, err = e.follow(w, cookie); err != nil {
				d.Fatal(err)
			}
			r.Header.Set("Cookie", cookie)
		}
	}
	d.stopTimer()
	if err := e.checkCount(cookie, d.n); err != nil {
		d.Fatal(err)
	}
}

func runNew(d *driver, e *env) {
	r := newRequest("/new", "")
	d.resetTimer()
	for i := range d.n {
		w := e.serve(r)
		if err := expectOK(w, okBody); err != nil {
			d.Fatal(err)
		}
		if e.cookie == "" {
			continue
		}
		ck := e.sessionCookie(w)
		if ck == "" {
			d.Fatalf("no %q cookie reached the client (Set-Cookie sent: %q)", e.cookie, w.Result().Header["Set-Cookie"])
		}
		if i == 0 || i == d.n-1 {
			// The cookie must name the session just made.
			d.stopTimer()
			if err := expectOK(e.serve(newRequest("/who", ck)), []byte(newValue)); err != nil {
				d.Fatalf("the new session's cookie does not find its data: %v", err)
			}
			d.startTimer()
		}
	}
}

func runReadParallel(d *driver, e *env) {
	cookie := e.mustSeed(d)
	want := []byte(seedValues[readIndex])
	d.resetTimer()
	err := d.runParallel(func(next func() bool) error {
		r := newRequest("/read", cookie)
		for next() {
			if err := expectOK(e.serve(r), want); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.Fatal(err)
	}
}

func runWriteParallel(d *driver, e *env) {
	// One session per goroutine, seeded before the clock starts.
	cookies := make([]string, d.goroutines)
	for i := range cookies {
		cookies[i] = e.mustSeed(d)
	}
	type result struct {
		cookie string
		writes int
	}
	var (
		taken   atomic.Int64
		mu      sync.Mutex
		results []result
	)
	d.resetTimer()
	err := d.runParallel(func(next func() bool) error {
		var cookie string
		if i := int(taken.Add(1)) - 1; i < len(cookies) {
			cookie = cookies[i]
		} else {
			var err error
			if cookie, err = e.seed(); err != nil {
				return err
			}
		}
		r := newRequest("/write", cookie)
		writes := 0
		defer func() {
			mu.Lock()
			results = append(results, result{cookie, writes})
			mu.Unlock()
		}()
		for next() {
			w := e.serve(r)
			if err := expectOK(w, nil); err != nil {
				return err
			}
			writes++
			if e.cookieCarriesData {
				var err error
				if cookie, err = e.follow(w, cookie); err != nil {
					return err
				}
				r.Header.Set("Cookie", cookie)
			}
		}
		return nil
	})
	d.stopTimer()
	if err != nil {
		d.Fatal(err)
	}
	total := 0
	for _, res := range results {
		total += res.writes
		if err := e.checkCount(res.cookie, res.writes); err != nil {
			d.Fatal(err)
		}
	}
	if total != d.n {
		d.Fatalf("%d writes made, want %d", total, d.n)
	}
}
