package bench

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// pairedBlock is how many requests one side of a paired benchmark serves
// before the other side takes its turn.
const pairedBlock = 256

// pairs are the comparisons BenchmarkPaired makes: a target whose margin is
// smaller than the drift of a shared machine between two benchmarks (or,
// for Redis, of the server's latency). Only scenarios whose heap stays flat
// are paired: the two sides share one heap, so when one side's store grows
// (new sessions), the garbage collector's work on it is charged to both,
// and the separate benchmarks are the fair measure.
var pairs = []struct {
	scenario string
	a, b     string // implementation names; the metrics are a's against b's
	path     string // the request each side serves, again and again
	seeded   bool   // the request carries the cookie of a seeded session
	step     func(e *env, r *http.Request) error
}{
	{"untouched", "fastsession-memstore", "bare", "/untouched", false, stepUntouched},
	{"read", "fastsession-redis", "bare-redis-get", "/read", true, stepRead},
}

// references are the sides of pairs that are not session implementations,
// so BenchmarkSessions does not run them.
var references = []impl{
	// Bare Gin whose /read handler makes one go-redis GET of a 1 KB value
	// (as BenchmarkReference/redis-get-1KB does) and answers what bare
	// answers: "bare + one go-redis GET" of the redisstore read target,
	// served as one request.
	{"bare-redis-get", func(tb testing.TB) *env {
		rc := redisClient(tb)
		key := setRefValue(tb, rc, "pairref")
		ok := func(c *gin.Context) { c.String(http.StatusOK, "ok") }
		return newEnv("", nil, routes{seed: ok, untouched: ok, write: ok, create: ok, count: ok, who: ok,
			read: func(c *gin.Context) {
				got, err := rc.Get(c.Request.Context(), key).Bytes()
				if err != nil || len(got) != refValueSize {
					c.String(http.StatusInternalServerError, "GET: %d bytes, %v", len(got), err)
					return
				}
				c.String(http.StatusOK, seedValues[readIndex])
			}})
	}},
}

// BenchmarkPaired measures two implementations of one scenario within one
// benchmark: they take turns, a block of pairedBlock requests each, so a
// drift of a shared machine touches both alike. (Separate benchmarks a
// second apart can differ by 10% or more on a shared host, which is more
// than the smallest targets.) It reports each side's ns per request and
// their difference (a-b-ns/req) and ratio (a/b). Every request is checked
// as in BenchmarkSessions.
func BenchmarkPaired(b *testing.B) {
	for _, p := range pairs {
		b.Run(fmt.Sprintf("%s/%s-vs-%s", p.scenario, p.a, p.b), func(b *testing.B) {
			envs := [2]*env{setupNamed(b, p.a), setupNamed(b, p.b)}
			var reqs [2]*http.Request
			for side, e := range envs {
				reqs[side] = pairedRequest(b, e, p.path, p.seeded)
			}
			var took [2]time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; done += pairedBlock {
				n := min(pairedBlock, b.N-done)
				for side, e := range envs {
					start := time.Now()
					for range n {
						if err := p.step(e, reqs[side]); err != nil {
							b.Fatal(err)
						}
					}
					took[side] += time.Since(start)
				}
			}
			a := float64(took[0].Nanoseconds()) / float64(b.N)
			o := float64(took[1].Nanoseconds()) / float64(b.N)
			b.ReportMetric(a, "a-ns/req")
			b.ReportMetric(o, "b-ns/req")
			b.ReportMetric(a-o, "a-b-ns/req")
			b.ReportMetric(a/o, "a/b")
		})
	}
}

// setupNamed sets up the implementation or reference called name.
func setupNamed(tb testing.TB, name string) *env {
	for _, list := range [][]impl{impls, references} {
		for _, im := range list {
			if im.name == name {
				return im.setup(tb)
			}
		}
	}
	tb.Fatalf("no implementation %q", name)
	return nil
}

// pairedRequest is the request a side of a pair serves: to path, with the
// cookie of a freshly seeded session if seeded.
func pairedRequest(tb testing.TB, e *env, path string, seeded bool) *http.Request {
	tb.Helper()
	cookie := ""
	if seeded {
		ck, err := e.seed()
		if err != nil {
			tb.Fatal(err)
		}
		cookie = ck
	}
	return newRequest(path, cookie)
}

// stepUntouched serves one untouched request and checks it as
// runUntouched does.
func stepUntouched(e *env, r *http.Request) error {
	w := e.serve(r)
	if err := expectOK(w, okBody); err != nil {
		return err
	}
	if sc := w.Header()["Set-Cookie"]; len(sc) != 0 {
		return fmt.Errorf("an untouched session sent Set-Cookie %q", sc)
	}
	return nil
}

// stepRead serves one read and checks it as runRead does.
func stepRead(e *env, r *http.Request) error {
	return expectOK(e.serve(r), []byte(seedValues[readIndex]))
}

// The paired benchmark's step checks what it measures: every pair's
// implementations pass it, and a middleware that sets a cookie on an
// untouched request fails it.
func TestPairedStepsCheckTheResponse(t *testing.T) {
	for _, p := range pairs {
		for _, name := range []string{p.a, p.b} {
			e := setupNamed(t, name)
			if err := p.step(e, pairedRequest(t, e, p.path, p.seeded)); err != nil {
				t.Errorf("%s on %s: %v", p.scenario, name, err)
			}
		}
	}
	ok := func(c *gin.Context) { c.String(http.StatusOK, "ok") }
	leaky := newEnv("", func(c *gin.Context) { c.Header("Set-Cookie", "x=1") },
		routes{seed: ok, untouched: ok, read: ok, write: ok, create: ok, count: ok, who: ok})
	if err := stepUntouched(leaky, newRequest("/untouched", "")); err == nil {
		t.Error("a Set-Cookie on an untouched request passed the check")
	}
	// A read that answers something else than the seeded value fails.
	if err := stepRead(leaky, newRequest("/read", "")); err == nil {
		t.Error("a read answering \"ok\" passed the check")
	}
}
