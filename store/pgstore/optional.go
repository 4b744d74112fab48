package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fastsession/sessions"
)

// cleanupTimeout bounds the statements that end a transaction or release a
// lock after the caller's context may have ended. If one does not finish in
// time, its connection is closed instead, which has the same effect on the
// server.
const cleanupTimeout = 5 * time.Second

// Lock polls with a backoff that starts at minLockPoll and doubles up to
// maxLockPoll.
const (
	minLockPoll = 2 * time.Millisecond
	maxLockPoll = 50 * time.Millisecond
)

// Update calls fn with the data of the live session stored under id and
// stores what fn returns, with expiry expiresAt rounded up to the
// microsecond, in one transaction that holds the row lock throughout:
//
//	BEGIN
//	SELECT data FROM t WHERE id = $1 AND expires_at > $2 FOR UPDATE
//	-- fn runs here; every other Update, Save, Touch and Delete of id waits
//	UPDATE t SET data = $2, expires_at = $3 WHERE id = $1
//	COMMIT
//
// BEGIN is sent together with the SELECT, and the UPDATE together with
// COMMIT (each pair as one pipelined batch), so an Update costs two round
// trips. If no live session is stored under id, the transaction is rolled
// back (a third round trip), fn is not called, and found is false with a
// nil error. If fn returns an error, the transaction is rolled back, nothing
// is stored, and Update returns found true and fn's error unchanged. fn is
// called at most once. It implements sessions.Updater.
func (s *Store) Update(ctx context.Context, id string, expiresAt time.Time, fn func(current []byte) ([]byte, error)) (found bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("pgstore: update: %w", err)
	}
	c, err := s.s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("pgstore: update: %w", err)
	}
	// Release puts the connection back only if no transaction is open on it
	// (pgxpool closes it otherwise, which ends the transaction too).
	defer c.Release()

	var cur []byte
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(s.s.lockRowSQL, id, time.Now())
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&cur)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		rollback(ctx, c)
		return false, nil
	}
	if err != nil {
		rollback(ctx, c)
		return false, fmt.Errorf("pgstore: update: %w", err)
	}
	if cur == nil {
		cur = []byte{}
	}

	next, err := fn(cur)
	if err != nil {
		rollback(ctx, c)
		return true, err
	}
	if next == nil {
		next = []byte{} // nil would be sent as NULL
	}

	b = &pgx.Batch{}
	b.Queue(s.s.updateSQL, id, next, ceilMicro(expiresAt))
	b.Queue("COMMIT")
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		rollback(ctx, c)
		return false, fmt.Errorf("pgstore: update: %w", err)
	}
	return true, nil
}

// rollback ends the transaction open on c, if any, even when ctx has ended.
// If it cannot, c is left with its transaction open and Release closes it.
func rollback(ctx context.Context, c *pgxpool.Conn) {
	pc := c.Conn().PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = c.Exec(rctx, "ROLLBACK")
}

// lockKey returns the key of the advisory lock of session id: the first
// eight bytes, big-endian, of SHA-256 over the quoted table name, a zero
// byte and the id. Advisory locks are per database, so the locks of two
// tables of one database, or of two stores on one table, do not mix up.
func (st *state) lockKey(id string) int64 {
	h := sha256.New()
	h.Write([]byte(st.table.Sanitize()))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

// Lock takes the lock of session id: a session-level advisory lock,
//
//	SELECT pg_try_advisory_lock($1)
//
// on a connection taken from the pool (or from [WithLockPool]) and kept for
// as long as the lock is held. While another holder has it, Lock tries again
// after a short backoff (2 ms doubling up to 50 ms), each try one round trip
// on a connection that goes back to the pool in between, until it holds the
// lock, wait has passed, or ctx ends; it then returns an error, wrapping
// ctx's error if ctx ended. A wait of zero or less means one try.
//
// The lock is released by unlock or when ctx ends, whichever comes first:
// pg_advisory_unlock (one round trip), and the connection goes back to the
// pool. unlock is idempotent and safe to call from any goroutine; it waits
// for the release. A release that fails closes the connection instead.
//
// lease does not apply: the server holds the lock for as long as the
// holder's connection lives, and frees it at once when the connection
// closes, so the lock of a process that died (or lost its connection) is
// free as soon as the server sees the connection go. Nothing renews the lock
// and no goroutine runs while it is held. A holder whose connection is lost
// loses the lock without being told. Advisory locks need session pooling:
// behind a pooler in transaction mode (PgBouncer's pool_mode=transaction)
// they do not work. It implements sessions.Locker.
func (s *Store) Lock(ctx context.Context, id string, wait, lease time.Duration) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: lock: %w", err)
	}
	key := s.s.lockKey(id)
	tryCtx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		tryCtx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	delay := minLockPoll
	for {
		c, err := s.s.tryLock(tryCtx, key)
		if c != nil {
			return s.s.holdLock(ctx, c, key), nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pgstore: lock: %w", ctx.Err())
		}
		if tryCtx.Err() != nil || (err == nil && wait <= 0) {
			return nil, fmt.Errorf("pgstore: lock: waited %v: %w", wait, sessions.ErrLocked)
		}
		if err != nil {
			return nil, fmt.Errorf("pgstore: lock: %w", err)
		}
		// Jitter keeps waiters from polling in step.
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-tryCtx.Done():
			t.Stop()
		case <-t.C:
		}
		delay = min(2*delay, maxLockPoll)
	}
}

