// Package memstore is the in-memory session store: the default store of
// github.com/fastsession/sessions, embedded in the process with nothing to set
// up.
//
// It keeps each session's encoded bytes in a sharded hash table with a per-entry
// expiry, without a pointer per session: keys are fixed-size arrays and the
// data is copied into large append-only byte slabs, so the garbage collector
// has nothing to trace however many sessions the store holds. Slabs are
// compacted once the bytes of replaced and deleted entries outweigh half the
// live ones.
//
// Sessions live as long as the process: use it for development, tests and
// single-instance apps, and a shared store (Redis, PostgreSQL, ...) as soon
// as a second instance serves the same users.
//
// The package speaks in standard types only and does not import the sessions
// package, so it can serve as the middleware's default.
package memstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// shardCount is the number of independently locked tables. Session IDs are
// random, so a power of two well above the core count keeps contention low.
const shardCount = 64

// Option configures a Store. Pass options to New.
type Option func(*config)

type config struct {
	cleanupInterval time.Duration
	maxEntries      int
}

// WithCleanupInterval sets how often a background goroutine removes expired
// entries. The default is one minute. Zero or a negative value turns the
// background sweep off; expired entries are then never returned but are only
// removed when their ID is loaded or saved again.
func WithCleanupInterval(d time.Duration) Option {
	return func(c *config) { c.cleanupInterval = d }
}

// WithMaxEntries caps the number of sessions the store holds, spread evenly
// over its shards. When a shard is full, saving a new session first drops that
// shard's expired entries and then evicts the entry closest to expiry among a
// small sample. The default, 0, sets no cap. A negative value panics.
func WithMaxEntries(n int) Option {
	if n < 0 {
		panic(fmt.Sprintf("memstore: WithMaxEntries(%d): the cap must be 0 (none) or positive", n))
	}
	return func(c *config) { c.maxEntries = n }
}

type shard struct {
	mu sync.RWMutex
	arena
	_ [40]byte // keep neighbouring shards' locks off one cache line
}

// state is everything the sweeper goroutine needs. It is kept apart from
// Store so that a Store nobody references any more can be collected, which
// stops the sweeper.
type state struct {
	seed     maphash.Seed
	shards   [shardCount]shard
	perShard int // 0: no cap
	stop     chan struct{}
	once     sync.Once
	done     chan struct{}
	locks    lockTable
	users    userIndex
}

// Store is an in-memory session store. Create it with New; the zero value is
// not usable. Its methods are safe for concurrent use. It satisfies
// sessions.Store and the optional sessions.Toucher, Updater, Locker (within
// the process), UserIndexer and Iterator.
type Store struct {
	s *state
}

// New returns an empty Store. Unless WithCleanupInterval turns it off, a
// background goroutine sweeps expired entries; Close stops it, and so does
// the garbage collector once the Store is no longer referenced.
func New(opts ...Option) *Store {
	cfg := config{cleanupInterval: time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	st := &state{seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.maxEntries > 0 {
		st.perShard = (cfg.maxEntries + shardCount - 1) / shardCount
	}
	s := &Store{s: st}
	if cfg.cleanupInterval > 0 {
		go st.sweepLoop(cfg.cleanupInterval)
		runtime.AddCleanup(s, func(st *state) { st.close() }, st)
	} else {
		close(st.done)
	}
	return s
}

// ref names the session id and returns the shard that holds it. One keyed
// hash of the key picks the shard (low bits) and the entry's home in the
// shard's table (high bits).
func (st *state) ref(id string) (ref, *shard) {
	r := ref{id: id}
	r.k, r.odd = keyOf(id)
	h := maphash.Bytes(st.seed, r.k[:])
	r.h = h | usedBit
	return r, &st.shards[h%shardCount]
}

// Load returns the data stored under id, or found false when there is none
// or it has expired. The returned slice is shared and must not be modified.
func (s *Store) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	return s.LoadAt(ctx, id, time.Now())
}

// LoadAt is Load for a caller that has read the clock already: a session
// counts as expired if its expiry is not after now. The sessions
// middleware loads through it when the store it is given is a *Store
// itself, saving a clock read per request.
func (s *Store) LoadAt(ctx context.Context, id string, now time.Time) ([]byte, time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("memstore: load: %w", err)
	}
	r, sh := s.s.ref(id)
	sh.mu.RLock()
	sl, _, ok := sh.get(&r)
	var data []byte
	if ok && sl.exp > now.UnixNano() {
		data = sh.data(sl)
	} else {
		ok = false
	}
	sh.mu.RUnlock()
	if !ok {
		return nil, time.Time{}, false, nil
	}
	return data, time.Unix(0, sl.exp), true, nil
}

