package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/fastsession/sessions/bench
BenchmarkSessions/untouched/bare-2         	 1000000	      1000 ns/op	     100 B/op	      10 allocs/op
BenchmarkSessions/untouched/bare-2         	 1000000	      1200 ns/op	     100 B/op	      10 allocs/op
BenchmarkSessions/untouched/bare-2         	 1000000	      5000 ns/op	     100 B/op	      10 allocs/op
BenchmarkSessions/untouched/fastsession-memstore-2 	 1000000	      1100 ns/op	     150 B/op	      11 allocs/op
BenchmarkSessions/read/bare-2              	 1000000	      1000 ns/op
BenchmarkSessions/read/fastsession-memstore-2      	  500000	      3000 ns/op
BenchmarkSessions/read/scs-memstore-2      	   50000	     20000 ns/op
BenchmarkSessions/write/fastsession-memstore-2     	  500000	      5000 ns/op
BenchmarkSessions/write/scs-memstore-2     	   50000	     30000 ns/op
BenchmarkSessions/new/fastsession-memstore-2       	  500000	      3000 ns/op
BenchmarkSessions/new/scs-memstore-2       	   50000	     10000 ns/op
BenchmarkSessions/read/fastsession-redis-2 	   20000	     50000 ns/op
BenchmarkReference/securecookie-decode-2   	 1000000	      1000 ns/op
BenchmarkSessions/write-parallel/bare-2    	 1000000	       500 ns/op
BenchmarkPaired/untouched/fastsession-memstore-vs-bare-2 	  500000	      2300 ns/op	        40.00 a-b-ns/req	      1190 a-ns/req	         1.035 a/b	      1150 b-ns/req
BenchmarkPaired/untouched/fastsession-memstore-vs-bare-2 	  500000	      2300 ns/op	       300.0 a-b-ns/req	      1450 a-ns/req	         1.26 a/b	      1150 b-ns/req
BenchmarkPaired/untouched/fastsession-memstore-vs-bare-2 	  500000	      2300 ns/op	        60.00 a-b-ns/req	      1210 a-ns/req	         1.052 a/b	      1150 b-ns/req
BenchmarkPaired/read/fastsession-redis-vs-bare-redis-get-2 	   20000	    120000 ns/op	     10000 a-b-ns/req	     60000 a-ns/req	         1.2 a/b	     50000 b-ns/req
BenchmarkPaired/read/fastsession-redis-vs-bare-redis-get-2 	   20000	    140000 ns/op	     20000 a-b-ns/req	     80000 a-ns/req	         1.33 a/b	     60000 b-ns/req
BenchmarkPaired/read/fastsession-redis-vs-bare-redis-get-2 	   20000	    110000 ns/op	      8000 a-b-ns/req	     59000 a-ns/req	         1.16 a/b	     51000 b-ns/req
    bench_test.go:12: BenchmarkSessions/read/x-2 100 ns/op (a log line)
