// Package memcachestore is a session store for github.com/fastsession/sessions
// that keeps sessions in memcached, through the client
// github.com/bradfitz/gomemcache/memcache.
//
// Each session is one item under the key prefix+ID. Memcached cannot report
// the time an item expires, so the item's value is the session's expiry (8
// bytes, big-endian Unix milliseconds, rounded up) followed by the session
// data; Load decodes it and treats an expired or malformed value as not
// found. The item also carries a memcached expiration, so memcached drops it
// by itself once it has expired.
//
// Memcached is a cache: it evicts items when it runs out of memory, and
// loses them all when it restarts, so users may be logged out earlier than
// their sessions' expiry. Memcached refuses items larger than its item size
// limit, 1 MB by default (memcached -I raises it); the middleware's default
// cap on a session is 512 KiB.
//
// The memcache client takes no context. Every method checks its context
// before it calls the client, and the client's own Timeout (500 ms unless
// set) bounds each call: set it on the client to match the deadlines you
// use.
//
// The store does not implement sessions.Toucher: moving the memcached
// expiration alone would leave the expiry stored in the value behind, so the
// middleware extends a session with a Save, which is one round trip too.
package memcachestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// DefaultKeyPrefix is the key prefix WithKeyPrefix leaves in place.
const DefaultKeyPrefix = "fastsession:"

// maxKeyLen is memcached's limit on the length of a key.
const maxKeyLen = 250

// idLen is the length of the session IDs the middleware makes.
const idLen = 43

// MaxKeyPrefixLen is the longest key prefix WithKeyPrefix accepts: what is
// left of memcached's 250-byte key limit after a 43-byte session ID.
const MaxKeyPrefixLen = maxKeyLen - idLen

// headerLen is the size of the expiry that precedes the data in a value.
const headerLen = 8

// relativeLimit is the longest expiration memcached reads as a number of
// seconds from now; a larger number is an absolute Unix time.
const relativeLimit = 30 * 24 * 60 * 60

// Option configures a Store. Pass options to New.
type Option func(*config)

type config struct {
	prefix string
}

// WithKeyPrefix sets the prefix of the memcached key of every session: the
// key is the prefix followed by the session ID. The default is
// "fastsession:" (DefaultKeyPrefix). Use a different prefix for each app
// that shares a memcached server. The prefix may be empty; it may be at most
// MaxKeyPrefixLen (207) bytes and may not contain spaces, control characters
// or DEL, which memcached keys cannot hold. A prefix that breaks these rules
// panics.
func WithKeyPrefix(prefix string) Option {
	if err := checkPrefix(prefix); err != nil {
		panic("memcachestore: WithKeyPrefix: " + err.Error())
	}
	return func(c *config) { c.prefix = prefix }
}

func checkPrefix(prefix string) error {
	if len(prefix) > MaxKeyPrefixLen {
		return fmt.Errorf("the prefix is %d bytes long; memcached keys are at most %d bytes, so with a %d-byte session ID the prefix may be at most %d",
			len(prefix), maxKeyLen, idLen, MaxKeyPrefixLen)
	}
	if !legalKey(prefix) {
		return fmt.Errorf("the prefix %q contains a space, a control character or DEL, which memcached keys cannot hold", prefix)
	}
	return nil
}

// legalKey reports whether memcached accepts s within a key: no byte at or
// below the space, and no DEL.
func legalKey(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Store is a session store backed by memcached. Create it with New; the zero
// value is not usable. Its methods are safe for concurrent use. It satisfies
// the sessions.Store interface.
type Store struct {
	c      *memcache.Client
	prefix string
}

// New returns a Store that keeps sessions in memcached through client, which
// the caller creates and configures (servers, Timeout, MaxIdleConns) and
// keeps owning. The Store starts no goroutine and needs no Close. A nil
// client panics.
func New(client *memcache.Client, opts ...Option) *Store {
	if client == nil {
		panic("memcachestore: New(nil): pass a *memcache.Client, from memcache.New(\"127.0.0.1:11211\") for example")
	}
	cfg := config{prefix: DefaultKeyPrefix}
	for _, o := range opts {
		o(&cfg)
	}
	return &Store{c: client, prefix: cfg.prefix}
}

// key returns the memcached key of id, or false when id cannot be part of a
// memcached key (too long, or holding a space or control character): nothing
// can be stored under such an ID.
func (s *Store) key(id string) (string, bool) {
	k := s.prefix + id
	return k, len(k) <= maxKeyLen && legalKey(id)
}

// millis returns t in Unix milliseconds, rounded up.
func millis(t time.Time) int64 {
	ms := t.UnixMilli() // rounded down, before the epoch too
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// expiration returns the memcached expiration for an item that must live
// until exp, or false when exp is not after now. Memcached reads a number of
// seconds up to 30 days as relative to now and a larger one as an absolute
// Unix time; both are rounded up. A relative expiration gets one more
// second, because memcached's clock ticks in whole seconds and may lag by up
// to one. An absolute time beyond what the protocol's 32 bits hold becomes 0,
// no expiration: the expiry kept in the value still applies.
func expiration(exp, now time.Time) (int32, bool) {
	d := exp.Sub(now)
	if d <= 0 {
		return 0, false
	}
	secs := int64((d+time.Second-1)/time.Second) + 1
	if secs <= relativeLimit {
		return int32(secs), true
	}
	abs := exp.Unix()
	if exp.Nanosecond() > 0 {
		abs++
	}
	if abs > math.MaxInt32 {
		return 0, true
	}
	return int32(abs), true
}

// Load returns the data stored under id and its expiry (to the millisecond,
// rounded up), or found false when memcached has no item for id, or the
// item's value is too short to hold an expiry, or that expiry is not after
// now. The returned slice is not shared with anything.
func (s *Store) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("memcachestore: load: %w", err)
	}
	k, ok := s.key(id)
	if !ok {
		return nil, time.Time{}, false, nil
	}
	it, err := s.c.Get(k)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("memcachestore: load: %w", err)
	}
	if len(it.Value) < headerLen {
		return nil, time.Time{}, false, nil
	}
	exp := time.UnixMilli(int64(binary.BigEndian.Uint64(it.Value[:headerLen])))
	if !exp.After(time.Now()) {
		return nil, time.Time{}, false, nil
	}
	return it.Value[headerLen:], exp, true, nil
}

// Save stores data under id until expiresAt, replacing any item for id, with
// one memcached set. If expiresAt is not in the future, Save deletes the item
// instead, so that an older value does not outlive it. An id that cannot be
// part of a memcached key is an error.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcachestore: save: %w", err)
	}
	k, ok := s.key(id)
	if !ok {
		return fmt.Errorf("memcachestore: save: %w: %d-byte key", memcache.ErrMalformedKey, len(k))
	}
	now := time.Now()
	ttl, live := expiration(expiresAt, now)
	if !live {
		if err := s.c.Delete(k); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
			return fmt.Errorf("memcachestore: save: %w", err)
		}
		return nil
	}
	v := make([]byte, headerLen+len(data))
	binary.BigEndian.PutUint64(v, uint64(millis(expiresAt)))
	copy(v[headerLen:], data)
	if err := s.c.Set(&memcache.Item{Key: k, Value: v, Expiration: ttl}); err != nil {
		return fmt.Errorf("memcachestore: save: %w", err)
	}
	return nil
}

// Delete removes the item for id. An id with no item is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcachestore: delete: %w", err)
	}
	k, ok := s.key(id)
	if !ok {
		return nil
	}
	if err := s.c.Delete(k); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return fmt.Errorf("memcachestore: delete: %w", err)
	}
	return nil
}
