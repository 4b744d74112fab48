// Package mysqlstore is a MySQL and MariaDB session store for
// github.com/fastsession/sessions, built on database/sql with
// github.com/go-sql-driver/mysql.
//
// Each session is one row of an InnoDB table (by default "sessions") with its
// ID, its encoded data, its expiry in Unix microseconds and the user it
// belongs to, if any:
//
//	CREATE TABLE IF NOT EXISTS `sessions` (
//	    id         VARBINARY(64) NOT NULL PRIMARY KEY,
//	    data       MEDIUMBLOB NOT NULL,
//	    expires_at BIGINT NOT NULL,
//	    user_id    VARBINARY(255) NULL,
//	    INDEX expires_at_idx (expires_at),
//	    INDEX user_id_idx (user_id)
//	) ENGINE=InnoDB
//
// The ID and user columns are binary because session IDs and user IDs are
// case-sensitive: under a case-insensitive collation two IDs that differ only
// in letter case would be one. [Store.CreateTable] creates the table;
// [Schema] returns the statement for a migration tool.
//
// Every call of the basic interface is a single statement, run as a
// server-side prepared statement that the Store prepares once per
// connection, so that loading or saving a session takes one round trip: Load
// is one SELECT that skips expired rows, Save one INSERT ... ON DUPLICATE KEY
// UPDATE, Delete one DELETE and Touch one UPDATE. Expired rows are never
// returned; a background goroutine deletes them on an interval (see
// [WithCleanupInterval]) and [Store.Close] stops it.
//
// The Store also implements the optional interfaces of the sessions package:
// [Store.Update] (sessions.Updater) changes a session under an InnoDB row
// lock in a transaction, [Store.Lock] (sessions.Locker) takes a named lock
// with GET_LOCK, [Store.LinkUser], [Store.UnlinkUser] and
// [Store.UserSessions] (sessions.UserIndexer) keep the user in the user_id
// column, and [Store.Range] (sessions.Iterator) walks the live sessions.
//
// Times are compared against the application's clock, the same clock that
// computes the expiry the middleware saves, so the database server's clock
// plays no part.
package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	// The driver registers itself as "mysql" with database/sql; the Store
	// works with any *sql.DB opened with it.
	"github.com/go-sql-driver/mysql"
)

// DefaultTableName is the table a Store uses unless [WithTableName] says
// otherwise.
const DefaultTableName = "sessions"

// DefaultCleanupInterval is how often a Store deletes expired rows unless
// [WithCleanupInterval] says otherwise.
const DefaultCleanupInterval = 5 * time.Minute

// MaxIDLength is the longest session ID, in bytes, that the id column holds.
// Save refuses a longer ID, and the other methods treat one as not stored.
// The middleware's IDs are 43 bytes long.
const MaxIDLength = 64

// MaxUserLength is the longest user ID, in bytes, that the user_id column
// holds. LinkUser refuses a longer one; UnlinkUser and UserSessions treat
// one as linked to nothing.
const MaxUserLength = 255

// maxIdentLen is MySQL's limit on the length of a database or table name.
const maxIdentLen = 64

// Option configures a Store. Pass options to New.
type Option func(*config)

type config struct {
	table           string
	cleanupInterval time.Duration
}

// WithTableName sets the table that holds the sessions. The default is
// "sessions". The name may be qualified with a database, as in
// "app.sessions"; each part must start with a letter or an underscore, hold
// only ASCII letters, digits and underscores, and be at most 64 bytes long.
// The name is quoted with backticks in every statement. New panics on a name
// that does not follow these rules.
func WithTableName(name string) Option {
	return func(c *config) { c.table = name }
}

// WithCleanupInterval sets how often a background goroutine deletes expired
// rows. The default is five minutes. Zero or a negative value turns the
// background sweep off: expired rows are then never returned but stay in the
// table until [Store.Sweep] is called or the ID is saved again.
func WithCleanupInterval(d time.Duration) Option {
	return func(c *config) { c.cleanupInterval = d }
}

// stmt is a statement prepared on first use. database/sql prepares it again
// on each connection that runs it, so every later run is one round trip.
type stmt struct {
	query string
	mu    sync.Mutex
	st    *sql.Stmt
}

