// Package redisstore is a Redis session store for
// github.com/fastsession/sessions, built on github.com/redis/go-redis/v9.
//
// The store takes a redis.UniversalClient, so the same store serves a single
// Redis node (*redis.Client), a Sentinel-managed primary
// (redis.NewFailoverClient) and a Redis Cluster (*redis.ClusterClient). The
// application configures and owns the client; the store only issues
// commands on it.
//
// Each session is one Redis string under the key prefix+id. Its value is the
// session's expiry as 8 big-endian bytes of Unix milliseconds, followed by
// the encoded session. Redis expires the key at that same millisecond
// (SET ... PXAT), and Load also checks the embedded expiry, so an expired
// session is never returned even before Redis has removed the key.
//
// Every operation is a single command and a single round trip: Load is GET,
// Save is SET with PXAT, Delete is DEL, and Touch runs a short Lua script
// (EVALSHA) that rewrites the 8-byte expiry prefix in place and moves the
// key's expiry, without sending or rewriting the session data. Each command
// touches one key, so Redis Cluster needs no hash tags.
package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix is the key prefix used when WithKeyPrefix is not given.
const DefaultKeyPrefix = "fastsession:"

// headerLen is the length of the expiry prefix of every stored value.
const headerLen = 8

// Option configures a Store. Pass options to New.
type Option func(*config)

type config struct {
	prefix string
}

// WithKeyPrefix sets the prefix put before every session ID to form its
// Redis key. The default is DefaultKeyPrefix, "fastsession:". Use a distinct
// prefix per application sharing one Redis database. On Redis Cluster the
// prefix must not contain a hash tag ("{...}"), or every session would land
// in a single slot. An empty prefix is allowed and uses the bare ID as key.
func WithKeyPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// touchScript moves the expiry of a live session: when the key exists, has
// a TTL still in the future and holds at least the 8-byte header, it
// overwrites the header with ARGV[1] (the new expiry, 8 big-endian bytes of
// Unix milliseconds) and sets the key's expiry to ARGV[2] (the same instant
// as a decimal). It never creates a key. It returns 1 when it touched the
// key, 0 otherwise.
var touchScript = redis.NewScript(`
if redis.call('PTTL', KEYS[1]) > 0 and redis.call('STRLEN', KEYS[1]) >= 8 then
  redis.call('SETRANGE', KEYS[1], 0, ARGV[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// Store is a Redis session store. Create it with New; the zero value is not
// usable. Its methods are safe for concurrent use, as is the go-redis client
// it wraps. It satisfies the sessions.Store and sessions.Toucher interfaces.
type Store struct {
	client redis.UniversalClient
	prefix string
}

// New returns a Store that keeps sessions in Redis through client, which may
// be a *redis.Client, a failover (Sentinel) client or a *redis.ClusterClient.
// New sends no command; a client that cannot reach its server makes the
// store's methods return errors.
//
// The store honours each call's context by checking it before sending a
// command and by passing it to go-redis, which respects cancellation while
// waiting for a pooled connection. For a context deadline to also bound the
// network I/O of a command, create the client with ContextTimeoutEnabled set
// to true; otherwise the client's ReadTimeout and WriteTimeout apply.
func New(client redis.UniversalClient, opts ...Option) *Store {
	cfg := config{prefix: DefaultKeyPrefix}
	for _, o := range opts {
		o(&cfg)
	}
	return &Store{client: client, prefix: cfg.prefix}
}

func (s *Store) key(id string) string { return s.prefix + id }

// expiryMillis converts t to Unix milliseconds, rounding up to the next
// millisecond, and never returns less than 1 (Redis rejects PXAT values
// below 1; an instant that far in the past is expired either way).
func expiryMillis(t time.Time) int64 {
	ms := t.UnixMilli() // floor: Nanosecond() is never negative
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	if ms < 1 {
		ms = 1
	}
	return ms
}

// wrap prefixes err with the package and operation. When the context ended
// too, its error is wrapped as well, so errors.Is(err, context.Canceled) or
// context.DeadlineExceeded holds whatever error go-redis reported.
func wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisstore: %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// Load returns the data stored under id and its expiry, with one GET. A
// missing key, a value too short to hold the expiry header, or a value whose
// embedded expiry is not after now yields found false and a nil error. The
// returned slice is freshly allocated and belongs to the caller.
func (s *Store) Load(ctx context.Context, id string) (data []byte, expiresAt time.Time, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("redisstore: load: %w", err)
	}
	v, err := s.client.Get(ctx, s.key(id)).Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, time.Time{}, false, nil
		}
		return nil, time.Time{}, false, wrap(ctx, "load", err)
	}
	if len(v) < headerLen {
		return nil, time.Time{}, false, nil
	}
	exp := time.UnixMilli(int64(binary.BigEndian.Uint64(v[:headerLen])))
	if !exp.After(time.Now()) {
		return nil, time.Time{}, false, nil
	}
	return v[headerLen:], exp, true, nil
}

// Save stores data under id until expiresAt, replacing any previous value,
// with one SET ... PXAT command. The expiry is rounded up to the next
// millisecond. data is copied into the command before Save returns.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: save: %w", err)
	}
	ms := expiryMillis(expiresAt)
	v := make([]byte, headerLen+len(data))
	binary.BigEndian.PutUint64(v, uint64(ms))
	copy(v[headerLen:], data)
	cmd := redis.NewStatusCmd(ctx, "set", s.key(id), v, "pxat", ms)
	cmd.SetFirstKeyPos(1)
	if err := s.client.Process(ctx, cmd); err != nil {
		return wrap(ctx, "save", err)
	}
	return nil
}

// Delete removes the session stored under id with one DEL. Deleting an id
// that is not stored is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	if err := s.client.Del(ctx, s.key(id)).Err(); err != nil {
		return wrap(ctx, "delete", err)
	}
	return nil
}

// Touch sets the expiry of the live session stored under id to expiresAt
// (rounded up to the next millisecond) without sending or rewriting its
// data. It runs a Lua script with EVALSHA, one round trip; only the first
// Touch on a server that has not cached the script yet is followed by an
// EVAL that loads it. A missing or expired id is left alone, and Touch never
// creates a key.
func (s *Store) Touch(ctx context.Context, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: touch: %w", err)
	}
	ms := expiryMillis(expiresAt)
	var hdr [headerLen]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(ms))
	if err := touchScript.Run(ctx, s.client, []string{s.key(id)}, hdr[:], ms).Err(); err != nil {
		return wrap(ctx, "touch", err)
	}
	return nil
}

// Close does nothing and returns nil. The store does not own the client:
// the application that created the client closes it.
func (s *Store) Close() error { return nil }
