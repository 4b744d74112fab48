package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fs "github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/redisstore"
	gcredis "github.com/gin-contrib/sessions/redis"
	"github.com/redis/go-redis/v9"
)

// cmdHook records what a go-redis client sends, one entry per round trip:
// a single command, or a whole pipeline (a MULTI/EXEC block included),
// which goes out in one write and comes back in one read.
type cmdHook struct {
	mu    sync.Mutex
	trips []trip
}

// trip is the commands of one round trip, in lower case.
type trip []string

func (h *cmdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cmdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.add(cmd)
		return next(ctx, cmd)
	}
}

func (h *cmdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.add(cmds...)
		return next(ctx, cmds)
	}
}

func (h *cmdHook) add(cmds ...redis.Cmder) {
	t := make(trip, len(cmds))
	for i, c := range cmds {
		t[i] = strings.ToLower(c.Name())
	}
	h.mu.Lock()
	h.trips = append(h.trips, t)
	h.mu.Unlock()
}

// take returns the round trips made since the last take.
func (h *cmdHook) take() []trip {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.trips
	h.trips = nil
	return out
}

// commands flattens round trips into the commands they carried.
func commands(trips []trip) []string {
	var out []string
	for _, t := range trips {
		out = append(out, t...)
	}
	return out
}

// commandStats returns the calls per command from INFO commandstats, the
// INFO command itself left out.
func commandStats(ctx context.Context, c *redis.Client) (map[string]int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64)
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") || name == "info" {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("INFO commandstats line %q: %w", line, err)
				}
				out[strings.ReplaceAll(name, "|", " ")] = n
			}
		}
	}
	return out, nil
}

// serverDelta is what the server counted between two snapshots.
type serverDelta map[string]int64

func (d serverDelta) total() int64 {
	var n int64
	for _, v := range d {
		n += v
	}
	return n
}