const (
	stmtLoad = iota
	stmtSave
	stmtDelete
	stmtTouch
	stmtSweep
	stmtLockRow
	stmtUpdate
	stmtLink
	stmtUnlink
	stmtUserSessions
	stmtCount
)

// state is everything the sweep goroutine needs. It is kept apart from Store
// so that a Store nobody references any more can be collected, which stops
// the sweep.
type state struct {
	db        *sql.DB
	table     string // quoted
	createSQL string
	// database and name are the table name's parts, unquoted; database is
	// nil when the name has none (the connection's database).
	database any
	name     string

	// closeMu is held for reading while a statement runs, and for writing
	// while Close releases the prepared statements.
	closeMu sync.RWMutex
	closed  bool
	stmts   [stmtCount]stmt

	cancel context.CancelFunc // stops the sweep
	done   chan struct{}      // closed when the sweep has exited
	once   sync.Once
}

// Store is a MySQL or MariaDB session store. Create it with New; the zero
// value is not usable. Its methods are safe for concurrent use. It satisfies
// the sessions.Store, sessions.Toucher, sessions.Updater, sessions.Locker,
// sessions.UserIndexer and sessions.Iterator interfaces.
type Store struct {
	s *state
}

// New returns a Store that keeps sessions in a table reached through db,
// which must have been opened with the "mysql" driver. The db stays the
// caller's: the Store never closes it. New does not contact the server;
// create the table with [Store.CreateTable] or with the statement of
// [Schema].
//
// Unless [WithCleanupInterval] turns it off, a background goroutine deletes
// expired rows on the interval; [Store.Close] stops it, and so does the
// garbage collector once the Store is no longer referenced.
//
// New panics if db is nil or if the table name is invalid (see
// [WithTableName]).
func New(db *sql.DB, opts ...Option) *Store {
	if db == nil {
		panic("mysqlstore: New: the db is nil")
	}
	cfg := config{table: DefaultTableName, cleanupInterval: DefaultCleanupInterval}
	for _, o := range opts {
		o(&cfg)
	}
	t, err := quoteTableName(cfg.table)
	if err != nil {
		panic("mysqlstore: New: " + err.Error())
	}
	st := &state{
		db:        db,
		table:     t,
		createSQL: schema(t),
		name:      cfg.table,
		done:      make(chan struct{}),
	}
	if db, name, ok := strings.Cut(cfg.table, "."); ok {
		st.database, st.name = db, name
	}
	st.stmts[stmtLoad].query = "SELECT data, expires_at FROM " + t + " WHERE id = ? AND expires_at > ?"
	// Save leaves user_id alone: only LinkUser and UnlinkUser set it.
	st.stmts[stmtSave].query = "INSERT INTO " + t + " (id, data, expires_at) VALUES (?, ?, ?)" +
		" ON DUPLICATE KEY UPDATE data = VALUES(data), expires_at = VALUES(expires_at)"
	st.stmts[stmtDelete].query = "DELETE FROM " + t + " WHERE id = ?"
	st.stmts[stmtTouch].query = "UPDATE " + t + " SET expires_at = ? WHERE id = ? AND expires_at > ?"
	st.stmts[stmtSweep].query = "DELETE FROM " + t + " WHERE expires_at <= ?"
	st.stmts[stmtLockRow].query = "SELECT data FROM " + t + " WHERE id = ? AND expires_at > ? FOR UPDATE"
	st.stmts[stmtUpdate].query = "UPDATE " + t + " SET data = ?, expires_at = ? WHERE id = ?"
	st.stmts[stmtLink].query = "UPDATE " + t + " SET user_id = ? WHERE id = ?"
	st.stmts[stmtUnlink].query = "UPDATE " + t + " SET user_id = NULL WHERE id = ? AND user_id = ?"
	st.stmts[stmtUserSessions].query = "SELECT id FROM " + t + " WHERE user_id = ? AND expires_at > ?"

	s := &Store{s: st}
	if cfg.cleanupInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		st.cancel = cancel
		go st.sweepLoop(ctx, cfg.cleanupInterval)
		// Close must not block the cleanup goroutine of the runtime.
		runtime.AddCleanup(s, func(st *state) { go st.close() }, st)
	} else {
		st.cancel = func() {}
		close(st.done)
	}
	return s
}

