package mysqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/fastsession/sessions"
)

// cleanupTimeout bounds the statement that releases a lock after the
// holder's context may have ended. If it does not finish in time, the
// connection is closed instead, which has the same effect on the server.
const cleanupTimeout = 5 * time.Second

// Lock polls with a backoff that starts at minLockPoll and doubles up to
// maxLockPoll.
const (
	minLockPoll = 2 * time.Millisecond
	maxLockPoll = 50 * time.Millisecond
)

// maxUpdateAttempts is how many times Update runs its transaction when
// InnoDB picks it as the victim of a deadlock.
const maxUpdateAttempts = 3

// errDeadlock is ER_LOCK_DEADLOCK: InnoDB rolled the transaction back.
const errDeadlock = 1213

// Update calls fn with the data of the live session stored under id and
// stores what fn returns, with expiry expiresAt rounded up to the
// microsecond, in one InnoDB transaction that holds the row lock throughout:
//
//	START TRANSACTION
//	SELECT data FROM t WHERE id = ? AND expires_at > ? FOR UPDATE
//	-- fn runs here; every other Update, Save, Touch and Delete of id waits
//	UPDATE t SET data = ?, expires_at = ? WHERE id = ?
//	COMMIT
//
// That is four round trips (the two statements are prepared once per
// connection). If no live session is stored under id, the transaction is
// rolled back (three round trips), fn is not called, and found is false
// with a nil error. If fn returns an error, the transaction is rolled back,
// nothing is stored, and Update returns found true and fn's error
// unchanged. If InnoDB rolls the transaction back as a deadlock victim,
// Update runs it again, up to three times in all, so fn may be called more
// than once. An id longer than [MaxIDLength] bytes is not stored. It
// implements sessions.Updater.
func (s *Store) Update(ctx context.Context, id string, expiresAt time.Time, fn func(current []byte) ([]byte, error)) (found bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("mysqlstore: update: %w", err)
	}
	if len(id) > MaxIDLength {
		return false, nil
	}
	for attempt := 1; ; attempt++ {
		found, fnErr, err := s.s.update(ctx, id, expiresAt, fn)
		if fnErr {
			return found, err
		}
		if err == nil {
			return found, nil
		}
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == errDeadlock && attempt < maxUpdateAttempts && ctx.Err() == nil {
			continue
		}
		return false, fmt.Errorf("mysqlstore: update: %w", err)
	}
}

// update runs one transaction of Update. fnErr reports that err is fn's.
func (st *state) update(ctx context.Context, id string, expiresAt time.Time, fn func([]byte) ([]byte, error)) (found, fnErr bool, err error) {
	// Prepare both statements before the transaction takes its connection,
	// so that preparing never waits for a second connection of a small pool.
	if err := st.warm(ctx, stmtLockRow, stmtUpdate); err != nil {
		return false, false, err
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return false, false, err
	}
	defer tx.Rollback() // a no-op after Commit

	var cur []byte
	err = st.txScan(ctx, tx, stmtLockRow, []any{id, time.Now().UnixMicro()}, &cur)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	if cur == nil {
		cur = []byte{}
	}
	next, err := fn(cur)
	if err != nil {
		return true, true, err
	}
	if next == nil {
		next = []byte{} // nil would be sent as NULL
	}
	if err := st.txExec(ctx, tx, stmtUpdate, next, ceilMicro(expiresAt), id); err != nil {
		return false, false, err
	}
	if err := tx.Commit(); err != nil {
		return false, false, err
	}
	return true, false, nil
}