PASS
`

func TestParseTakesMedians(t *testing.T) {
	s, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.get("Sessions/untouched/bare", "ns/op"); v != 1200 {
		t.Errorf("median of 1000, 1200, 5000 = %v, want 1200", v)
	}
	if _, ok := s.get("Sessions/write-parallel/bare", "ns/op"); !ok {
		t.Error("the -2 suffix was not stripped from Sessions/write-parallel/bare-2")
	}
	if _, ok := s.get("Sessions/read/x", "ns/op"); ok {
		t.Error("a log line was read as a result")
	}
	if v := median([]float64{4, 1, 3, 2}); v != 2.5 {
		t.Errorf("median of 1..4 = %v, want 2.5", v)
	}
}

func TestTargets(t *testing.T) {
	s, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range targets(s) {
		got[r.target] = r.verdict + " " + r.ratio
	}
	want := map[string]string{
		"untouched ≤ bare + 0.25 µs and + 2 allocs":                                     "met -0.10 µs, +1 allocs",
		"memstore read ≤ 0.15 × scs read":                                               "met 1.00",
		"memstore read ≤ bare + securecookie decode + 1.5 µs":                           "met 0.86",
		"memstore write ≤ 0.15 × scs write":                                             "missed 1.11",
		"memstore new ≤ 0.4 × scs new":                                                  "met 0.75",
		"redisstore read ≤ 1.2 × (bare + go-redis GET)":                                 "unknown ",
		"untouched, paired (turns of 256 requests) ≤ bare + 0.25 µs":                    "met +0.06 µs",
		"redisstore read, paired (turns of 256 requests) ≤ 1.2 × (bare + go-redis GET)": "met 1.00",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}

func TestUntouchedLimits(t *testing.T) {
	for _, c := range []struct {
		fsNs, fsAllocs string
		want           string
	}{
		{"1450", "12", "met +0.25 µs, +2 allocs"},
		{"1460", "12", "missed +0.26 µs, +2 allocs"},
		{"1300", "13", "missed +0.10 µs, +3 allocs"},
	} {
		in := "BenchmarkSessions/untouched/bare-2 \t 1000000\t 1200 ns/op\t 100 B/op\t 10 allocs/op\n" +
			"BenchmarkSessions/untouched/fastsession-memstore-2 \t 1000000\t " + c.fsNs + " ns/op\t 150 B/op\t " + c.fsAllocs + " allocs/op\n"
		s, err := parse(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		r := targets(s)[0]
		if got := r.verdict + " " + r.ratio; got != c.want {
			t.Errorf("untouched %s ns, %s allocs: %q, want %q", c.fsNs, c.fsAllocs, got, c.want)
		}
	}
}

func TestPairedRedisReadLimit(t *testing.T) {
	for ab, want := range map[string]string{"1.2": "met 1.00", "1.203": "missed 1.00", "0.96": "met 0.80"} {
		in := "BenchmarkPaired/read/fastsession-redis-vs-bare-redis-get-2 \t 20000\t 110000 ns/op\t 60000 a-ns/req\t " + ab + " a/b\t 50000 b-ns/req\n"
		r := rowFor(t, in, "redisstore read, paired")
		if got := r.verdict + " " + r.ratio; got != want {
			t.Errorf("paired redisstore read, a/b %s: %q, want %q", ab, got, want)
		}
	}
}

func TestPairedUntouchedLimit(t *testing.T) {
	for delta, want := range map[string]string{"250": "met +0.25 µs", "260": "missed +0.26 µs", "-12": "met -0.01 µs"} {
		in := "BenchmarkPaired/untouched/fastsession-memstore-vs-bare-2 \t 500000\t 2300 ns/op\t " + delta + " a-b-ns/req\t 1150 b-ns/req\n"
		r := rowFor(t, in, "untouched, paired")
		if got := r.verdict + " " + r.ratio; got != want {
			t.Errorf("paired delta %s ns: %q, want %q", delta, got, want)
		}
	}
}

// rowFor parses the benchmark output in and returns the targets row whose
// target starts with prefix, failing the test if there is none.
func rowFor(t *testing.T, in, prefix string) row {
	t.Helper()
	s, i := rowIndex(t, in, prefix)
	return targets(s)[i]
}

// metIn returns how many of runs met the target whose text starts with
// prefix, as roundsMet counts them for the results in.
func metIn(t *testing.T, in, prefix string, runs int) int {
	t.Helper()
	s, i := rowIndex(t, in, prefix)
	return roundsMet(s, runs)[i]
}

// rowIndex parses the benchmark output in and returns it with the index of
// the targets row whose target starts with prefix, failing the test if
// there is none.
func rowIndex(t *testing.T, in, prefix string) (samples, int) {
	t.Helper()
	s, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range targets(s) {
		if strings.HasPrefix(r.target, prefix) {
			return s, i
		}
	}
	t.Fatalf("no %q row", prefix)
	return nil, 0
}

func TestRoundsMetJudgesEachRunOnItsOwnNumbers(t *testing.T) {
	const in = `BenchmarkSessions/new/fastsession-memstore-2 1 3000 ns/op
BenchmarkSessions/new/scs-memstore-2 1 10000 ns/op
BenchmarkSessions/new/fastsession-memstore-2 1 3000 ns/op
BenchmarkSessions/new/scs-memstore-2 1 6000 ns/op
BenchmarkSessions/new/fastsession-memstore-2 1 4100 ns/op
BenchmarkSessions/new/scs-memstore-2 1 10000 ns/op
BenchmarkSessions/new/fastsession-memstore-2 1 3900 ns/op
BenchmarkSessions/new/scs-memstore-2 1 10000 ns/op
`
	// Limits 4000, 2400, 4000, 4000: met, missed, missed, met. The medians
	// (3450 against 0.4 × 10000) meet the target, which the count qualifies.
	if r := rowFor(t, in, "memstore new"); r.verdict != "met" {
		t.Fatalf("median verdict %q, want met", r.verdict)
	}
	if got := metIn(t, in, "memstore new", 4); got != 2 {
		t.Errorf("new met in %d of 4 runs, want 2", got)
	}
	// A target not measured in a run is not met in it.
	if got := metIn(t, in, "memstore read ≤ 0.15", 4); got != 0 {
		t.Errorf("read, never measured, met in %d runs", got)
	}
	// A fifth run that only some benchmarks reached counts as not met.
	more := in + "BenchmarkSessions/new/fastsession-memstore-2 1 1000 ns/op\n"
	if got := metIn(t, more, "memstore new", 5); got != 2 {
		t.Errorf("new met in %d of 5 runs, want 2 (the fifth lacks scs)", got)
	}
}
