package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fastsession/sessions"
)

// ErrLockTimeout is wrapped by the error Lock returns when the lock of a
// session stayed held by another request for the whole wait.
var ErrLockTimeout = errors.New("sqlitestore: timed out waiting for the session lock")

// Update calls fn with the data stored under id and stores what fn returns,
// with expiry expiresAt (microseconds, rounded up), in one write
// transaction: BEGIN IMMEDIATE, SELECT data (live rows only), fn, UPDATE,
// COMMIT. BEGIN IMMEDIATE takes SQLite's write lock before the SELECT, so no
// other write to the file, from this process or another, can come between
// the read and the write, and fn is called exactly once.
//
// If no live row is stored under id, fn is not called, found is false and
// nothing is written. If fn returns an error, the transaction is rolled
// back and Update returns that error as it is. user_id is left alone.
//
// The transaction runs on one connection taken from the pool for its
// duration: with Open, the single write connection, so this process's
// writers queue in the pool; with New, any connection of the caller's pool,
// which waits in SQLite's busy handler (the busy_timeout of the DSN) while
// another connection writes. The transaction is begun with an explicit
// BEGIN IMMEDIATE statement, not through database/sql's BeginTx (whose
// BEGIN is deferred unless the DSN sets _txlock=immediate), so the write
// lock is taken before the read whatever the caller's DSN says. ctx bounds
// the wait for the connection, BEGIN, the SELECT and the UPDATE; if it ends
// or a statement fails, the transaction is rolled back, and a connection
// whose rollback fails is discarded from the pool rather than left inside a
// transaction. COMMIT runs to its end once started. A BEGIN that waits for
// another process's write lock waits in SQLite's busy handler, which notices
// the end of ctx only when the busy timeout runs out (five seconds with
// Open).
func (s *Store) Update(ctx context.Context, id string, expiresAt time.Time, fn func(current []byte) ([]byte, error)) (found bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("sqlitestore: update: %w", err)
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: update: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		// A BEGIN that failed began nothing, unless ctx ended while it ran:
		// the driver then reports ctx's error whether or not the BEGIN
		// went through, so roll back (or discard the connection) to be sure.
		if ctx.Err() != nil {
			rollback(ctx, conn)
		}
		return false, fmt.Errorf("sqlitestore: update: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			rollback(ctx, conn)
		}
	}()

	var cur []byte
	err = conn.QueryRowContext(ctx, s.qUpdateGet, id, time.Now().UnixMicro()).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlitestore: update: %w", err)
	}
	if cur == nil {
		cur = []byte{}
	}
	next, err := fn(cur)
	if err != nil {
		return false, err
	}
	if next == nil {
		next = []byte{} // the driver binds a nil slice as NULL
	}
	if _, err := conn.ExecContext(ctx, s.qUpdateSet, next, micros(expiresAt), id); err != nil {
		return false, fmt.Errorf("sqlitestore: update: %w", err)
	}
	// COMMIT is not interrupted by ctx: once the UPDATE has run, the outcome
	// is either stored or not, never unknown. In WAL mode it takes no lock
	// and returns at once; otherwise the busy timeout bounds it.
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return false, fmt.Errorf("sqlitestore: update: commit: %w", err)
	}
	committed = true
	return true, nil
}

// rollback ends the transaction open on conn. It runs even when ctx has
// ended, bounded by the busy timeout. If it fails (SQLite may already have
// rolled back a statement that was interrupted), conn is discarded from the
// pool instead of being reused in an unknown state.
func rollback(ctx context.Context, conn *sql.Conn) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), busyTimeout)
	defer cancel()
	if _, err := conn.ExecContext(rctx, "ROLLBACK"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// lockTable holds the in-process session locks. An entry exists only while
// some request holds or waits for the lock of its ID, so the map does not
// grow with the number of sessions ever locked.
type lockTable struct {
	mu sync.Mutex
	m  map[string]*lockEntry
}

type lockEntry struct {
	token chan struct{} // capacity 1: full while the lock is held
	refs  int           // the holder and the waiters; guarded by lockTable.mu
}

func (lt *lockTable) acquire(id string) *lockEntry {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	e := lt.m[id]
	if e == nil {
		e = &lockEntry{token: make(chan struct{}, 1)}
		lt.m[id] = e
	}
	e.refs++
	return e
}

func (lt *lockTable) release(id string, e *lockEntry) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		delete(lt.m, id)
	}
}