// warm prepares the statements ids unless they are prepared already.
func (st *state) warm(ctx context.Context, ids ...int) error {
	st.closeMu.RLock()
	defer st.closeMu.RUnlock()
	for _, i := range ids {
		if _, err := st.prepared(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// txScan runs the prepared query i in tx and scans its one row into dest.
// database/sql prepares the statement on the transaction's connection the
// first time it runs there, and reuses it afterwards.
func (st *state) txScan(ctx context.Context, tx *sql.Tx, i int, args []any, dest ...any) error {
	st.closeMu.RLock()
	defer st.closeMu.RUnlock()
	ps, err := st.prepared(ctx, i)
	if err != nil {
		return err
	}
	if ps == nil {
		return tx.QueryRowContext(ctx, st.stmts[i].query, args...).Scan(dest...)
	}
	ts := tx.StmtContext(ctx, ps)
	defer ts.Close()
	return ts.QueryRowContext(ctx, args...).Scan(dest...)
}

// txExec runs the prepared statement i in tx.
func (st *state) txExec(ctx context.Context, tx *sql.Tx, i int, args ...any) error {
	st.closeMu.RLock()
	defer st.closeMu.RUnlock()
	ps, err := st.prepared(ctx, i)
	if err != nil {
		return err
	}
	if ps == nil {
		_, err = tx.ExecContext(ctx, st.stmts[i].query, args...)
		return err
	}
	ts := tx.StmtContext(ctx, ps)
	defer ts.Close()
	_, err = ts.ExecContext(ctx, args...)
	return err
}

// lockName returns the name of the lock of session id: "fastsession:"
// and the first 20 bytes, in hex, of SHA-256 over the quoted table name, a
// zero byte and the id; 52 characters, within MySQL's limit of 64. Lock
// names are global to the server, so the table name keeps the locks of two
// tables apart. The name holds only letters, digits and a colon, so it can
// be written into a statement as a literal.
func (st *state) lockName(id string) string {
	h := sha256.New()
	h.Write([]byte(st.table))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return "fastsession:" + hex.EncodeToString(h.Sum(nil)[:20])
}

// Lock takes the lock of session id: a named lock of the server,
//
//	SELECT GET_LOCK('fastsession:<hash>', 0)
//
// on a connection taken from the db and kept for as long as the lock is
// held; the name is made from the table name and the id. While another holder
// has it, Lock tries again after a short backoff (2 ms doubling up to
// 50 ms), each try one round trip on a connection that goes back to the db
// in between, until it holds the lock, wait has passed, or ctx ends; it then
// returns an error, wrapping ctx's error if ctx ended. A wait of zero or
// less means one try.
//
// The lock is released by unlock or when ctx ends, whichever comes first:
// RELEASE_LOCK (one round trip), and the connection goes back to the db.
// unlock is idempotent and safe to call from any goroutine; it waits for the
// release. A release that fails closes the connection instead.
//
// lease does not apply: the server holds the lock for as long as the
// holder's connection lives, and frees it when the connection ends, so the
// lock of a process that died (or lost its connection) is free as soon as
// the server sees the connection go. Nothing renews the lock and no
// goroutine runs while it is held. A holder whose connection is lost loses
// the lock without being told. It implements sessions.Locker.
func (s *Store) Lock(ctx context.Context, id string, wait, lease time.Duration) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mysqlstore: lock: %w", err)
	}
	name := s.s.lockName(id)
	tryCtx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		tryCtx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	delay := minLockPoll
	for {
		c, err := s.s.tryLock(tryCtx, name)
		if c != nil {
			return holdLock(ctx, c, name), nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("mysqlstore: lock: %w", ctx.Err())
		}
		if tryCtx.Err() != nil || (err == nil && wait <= 0) {
			return nil, fmt.Errorf("mysqlstore: lock: waited %v: %w", wait, sessions.ErrLocked)
		}
		if err != nil {
			return nil, fmt.Errorf("mysqlstore: lock: %w", err)
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
// an error, closes it, so that a lock the server granted but whose reply was
// lost cannot stay held on a pooled connection).
func (st *state) tryLock(ctx context.Context, name string) (*sql.Conn, error) {
	c, err := st.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got sql.NullInt64
	// No arguments: the text protocol, one round trip.
	if err := c.QueryRowContext(ctx, "SELECT GET_LOCK('"+name+"', 0)").Scan(&got); err != nil {
		discard(c)
		return nil, err
	}
	if !got.Valid {
		discard(c)
		return nil, errors.New("GET_LOCK failed")
	}
	if got.Int64 != 1 {
		c.Close()
		return nil, nil
	}
	return c, nil
}

// discard closes the driver connection under c rather than returning it to
// the db's pool.
func discard(c *sql.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	_ = c.Close()
}

// holdLock returns the unlock function of the lock held on c, and arranges
// for it to run when ctx ends.
func holdLock(ctx context.Context, c *sql.Conn, name string) func() {
	var once sync.Once
	release := func() {
		once.Do(func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			var released sql.NullInt64
			err := c.QueryRowContext(uctx, "SELECT RELEASE_LOCK('"+name+"')").Scan(&released)
			if err != nil || !released.Valid || released.Int64 != 1 {
				// The lock may still be held on c: closing c frees it.
				discard(c)
				return
			}
			c.Close()
		})
	}
	stop := context.AfterFunc(ctx, release)
	return func() {
		stop()
		release()
	}
}

// LinkUser records that session id belongs to user, by setting the user_id
// column of its row, in one prepared UPDATE (one round trip):
//
//	UPDATE t SET user_id = ? WHERE id = ?
//
// The link lives as long as the row: expiresAt is not needed, since
// UserSessions skips rows that have expired and the row goes when the
// session is deleted. Linking an id that is not stored does nothing. A
// session belongs to one user at a time; linking it again replaces the
// user. [Store.Save] and [Store.Update] keep the link. A user longer than
// [MaxUserLength] bytes is an error. It implements sessions.UserIndexer.
func (s *Store) LinkUser(ctx context.Context, user, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: link user: %w", err)
	}
	if len(user) > MaxUserLength {
		return fmt.Errorf("mysqlstore: link user: the user is %d bytes long, the limit is %d", len(user), MaxUserLength)
	}
	if len(id) > MaxIDLength {
		return nil
	}
	if _, err := s.s.exec(ctx, stmtLink, user, id); err != nil {
		return fmt.Errorf("mysqlstore: link user: %w", err)
	}
	return nil
}

// UnlinkUser removes the link between user and session id, in one prepared
// UPDATE (one round trip):
//
//	UPDATE t SET user_id = NULL WHERE id = ? AND user_id = ?
//
// A missing link, or a session linked to another user, is left alone and
// is not an error.
func (s *Store) UnlinkUser(ctx context.Context, user, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: unlink user: %w", err)
	}
	if len(user) > MaxUserLength || len(id) > MaxIDLength {
		return nil
	}
	if _, err := s.s.exec(ctx, stmtUnlink, id, user); err != nil {
		return fmt.Errorf("mysqlstore: unlink user: %w", err)
	}
	return nil
}

// UserSessions returns the IDs of the live sessions linked to user, in no
// particular order, in one prepared SELECT (one round trip) that uses the
// index on user_id:
//
//	SELECT id FROM t WHERE user_id = ? AND expires_at > ?
//
// with the application's current time. An unknown user has none: the
// result is then empty and the error nil.
func (s *Store) UserSessions(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mysqlstore: user sessions: %w", err)
	}
	if len(user) > MaxUserLength {
		return nil, nil
	}
	ids, err := s.s.userSessions(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("mysqlstore: user sessions: %w", err)
	}
	return ids, nil
}