func (d serverDelta) String() string {
	keys := slices.Sorted(maps.Keys(d))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, d[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// countOnServer runs one request and returns the commands the server
// counted meanwhile. Other clients of a shared server add to the count, so
// it is an upper bound; the best of a few tries is kept.
func countOnServer(t *testing.T, stats *redis.Client, tries int, request func() error) serverDelta {
	t.Helper()
	ctx := context.Background()
	var best serverDelta
	for range tries {
		before, err := commandStats(ctx, stats)
		if err != nil {
			t.Fatalf("INFO commandstats: %v", err)
		}
		if err := request(); err != nil {
			t.Fatal(err)
		}
		after, err := commandStats(ctx, stats)
		if err != nil {
			t.Fatalf("INFO commandstats: %v", err)
		}
		d := serverDelta{}
		for k, v := range after {
			if v > before[k] {
				d[k] = v - before[k]
			}
		}
		if best == nil || d.total() < best.total() {
			best = d
		}
	}
	return best
}

// TestRedisRoundTrips counts the round trips to Redis that FastSession's
// redisstore makes per request, with a go-redis hook (the count asserted; a
// pipeline or MULTI/EXEC block is one round trip) and on the server with
// INFO commandstats deltas (which must show every command sent). The
// gin-contrib redis store's counts are logged for comparison.
func TestRedisRoundTrips(t *testing.T) {
	stats := redisClient(t) // unhooked: only for INFO
	hook := &cmdHook{}
	// One connection, opened by redisClient's PING, so that no dial (and its
	// handshake commands) falls inside a measured request.
	client := redisClient(t, func(o *redis.Options) { o.PoolSize = 1 })
	client.AddHook(hook)
	prefix := redisPrefix(t, client, "rt")

	plain := fastsessionEnv(redisstore.New(client, redisstore.WithKeyPrefix(prefix)))
	touching := fastsessionEnv(redisstore.New(client, redisstore.WithKeyPrefix(prefix)),
		fs.WithTouchInterval(time.Nanosecond))

	request := func(e *env, path, cookie string, want []byte) func() error {
		return func() error {
			if err := expectOK(e.serve(newRequest(path, cookie)), want); err != nil {
				return fmt.Errorf("GET %s: %w", path, err)
			}
			return nil
		}
	}
	cookie, err := plain.seed()
	if err != nil {
		t.Fatal(err)
	}
	hook.take()
	// The script Touch runs is loaded into the server's cache by its first
	// use; the steady state is what is measured. Redis keeps expiries in
	// milliseconds, so a refresh needs the clock to have moved past the one
	// stored.
	time.Sleep(3 * time.Millisecond)
	if err := request(touching, "/read", cookie, nil)(); err != nil {
		t.Fatal(err)
	}
	t.Logf("first refresh of this run (loads the script if the server lacks it): %v", hook.take())

	cases := []struct {
		name string
		e    *env
		path string
		ck   string
		want []byte
		max  int
		min  int
		wait bool // let the clock move, so the idle expiry is due for a refresh
	}{
		{"untouched", plain, "/untouched", "", okBody, 0, 0, false},
		{"read", plain, "/read", cookie, []byte(seedValues[readIndex]), 1, 1, false},
		{"new", plain, "/new", "", okBody, 1, 1, false},
		{"write", plain, "/write", cookie, nil, 2, 2, false},
		{"read with idle-timeout refresh", touching, "/read", cookie, []byte(seedValues[readIndex]), 2, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sent [][]trip
			server := countOnServer(t, stats, 3, func() error {
				if tc.wait {
					time.Sleep(3 * time.Millisecond)
				}
				hook.take()
				err := request(tc.e, tc.path, tc.ck, tc.want)()
				sent = append(sent, hook.take())
				return err
			})
			for _, trips := range sent {
				if n := len(trips); n < tc.min || n > tc.max {
					want := strconv.Itoa(tc.max)
					if tc.min != tc.max {
						want = fmt.Sprintf("%d to %d", tc.min, tc.max)
					}
					t.Errorf("%d round trips %v, want %s", n, trips, want)
				}
			}
			if tc.wait && !slices.ContainsFunc(sent, func(trips []trip) bool { return len(trips) > 1 }) {
				t.Errorf("no request refreshed the session's expiry (round trips: %v), so the refresh path went untested", sent)
			}
			// Every command sent must show on the server. The server also
			// counts the commands a script runs inside its one round trip,
			// and what other clients send, so only "at least" can be
			// checked.
			last := sent[len(sent)-1]
			perName := map[string]int64{}
			for _, c := range commands(last) {
				perName[c]++
			}
			for name, n := range perName {
				if server[name] < n {
					t.Errorf("the server counted %s %d times, fewer than the %d sent; server: %v", name, server[name], n, server)
				}
			}
			t.Logf("fastsession redisstore: %d round trips %v; the server counted %v (script internals included)", len(last), last, server)
		})
	}

	t.Run("gin-contrib redis store, for comparison", func(t *testing.T) {
		st, err := gcredis.NewStore(1, "tcp", redisAddr(), "", "", secret)
		if err != nil {
			t.Fatalf("gin-contrib redis.NewStore: %v", err)
		}
		gprefix := redisPrefix(t, stats, "rtgc")
		if err := gcredis.SetKeyPrefix(st, gprefix); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if rs, err := gcredis.GetRedisStore(st); err == nil {
				_ = rs.Close()
			}
		})
		e := gincontribEnv(st)
		ck, err := e.seed() // also dials the pool's connection
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, path, ck string
		}{{"untouched", "/untouched", ""}, {"read", "/read", ck}, {"new", "/new", ""}, {"write", "/write", ck}} {
			d := countOnServer(t, stats, 3, request(e, tc.path, tc.ck, nil))
			t.Logf("gin-contrib redis, %s: the server counted %d commands %v (best of 3; other clients' commands may be in it)", tc.name, d.total(), d)
		}
	})
}