// Save stores a copy of data under id until expiresAt.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: save: %w", err)
	}
	if err := checkSize(id, data); err != nil {
		return fmt.Errorf("memstore: save: %w", err)
	}
	r, sh := s.s.ref(id)
	sh.mu.Lock()
	s.s.capFor(sh, &r)
	sh.put(&r, data, expiresAt.UnixNano())
	sh.mu.Unlock()
	return nil
}

// SaveAppend is Save, except that fn appends the data to store to dst,
// which is empty and may be nil or too small (fn's appends then allocate as
// usual), and that it returns the data as stored, which the caller may keep
// and the store never modifies. dst is the shard's free space, so data that
// fits there is written once and never copied. If fn fails, nothing is
// stored and its error is returned as it is (a shard at the WithMaxEntries
// cap has made room first, as Save does). fn runs under the shard's lock:
// it must not call the store. The sessions middleware creates
// sessions through it when the store it is given is a *Store itself.
func (s *Store) SaveAppend(ctx context.Context, id string, expiresAt time.Time, fn func(dst []byte) ([]byte, error)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: save: %w", err)
	}
	r, sh := s.s.ref(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Before dst is handed out: making room may compact the chunks.
	s.s.capFor(sh, &r)
	dst := sh.free(&r, newRoom)
	data, err := fn(dst)
	if err != nil {
		return nil, err
	}
	if err := checkSize(id, data); err != nil {
		return nil, fmt.Errorf("memstore: save: %w", err)
	}
	return sh.data(sh.putWritten(&r, dst, data, expiresAt.UnixNano())), nil
}

// newRoom is the free space SaveAppend asks for: enough for a new session's
// first few keys.
const newRoom = 512

// capFor makes room for r's session in sh if the store has a cap, sh is at
// it and r is not stored yet. The caller holds sh's lock.
func (st *state) capFor(sh *shard, r *ref) {
	if st.perShard > 0 && sh.t.n >= st.perShard && !sh.has(r) {
		sh.makeRoom(time.Now().UnixNano())
	}
}

// makeRoom frees at least one slot in a full shard. The caller holds the lock.
func (sh *shard) makeRoom(now int64) {
	sh.removeExpired(now)
	if sh.t.n == 0 {
		return
	}
	// Still full of live sessions: evict the one closest to expiry among a
	// sample of entries, starting at a random place in the table.
	const sample = 8
	victim, n := -1, 0
	for i, size := rand.IntN(sh.t.n), sh.t.n; n < sample && n < size; i = (i + 1) % size {
		if victim < 0 || sh.t.at(i).sl.exp < sh.t.at(victim).sl.exp {
			victim = i
		}
		n++
	}
	sh.removeAt(victim)
}

// Delete removes the session stored under id, if any.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: delete: %w", err)
	}
	r, sh := s.s.ref(id)
	sh.mu.Lock()
	if _, i, ok := sh.get(&r); ok {
		sh.removeAt(i)
		sh.compactIfWasteful()
	}
	sh.mu.Unlock()
	return nil
}

// Touch moves the expiry of the live session stored under id to expiresAt,
// leaving its data untouched. A missing or expired id is left alone.
func (s *Store) Touch(ctx context.Context, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: touch: %w", err)
	}
	r, sh := s.s.ref(id)
	now := time.Now().UnixNano()
	sh.mu.Lock()
	if sl, i, ok := sh.get(&r); ok && sl.exp > now {
		sh.t.at(i).sl.exp = expiresAt.UnixNano()
	}
	sh.mu.Unlock()
	return nil
}

// Len returns the number of entries held, expired ones not yet swept
// included.
func (s *Store) Len() int {
	n := 0
	for i := range s.s.shards {
		sh := &s.s.shards[i]
		sh.mu.RLock()
		n += sh.t.n
		sh.mu.RUnlock()
	}
	return n
}

// Sweep removes every expired entry now. The background sweep calls it on
// its interval; tests and apps without the background sweep may call it
// directly.
func (s *Store) Sweep() { s.s.sweep() }

func (st *state) sweep() {
	now := time.Now().UnixNano()
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		sh.removeExpired(now)
		sh.compactIfWasteful()
		sh.mu.Unlock()
	}
}

func (st *state) sweepLoop(every time.Duration) {
	defer close(st.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			st.sweep()
		}
	}
}

func (st *state) close() {
	st.once.Do(func() { close(st.stop) })
	<-st.done
}

// Close stops the background sweep and waits for it to exit. The store keeps
// working afterwards, without the sweep. Close is idempotent and always
// returns nil.
func (s *Store) Close() error {
	s.s.close()
	return nil
}