// tryLock takes a connection and tries the lock on it once. It returns the
// connection if it now holds the lock, and otherwise puts it back (or, after
// an error, closes it, so that a lock the server granted but whose reply
// was lost cannot stay held on a pooled connection).
func (st *state) tryLock(ctx context.Context, key int64) (*pgxpool.Conn, error) {
	c, err := st.lockPool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var got bool
	if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
		discard(ctx, c)
		return nil, err
	}
	if !got {
		c.Release()
		return nil, nil
	}
	return c, nil
}

// discard closes c and gives it back to the pool, which then drops it.
func discard(ctx context.Context, c *pgxpool.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = c.Conn().Close(cctx)
	c.Release()
}

// holdLock returns the unlock function of the lock held on c, and arranges
// for it to run when ctx ends.
func (st *state) holdLock(ctx context.Context, c *pgxpool.Conn, key int64) func() {
	var once sync.Once
	release := func() {
		once.Do(func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			var released bool
			if err := c.QueryRow(uctx, "SELECT pg_advisory_unlock($1)", key).Scan(&released); err != nil || !released {
				// The lock may still be held on c: closing c frees it.
				discard(ctx, c)
				return
			}
			c.Release()
		})
	}
	stop := context.AfterFunc(ctx, release)
	return func() {
		stop()
		release()
	}
}

// LinkUser records that session id belongs to user, by setting the user_id
// column of its row, in one UPDATE (one round trip):
//
//	UPDATE t SET user_id = $2 WHERE id = $1
//
// The link lives as long as the row: expiresAt is not needed, since
// UserSessions skips rows that have expired and the row goes when the
// session is deleted. Linking an id that is not stored does nothing. A
// session belongs to one user at a time; linking it again replaces the
// user. [Store.Save] and [Store.Update] keep the link. It implements
// sessions.UserIndexer.
func (s *Store) LinkUser(ctx context.Context, user, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: link user: %w", err)
	}
	if _, err := s.s.pool.Exec(ctx, s.s.linkSQL, id, user); err != nil {
		return fmt.Errorf("pgstore: link user: %w", err)
	}
	return nil
}

// UnlinkUser removes the link between user and session id, in one UPDATE
// (one round trip):
//
//	UPDATE t SET user_id = NULL WHERE id = $1 AND user_id = $2
//
// A missing link, or a session linked to another user, is left alone and
// is not an error.
func (s *Store) UnlinkUser(ctx context.Context, user, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: unlink user: %w", err)
	}
	if _, err := s.s.pool.Exec(ctx, s.s.unlinkSQL, id, user); err != nil {
		return fmt.Errorf("pgstore: unlink user: %w", err)
	}
	return nil
}

// UserSessions returns the IDs of the live sessions linked to user, in no
// particular order, in one SELECT (one round trip) that uses the index on
// user_id:
//
//	SELECT id FROM t WHERE user_id = $1 AND expires_at > $2
//
// with $2 the application's current time. An unknown user has none: the
// result is then empty and the error nil.
func (s *Store) UserSessions(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: user sessions: %w", err)
	}
	rows, err := s.s.pool.Query(ctx, s.s.userSessionsSQL, user, time.Now())
	if err != nil {
		return nil, fmt.Errorf("pgstore: user sessions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: user sessions: %w", err)
	}
	return ids, nil
}

// Range calls fn for each live session, in no particular order, until fn
// returns false or every session has been seen. It runs one SELECT,
//
//	SELECT id, data, expires_at FROM t WHERE expires_at > $1
//
// and streams its rows: one connection is held while Range runs, outside
// any transaction, and only one row is in memory at a time, so fn may call
// the Store (on other connections). Sessions saved or deleted meanwhile may
// or may not be seen. When fn returns false, Range returns nil once the
// rest of the result has been read off the connection and discarded. data
// belongs to fn. It implements sessions.Iterator.
func (s *Store) Range(ctx context.Context, fn func(id string, data []byte, expiresAt time.Time) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: range: %w", err)
	}
	rows, err := s.s.pool.Query(ctx, s.s.rangeSQL, time.Now())
	if err != nil {
		return fmt.Errorf("pgstore: range: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   string
			data []byte
			exp  time.Time
		)
		if err := rows.Scan(&id, &data, &exp); err != nil {
			return fmt.Errorf("pgstore: range: %w", err)
		}
		if data == nil {
			data = []byte{}
		}
		if !fn(id, data, exp) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: range: %w", err)
	}
	return nil
}