// Lock waits at most wait, and no longer than ctx allows, until it holds
// the lock of session id, and returns the function that releases it. The
// lock is released when unlock is called (it is idempotent and safe from any
// goroutine) or when ctx ends, whichever comes first; a Lock whose wait runs
// out returns an error wrapping ErrLockTimeout, one whose ctx ends returns
// an error wrapping ctx's error. A wait of zero or less tries once.
//
// The lock lives in this Store's memory, not in the database: it
// serialises the requests of one process only. Processes that share the
// database file (or Stores opened twice on it) do not see each other's
// locks; use a store with a server-side lock, such as Redis, when several
// processes serve the same sessions. Since nothing outlives the process, the
// lease does not apply and is ignored. Lock starts no goroutine: release on
// ctx's end is a context.AfterFunc, stopped by unlock.
func (s *Store) Lock(ctx context.Context, id string, wait, lease time.Duration) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: lock: %w", err)
	}
	e := s.locks.acquire(id)
	select {
	case e.token <- struct{}{}:
	default:
		if wait <= 0 {
			s.locks.release(id, e)
			return nil, fmt.Errorf("sqlitestore: lock: %w: %w", ErrLockTimeout, sessions.ErrLocked)
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case e.token <- struct{}{}:
		case <-ctx.Done():
			s.locks.release(id, e)
			return nil, fmt.Errorf("sqlitestore: lock: %w", ctx.Err())
		case <-timer.C:
			s.locks.release(id, e)
			return nil, fmt.Errorf("sqlitestore: lock: %w (waited %v): %w", ErrLockTimeout, wait, sessions.ErrLocked)
		}
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			<-e.token
			s.locks.release(id, e)
		})
	}
	stop := context.AfterFunc(ctx, release)
	return func() {
		stop()
		release()
	}, nil
}

// LinkUser records that session id belongs to user by setting the user_id
// of its row, in one UPDATE. The link lasts as long as the row: expiresAt
// is not stored, and a row that does not exist is left alone. Save does not
// change user_id, so the link survives the saves that follow.
func (s *Store) LinkUser(ctx context.Context, user, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitestore: link user: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, s.qLink, user, id); err != nil {
		return fmt.Errorf("sqlitestore: link user: %w", err)
	}
	return nil
}

// UnlinkUser clears the user_id of session id if it is user, in one UPDATE.
// A missing row or link, or a link to another user, is not an error.
func (s *Store) UnlinkUser(ctx context.Context, user, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitestore: unlink user: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, s.qUnlink, id, user); err != nil {
		return fmt.Errorf("sqlitestore: unlink user: %w", err)
	}
	return nil
}

// UserSessions returns the IDs of the live sessions linked to user, in one
// SELECT through the user_id index. Expired rows are skipped (the sweep
// deletes them, and their links with them); deleted sessions have no row.
func (s *Store) UserSessions(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: user sessions: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, s.qUserSessions, user, time.Now().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: user sessions: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlitestore: user sessions: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: user sessions: %w", err)
	}
	return ids, nil
}

// Range calls fn with the ID, data and expiry of each live session, in no
// particular order, until fn returns false or every row has been seen. It
// runs one SELECT and streams its rows, so memory stays flat however many
// sessions there are; data is a fresh copy for each row.
//
// The SELECT is one read transaction for the whole walk: fn sees the table
// as it was when Range began. In WAL mode it does not block writers, but a
// checkpoint cannot pass it, so a long walk lets the WAL file grow until it
// ends. With Open, fn may call the Store (reads and writes use other
// connections); with New and a pool of one connection, it must not.
func (s *Store) Range(ctx context.Context, fn func(id string, data []byte, expiresAt time.Time) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitestore: range: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, s.qRangeLive, time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlitestore: range: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var data []byte
		var exp int64
		if err := rows.Scan(&id, &data, &exp); err != nil {
			return fmt.Errorf("sqlitestore: range: %w", err)
		}
		if data == nil {
			data = []byte{}
		}
		if !fn(id, data, time.UnixMicro(exp)) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: range: %w", err)
	}
	return nil
}