// quoteTableName checks a table name, optionally qualified with a database,
// and returns it quoted with backticks.
func quoteTableName(name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("table name %q: want \"table\" or \"database.table\"", name)
	}
	for i, p := range parts {
		if err := checkIdent(p); err != nil {
			return "", fmt.Errorf("table name %q: %v", name, err)
		}
		// checkIdent allows no backtick, so quoting needs no escaping.
		parts[i] = "`" + p + "`"
	}
	return strings.Join(parts, "."), nil
}

func checkIdent(p string) error {
	if p == "" {
		return errors.New("empty name part")
	}
	if len(p) > maxIdentLen {
		return fmt.Errorf("%q is %d bytes long, the limit is %d", p, len(p), maxIdentLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return fmt.Errorf("%q: only ASCII letters, digits and underscores are allowed, and no leading digit", p)
		}
	}
	return nil
}

func schema(quoted string) string {
	return "CREATE TABLE IF NOT EXISTS " + quoted + " (\n" +
		"    id         VARBINARY(64) NOT NULL PRIMARY KEY,\n" +
		"    data       MEDIUMBLOB NOT NULL,\n" +
		"    expires_at BIGINT NOT NULL,\n" +
		"    user_id    VARBINARY(255) NULL,\n" +
		"    INDEX expires_at_idx (expires_at),\n" +
		"    INDEX user_id_idx (user_id)\n" +
		") ENGINE=InnoDB"
}

// Schema returns the SQL statement, without a trailing semicolon, that
// creates the session table named table (as accepted by [WithTableName])
// with its indexes on the expiry and on the user. It is the statement [Store.CreateTable]
// runs, for use in a migration tool. expires_at holds Unix microseconds.
// Schema panics if the table name is invalid.
func Schema(table string) string {
	t, err := quoteTableName(table)
	if err != nil {
		panic("mysqlstore: Schema: " + err.Error())
	}
	return schema(t)
}

// CreateTable creates the session table with its indexes unless it
// already exists, and adds the user_id column and its index to a table made
// before sessions had users; calling it again, or from several processes at
// once, is safe.
func (s *Store) CreateTable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: create table: %w", err)
	}
	st := s.s
	if _, err := st.db.ExecContext(ctx, st.createSQL); err != nil {
		return fmt.Errorf("mysqlstore: create table: %w", err)
	}
	// MySQL has no ADD COLUMN IF NOT EXISTS: look, then add.
	var n int
	err := st.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.COLUMNS"+
		" WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = 'user_id'",
		st.database, st.name).Scan(&n)
	if err != nil {
		return fmt.Errorf("mysqlstore: create table: looking for the user_id column: %w", err)
	}
	if n == 0 {
		_, err := st.db.ExecContext(ctx, "ALTER TABLE "+st.table+" ADD COLUMN user_id VARBINARY(255) NULL, ADD INDEX user_id_idx (user_id)")
		var merr *mysql.MySQLError
		// 1060 and 1061: another process added the column or the index first.
		if err != nil && !(errors.As(err, &merr) && (merr.Number == 1060 || merr.Number == 1061)) {
			return fmt.Errorf("mysqlstore: create table: adding the user_id column: %w", err)
		}
	}
	return nil
}

// prepared returns the prepared statement i, preparing it on first use. The
// caller holds closeMu for reading. After Close it returns nil, and the
// caller runs the query on the db unprepared.
func (st *state) prepared(ctx context.Context, i int) (*sql.Stmt, error) {
	if st.closed {
		return nil, nil
	}
	p := &st.stmts[i]
	p.mu.Lock()
	ps := p.st
	p.mu.Unlock()
	if ps != nil {
		return ps, nil
	}
	// Prepare without holding the lock, so that callers waiting for the
	// same statement keep honouring their own contexts.
	ps, err := st.db.PrepareContext(ctx, p.query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st != nil {
		ps.Close() // another caller was first
		return p.st, nil
	}
	p.st = ps
	return ps, nil
}

func (st *state) exec(ctx context.Context, i int, args ...any) (sql.Result, error) {
	st.closeMu.RLock()
	defer st.closeMu.RUnlock()
	ps, err := st.prepared(ctx, i)
	if err != nil {
		return nil, err
	}
	if ps == nil {
		return st.db.ExecContext(ctx, st.stmts[i].query, args...)
	}
	return ps.ExecContext(ctx, args...)
}

// ceilMicro returns t in Unix microseconds, rounded up.
func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro()
	if time.UnixMicro(us).Before(t) {
		us++
	}
	return us
}