func (st *state) userSessions(ctx context.Context, user string) ([]string, error) {
	st.closeMu.RLock()
	defer st.closeMu.RUnlock()
	ps, err := st.prepared(ctx, stmtUserSessions)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixMicro()
	var rows *sql.Rows
	if ps == nil {
		rows, err = st.db.QueryContext(ctx, st.stmts[stmtUserSessions].query, user, now)
	} else {
		rows, err = ps.QueryContext(ctx, user, now)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, string(id))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// Range calls fn for each live session, in no particular order, until fn
// returns false or every session has been seen. It runs one query (the
// text protocol, one round trip to start it),
//
//	SELECT id, data, expires_at FROM t WHERE expires_at > <now>
//
// and streams its rows: one connection is held while Range runs, outside
// any transaction, and only one row is in memory at a time, so fn may call
// the Store (on other connections of the db). Sessions saved or deleted
// meanwhile may or may not be seen. When fn returns false, Range returns nil
// once the rest of the result has been read off the connection and
// discarded. data belongs to fn. It implements sessions.Iterator.
func (s *Store) Range(ctx context.Context, fn func(id string, data []byte, expiresAt time.Time) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: range: %w", err)
	}
	// The time is an integer written by strconv: safe as a literal, and a
	// query without arguments needs no prepare.
	q := "SELECT id, data, expires_at FROM " + s.s.table + " WHERE expires_at > " + strconv.FormatInt(time.Now().UnixMicro(), 10)
	rows, err := s.s.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("mysqlstore: range: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, data []byte
			exp      int64
		)
		if err := rows.Scan(&id, &data, &exp); err != nil {
			return fmt.Errorf("mysqlstore: range: %w", err)
		}
		if data == nil {
			data = []byte{}
		}
		if !fn(string(id), data, time.UnixMicro(exp)) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysqlstore: range: %w", err)
	}
	return nil
}
