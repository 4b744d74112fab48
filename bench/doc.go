// Package bench measures FastSession against plain Gin and against the
// session libraries Gin users commonly pick, with every request served by a
// real gin.Engine.
//
// The benchmarks are BenchmarkSessions/<scenario>/<implementation>, plus
// BenchmarkReference for the costs the targets are expressed in (a
// securecookie decode and one go-redis GET). Scenarios:
//
//	untouched       no cookie; the handler never touches the session
//	read            a valid cookie; one of 10 string keys of 100 bytes is read
//	write           a valid cookie; an int counter is incremented
//	new             no cookie; one key is set, so a session and its cookie are made
//	read-parallel   read, under b.RunParallel
//	write-parallel  write, under b.RunParallel, one session per goroutine
//
// Every benchmark checks what it measures (status, the value read, the
// cookie as the client receives it, the final counter) and fails rather than
// time a broken path. The tests, fast enough for every test run:
//
//	TestBenchmarkPathsWork      each benchmark a few times, as a test
//	TestChecksCatchBrokenPaths  the checks fail on deliberately broken adapters
//	TestSCSAdapter              the Gin adapter for scs delivers its cookie on every path
//	TestRedisRoundTrips         round trips to Redis per request (go-redis hook and INFO commandstats)
//	TestMemstoreHeap            memory of 100,000 sessions of 1 KB in the memory store
//
// Redis is reached at FASTSESSION_REDIS_ADDR (default 127.0.0.1:6379) and
// PostgreSQL at FASTSESSION_PG_DSN (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). Each run uses its
// own key prefix or table and removes it afterwards. An unreachable server
// skips what needs it, or fails it when the CI variable is set.
//
// run.sh runs the suite and prints a benchstat table and the target ratios
// (cmd/targets); wrk.sh measures bare Gin against a FastSession read route
// over real HTTP (cmd/server).
package bench