// Load returns the data stored under id and its expiry, or found false when
// there is no row for id or its expiry is not after the current time. The
// returned slice belongs to the caller.
func (s *Store) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("mysqlstore: load: %w", err)
	}
	if len(id) > MaxIDLength {
		return nil, time.Time{}, false, nil
	}
	data, exp, err := s.s.load(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("mysqlstore: load: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, time.UnixMicro(exp), true, nil
}

func (st *state) load(ctx context.Context, id string) (data []byte, exp int64, err error) {
	st.closeMu.RLock()
	defer st.closeMu.RUnlock()
	ps, err := st.prepared(ctx, stmtLoad)
	if err != nil {
		return nil, 0, err
	}
	// The application's clock, in whole microseconds rounded down: a stored
	// expiry, a whole microsecond, is after that only if it is after now.
	now := time.Now().UnixMicro()
	var row *sql.Row
	if ps == nil {
		row = st.db.QueryRowContext(ctx, st.stmts[stmtLoad].query, id, now)
	} else {
		row = ps.QueryRowContext(ctx, id, now)
	}
	// Scanning into a *[]byte copies the bytes out of the driver's buffer.
	err = row.Scan(&data, &exp)
	return data, exp, err
}

// Save stores data under id until expiresAt, rounded up to the microsecond,
// replacing the data and expiry of any row stored under id, in a single
// INSERT ... ON DUPLICATE KEY UPDATE. The row's user_id, set by
// [Store.LinkUser], is kept. An id longer than [MaxIDLength] bytes is an
// error.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: save: %w", err)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("mysqlstore: save: the id is %d bytes long, the limit is %d", len(id), MaxIDLength)
	}
	if data == nil {
		data = []byte{} // nil would be sent as NULL
	}
	if _, err := s.s.exec(ctx, stmtSave, id, data, ceilMicro(expiresAt)); err != nil {
		return fmt.Errorf("mysqlstore: save: %w", err)
	}
	return nil
}

// Delete removes the row stored under id, if any.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: delete: %w", err)
	}
	if len(id) > MaxIDLength {
		return nil
	}
	if _, err := s.s.exec(ctx, stmtDelete, id); err != nil {
		return fmt.Errorf("mysqlstore: delete: %w", err)
	}
	return nil
}

// Touch sets the expiry of the live session stored under id to expiresAt,
// rounded up to the microsecond, without rewriting its data, in a single
// UPDATE. A missing or expired id is left alone.
func (s *Store) Touch(ctx context.Context, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: touch: %w", err)
	}
	if len(id) > MaxIDLength {
		return nil
	}
	if _, err := s.s.exec(ctx, stmtTouch, ceilMicro(expiresAt), id, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("mysqlstore: touch: %w", err)
	}
	return nil
}

// Sweep deletes every expired row now, in a single DELETE, and returns how
// many it deleted. The background sweep calls it on its interval; an app
// that turns the background sweep off may call it from its own scheduler.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	return s.s.sweep(ctx)
}

func (st *state) sweep(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("mysqlstore: sweep: %w", err)
	}
	res, err := st.exec(ctx, stmtSweep, time.Now().UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("mysqlstore: sweep: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mysqlstore: sweep: %w", err)
	}
	return n, nil
}

func (st *state) sweepLoop(ctx context.Context, every time.Duration) {
	defer close(st.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A failed sweep is retried on the next tick; expired rows are
			// never returned meanwhile.
			_, _ = st.sweep(ctx)
		}
	}
}

func (st *state) close() {
	st.once.Do(func() {
		st.cancel()
		<-st.done
		st.closeMu.Lock()
		defer st.closeMu.Unlock()
		st.closed = true
		for i := range st.stmts {
			p := &st.stmts[i]
			p.mu.Lock()
			if p.st != nil {
				p.st.Close()
				p.st = nil
			}
			p.mu.Unlock()
		}
	})
	<-st.done
}

// Close stops the background sweep, cancelling a sweep in progress, waits
// for it to exit, and, once the calls in progress have returned, releases
// the Store's prepared statements. It does not
// close the db, and the store keeps working afterwards, without the sweep and
// with unprepared statements. Close is idempotent and always returns nil.
func (s *Store) Close() error {
	s.s.close()
	return nil
}
