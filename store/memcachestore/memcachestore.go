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
//
// It implements sessions.Updater with memcached's compare-and-swap (a get,
// then a cas that fails if the item changed meanwhile, retried), so two
// requests of one session that change different keys never undo each
// other's writes.
//
// It does not implement sessions.Locker, sessions.UserIndexer or
// sessions.Iterator, because memcached cannot provide them reliably: it may
// evict any item at any time, so a lock item could vanish while held (two
// holders at once) and a per-user index could lose entries (a "log out
// everywhere" that misses sessions); and it cannot list its keys, so it
// cannot walk the sessions. An app that needs session locking, "log out
// everywhere" or a walk over all sessions should use the Redis store or an
// SQL store.
package memcachestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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

// maxCASAttempts is how many times Update tries its get and cas before it
// gives up on a session that other writers keep changing.
const maxCASAttempts = 50

// maxBackoff caps the random pause between two attempts of Update.
const maxBackoff = 5 * time.Millisecond

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
// the sessions.Store interface and the optional sessions.Updater interface.
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
// to one. An absolute time is read on memcached's own clock, so a server
// whose clock runs ahead of this machine's drops such an item early by the
// difference, and one that lags keeps it longer (the expiry kept in the
// value still ends the session on time). An absolute time beyond what the
// protocol's 32 bits hold becomes 0, no expiration: the expiry kept in the
// value still applies.
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
	data, exp, live := decode(it.Value, time.Now())
	if !live {
		return nil, time.Time{}, false, nil
	}
	return data, exp, true, nil
}

// decode splits a stored value into the session data and its expiry, and
// reports whether it holds a session that is live at now: false for a
// value too short to hold an expiry, or whose expiry is not after now.
func decode(v []byte, now time.Time) ([]byte, time.Time, bool) {
	if len(v) < headerLen {
		return nil, time.Time{}, false
	}
	exp := time.UnixMilli(int64(binary.BigEndian.Uint64(v[:headerLen])))
	if !exp.After(now) {
		return nil, time.Time{}, false
	}
	return v[headerLen:], exp, true
}

// encode returns the value that stores data until expiresAt.
func encode(data []byte, expiresAt time.Time) []byte {
	v := make([]byte, headerLen+len(data))
	binary.BigEndian.PutUint64(v, uint64(millis(expiresAt)))
	copy(v[headerLen:], data)
	return v
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
	if err := s.c.Set(&memcache.Item{Key: k, Value: encode(data, expiresAt), Expiration: ttl}); err != nil {
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

// Update calls fn with the data stored under id and stores what fn returns,
// with expiry expiresAt, using memcached's compare-and-swap: a get, which
// returns the item with its CAS id, then a cas, which stores the new value
// only if the item has not changed since the get. That is two round trips
// when nothing else writes the session meanwhile.
//
// If the item is missing, or its value is not a live session (expired, or
// not what Save writes), fn is not called, found is false and nothing is
// stored. If fn returns an error, nothing is stored and Update returns that
// error as it is.
//
// If another write came between the get and the cas, the cas fails and
// Update starts again from the get, after a random pause of at most a few
// milliseconds, so fn may be called more than once, each time with the data
// then stored. If the item was deleted meanwhile, the cas finds nothing and
// the next get confirms it: found is false and nothing is stored, so an
// Update never brings back a session that was deleted; if the session was
// saved again in between, the next attempt updates the new one. After 50
// attempts Update gives up with an error wrapping memcache.ErrCASConflict.
//
// An expiresAt that is not in the future stores the value with a negative
// memcached expiration, which memcached treats as already expired. The
// client takes no context: ctx is checked before every attempt and ends
// the pause between two, and the client's Timeout bounds each call.
func (s *Store) Update(ctx context.Context, id string, expiresAt time.Time, fn func(current []byte) ([]byte, error)) (found bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("memcachestore: update: %w", err)
	}
	k, ok := s.key(id)
	if !ok {
		return false, nil // nothing can be stored under such an ID
	}
	for attempt := 0; attempt < maxCASAttempts; attempt++ {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return false, fmt.Errorf("memcachestore: update: %w", err)
			}
		}
		it, err := s.c.Get(k)
		if errors.Is(err, memcache.ErrCacheMiss) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("memcachestore: update: %w", err)
		}
		cur, _, live := decode(it.Value, time.Now())
		if !live {
			return false, nil
		}
		next, err := fn(cur)
		if err != nil {
			return false, err
		}
		ttl, live := expiration(expiresAt, time.Now())
		if !live {
			ttl = -1 // memcached: expired at once
		}
		it.Value = encode(next, expiresAt)
		it.Expiration = ttl
		err = s.c.CompareAndSwap(it)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, memcache.ErrCASConflict):
			// Changed since the get: start again from the new value.
		case errors.Is(err, memcache.ErrCacheMiss), errors.Is(err, memcache.ErrNotStored):
			// Deleted or evicted since the get. The next get says whether
			// it is still gone (found is false) or was saved again.
		default:
			return false, fmt.Errorf("memcachestore: update: %w", err)
		}
	}
	return false, fmt.Errorf("memcachestore: update: gave up after %d attempts: %w", maxCASAttempts, memcache.ErrCASConflict)
}

// pause waits a random time that grows with attempt, up to maxBackoff, so
// that writers that keep colliding spread out; ctx ending ends the wait.
func pause(ctx context.Context, attempt int) error {
	limit := min(maxBackoff, 50*time.Microsecond<<min(attempt, 10))
	t := time.NewTimer(rand.N(limit) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ctx.Err()
	}
}
