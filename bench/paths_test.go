package bench

import "testing"

// TestBenchmarkPathsWork runs every scenario on every implementation a few
// times through the benchmarks' own code, so a broken adapter or store fails
// the test suite and not only a benchmark run.
func TestBenchmarkPathsWork(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, im := range impls {
				t.Run(im.name, func(t *testing.T) {
					e := im.setup(t)
					sc.run(testDriver(t, 4), e)
				})
			}
		})
	}
}
