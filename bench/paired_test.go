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
// smaller than the drift of a shared machine between two benchmarks. Only
// scenarios whose heap stays flat are paired: the two sides share one heap,
// so when one side's store grows (new sessions), the garbage collector's
// work on it is charged to both, and the separate benchmarks are the fair
// measure.
var pairs = []struct {
	scenario string
	a, b     string // implementation names; the metrics are a's against b's
	path     string // the request each side serves, again and again
	step     func(e *env, r *http.Request) error
}{
	{"untouched", "fastsession-memstore", "bare", "/untouched", stepUntouched},
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
			reqs := [2]*http.Request{newRequest(p.path, ""), newRequest(p.path, "")}
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

// setupNamed sets up the implementation called name.
func setupNamed(tb testing.TB, name string) *env {
	for _, im := range impls {
		if im.name == name {
			return im.setup(tb)
		}
	}
	tb.Fatalf("no implementation %q", name)
	return nil
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

// The paired benchmark's step checks what it measures: every pair's
// implementations pass it, and a middleware that sets a cookie on an
// untouched request fails it.
func TestPairedStepsCheckTheResponse(t *testing.T) {
	for _, p := range pairs {
		for _, name := range []string{p.a, p.b} {
			if err := p.step(setupNamed(t, name), newRequest(p.path, "")); err != nil {
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
}
