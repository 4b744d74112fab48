package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/storetest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

func redisAddr() string {
	if a := os.Getenv("FASTSESSION_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func pgDSN() string {
	if d := os.Getenv("FASTSESSION_PG_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// runTag returns a random tag that keeps one run's keys and tables apart
// from every other run's on a shared server.
func runTag() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redisClient connects to the Redis server under test, or skips (fails
// under CI) when it cannot be reached. The client is closed at cleanup.
func redisClient(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	o := &redis.Options{Addr: redisAddr(), DialTimeout: 2 * time.Second}
	for _, f := range opts {
		f(o)
	}
	if err := redisReachable(o.Addr); err != nil {
		storetest.Unreachable(tb, "Redis at "+o.Addr,
			"redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' (or set FASTSESSION_REDIS_ADDR)", err)
	}
	c := redis.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		tb.Fatalf("Redis at %s: PING: %v", o.Addr, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

var (
	redisProbeMu sync.Mutex
	redisProbed  = map[string]error{}
)

// redisReachable pings addr once per process, without go-redis's retries,
// so that a missing server costs one refused connection, not seconds of
// backoff in every test that needs it.
func redisReachable(addr string) error {
	redisProbeMu.Lock()
	defer redisProbeMu.Unlock()
	if err, ok := redisProbed[addr]; ok {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := c.Ping(ctx).Err()
	cancel()
	_ = c.Close()
	redisProbed[addr] = err
	return err
}

// redisPrefix returns a key prefix private to this run and removes every key
// under it at cleanup. Register it after the client, so it runs first.
func redisPrefix(tb testing.TB, c *redis.Client, kind string) string {
	prefix := "fsbench:" + kind + ":" + runTag() + ":"
	tb.Cleanup(func() { deleteKeys(tb, c, prefix) })
	return prefix
}

func deleteKeys(tb testing.TB, c *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	batch := make([]string, 0, 1000)
	flush := func() {
		if len(batch) > 0 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				tb.Errorf("cleanup of Redis keys %s*: %v", prefix, err)
			}
			batch = batch[:0]
		}
	}
	for it.Next(ctx) {
		batch = append(batch, it.Val())
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	if err := it.Err(); err != nil {
		tb.Errorf("cleanup of Redis keys %s*: %v", prefix, err)
	}
}

// pgPool connects to the PostgreSQL server under test, or skips (fails under
// CI) when it cannot be reached. The pool is closed at cleanup.
func pgPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(pgDSN())
	if err != nil {
		tb.Fatalf("FASTSESSION_PG_DSN: %v", err)
	}
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		storetest.Unreachable(tb, "PostgreSQL at "+cfg.ConnConfig.Host,
			"pg_ctlcluster <version> main start, with a database named test (or set FASTSESSION_PG_DSN)", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
