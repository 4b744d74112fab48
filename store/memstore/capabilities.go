package memstore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Update applies fn to the live session stored under id, under the shard's
// write lock, so no other Save, Update or Delete of id can interleave. It
// implements sessions.Updater.
func (s *Store) Update(ctx context.Context, id string, expiresAt time.Time, fn func(current []byte) ([]byte, error)) (bool, error) {
	_, found, err := s.UpdateAppend(ctx, id, time.Now(), expiresAt, func(_, current []byte) ([]byte, error) { return fn(current) })
	return found, err
}

// UpdateAppend is Update, except that fn appends the data to store to dst,
// which is empty and may be nil or too small (fn's appends then allocate as
// usual), that it returns the data as stored, which the caller may keep and
// the store never modifies (stored is nil unless found is true and err
// nil), and that the caller gives the current time: a session whose expiry
// is not after now is not found. dst is the shard's free space, so data
// that fits there is written once and never copied. The sessions
// middleware saves through it when the store it is given is a *Store
// itself.
func (s *Store) UpdateAppend(ctx context.Context, id string, now, expiresAt time.Time, fn func(dst, current []byte) ([]byte, error)) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("memstore: update: %w", err)
	}
	r, sh := s.s.ref(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl, _, ok := sh.get(&r)
	if !ok || sl.exp <= now.UnixNano() {
		return nil, false, nil
	}
	// Room for the data as it is now, and some growth: a write usually
	// changes a few keys.
	cur := sh.data(sl)
	dst := sh.free(&r, len(cur)+len(cur)/8+256)
	next, err := fn(dst, cur)
	if err != nil {
		return nil, true, err
	}
	if err := checkSize(id, next); err != nil {
		return nil, true, fmt.Errorf("memstore: update: %w", err)
	}
	return sh.data(sh.putWritten(&r, dst, next, expiresAt.UnixNano())), true, nil
}

// sessionLock is the lock of one session: a one-slot channel, with a count
// of the requests holding or waiting for it, so that unused locks are
// removed and the lock table never grows with the number of sessions.
type sessionLock struct {
	slot chan struct{}
	refs int
}

type lockTable struct {
	mu    sync.Mutex
	locks map[string]*sessionLock
}

func (lt *lockTable) acquire(id string) *sessionLock {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.locks == nil {
		lt.locks = make(map[string]*sessionLock)
	}
	l := lt.locks[id]
	if l == nil {
		l = &sessionLock{slot: make(chan struct{}, 1)}
		lt.locks[id] = l
	}
	l.refs++
	return l
}

func (lt *lockTable) drop(id string, l *sessionLock) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(lt.locks, id)
	}
}

// Lock takes the lock of session id within this process, waiting at most
// wait or until ctx ends. The lock is released by unlock or when ctx ends.
// lease does not apply: the lock lives and dies with the process. It
// implements sessions.Locker.
func (s *Store) Lock(ctx context.Context, id string, wait, lease time.Duration) (func(), error) {
	lt := &s.s.locks
	l := lt.acquire(id)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case l.slot <- struct{}{}:
	case <-timer.C:
		lt.drop(id, l)
		return nil, fmt.Errorf("memstore: lock: waited %v: %w", wait, context.DeadlineExceeded)
	case <-ctx.Done():
		lt.drop(id, l)
		return nil, fmt.Errorf("memstore: lock: %w", ctx.Err())
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			<-l.slot
			lt.drop(id, l)
		})
	}
	stop := context.AfterFunc(ctx, release)
	return func() { stop(); release() }, nil
}

// userIndex maps users to the IDs of their sessions.
type userIndex struct {
	mu    sync.Mutex
	users map[string]map[string]struct{}
}

// LinkUser records that session id belongs to user. It implements
// sessions.UserIndexer; the link is dropped when the session is gone.
func (s *Store) LinkUser(ctx context.Context, user, id string, _ time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: link user: %w", err)
	}
	ui := &s.s.users
	ui.mu.Lock()
	defer ui.mu.Unlock()
	if ui.users == nil {
		ui.users = make(map[string]map[string]struct{})
	}
	ids := ui.users[user]
	if ids == nil {
		ids = make(map[string]struct{})
		ui.users[user] = ids
	}
	ids[id] = struct{}{}
	return nil
}

// UnlinkUser removes the link between user and session id.
func (s *Store) UnlinkUser(ctx context.Context, user, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: unlink user: %w", err)
	}
	ui := &s.s.users
	ui.mu.Lock()
	defer ui.mu.Unlock()
	if ids := ui.users[user]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(ui.users, user)
		}
	}
	return nil
}

// UserSessions returns the IDs of user's live sessions, dropping links to
// sessions that are gone.
func (s *Store) UserSessions(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: user sessions: %w", err)
	}
	ui := &s.s.users
	ui.mu.Lock()
	defer ui.mu.Unlock()
	var live []string
	now := time.Now().UnixNano()
	for id := range ui.users[user] {
		r, sh := s.s.ref(id)
		sh.mu.RLock()
		sl, _, ok := sh.get(&r)
		sh.mu.RUnlock()
		if ok && sl.exp > now {
			live = append(live, id)
		} else {
			delete(ui.users[user], id)
		}
	}
	if len(ui.users[user]) == 0 {
		delete(ui.users, user)
	}
	return live, nil
}

// Range calls fn for each live session until fn returns false. It copies
// one shard's entries at a time, so fn runs without any lock held and may
// use the store. It implements sessions.Iterator.
func (s *Store) Range(ctx context.Context, fn func(id string, data []byte, expiresAt time.Time) bool) error {
	type item struct {
		id   string
		data []byte
		exp  int64
	}
	var batch []item
	for i := range s.s.shards {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore: range: %w", err)
		}
		sh := &s.s.shards[i]
		now := time.Now().UnixNano()
		batch = batch[:0]
		sh.mu.RLock()
		for i := range sh.t.n {
			if e := sh.t.at(i); e.sl.exp > now {
				batch = append(batch, item{sh.id(e.sl), sh.data(e.sl), e.sl.exp})
			}
		}
		sh.mu.RUnlock()
		for _, it := range batch {
			if !fn(it.id, it.data, time.Unix(0, it.exp)) {
				return nil
			}
		}
	}
	return nil
}
