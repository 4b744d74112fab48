// Package sqlitestore is a session store for github.com/fastsession/sessions
// that keeps sessions in an SQLite database file, through the pure-Go driver
// modernc.org/sqlite (no cgo).
//
// It needs no server: sessions survive a restart of the process, which makes
// it a good fit for an app that runs on a single machine. Several processes
// on the same machine may share the file; machines that share nothing but a
// network file system may not (SQLite's WAL mode needs shared memory).
//
// Each session is one row of a table (by default "sessions"):
//
//	CREATE TABLE IF NOT EXISTS "sessions" (
//		id         TEXT PRIMARY KEY,
//		data       BLOB NOT NULL,
//		expires_at INTEGER NOT NULL, -- Unix microseconds, rounded up
//		user_id    TEXT              -- NULL unless LinkUser set it
//	);
//	CREATE INDEX IF NOT EXISTS "sessions_expires_at_idx" ON "sessions" (expires_at);
//	CREATE INDEX IF NOT EXISTS "sessions_user_id_idx" ON "sessions" (user_id) WHERE user_id IS NOT NULL;
//
// [Store.CreateTable] creates them (and adds the user_id column to a table
// made by an earlier version); [Schema] returns the statements for a
// migration tool.
//
// Loading, saving, deleting and touching a session are one SQL statement
// each. Load compares expires_at with the application's clock, so an expired
// row is never returned; a background goroutine deletes expired rows every
// few minutes, and Close stops it.
//
// Besides sessions.Store, a Store implements these optional interfaces of
// the sessions package:
//
//   - sessions.Toucher: Touch is one UPDATE of expires_at.
//   - sessions.Updater: Update is one write transaction (BEGIN IMMEDIATE,
//     SELECT, UPDATE, COMMIT), so the read already holds SQLite's write lock
//     and no other write to the file can come between the read and the write.
//   - sessions.Locker: Lock is an in-process lock per session ID. It
//     serialises the requests of this process only: processes that share the
//     file do not see each other's locks, and the lease does not apply.
//   - sessions.UserIndexer: the user of a session is its row's user_id
//     column; LinkUser and UnlinkUser are one UPDATE, UserSessions one
//     SELECT through the user_id index.
//   - sessions.Iterator: Range is one SELECT of the live rows, streamed.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DefaultTableName is the table WithTableName leaves in place.
const DefaultTableName = "sessions"

// DefaultCleanupInterval is how often expired rows are deleted unless
// WithCleanupInterval says otherwise.
const DefaultCleanupInterval = 5 * time.Minute

// busyTimeout is how long a connection that Open makes waits for a lock
// held by another connection (another process, or a reader that blocks a
// checkpoint) before it reports SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// sweepBatch is the most rows one statement of a sweep deletes, so that a
// large backlog of expired rows never holds the write lock for long.
const sweepBatch = 1000

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Option configures a Store. Pass options to Open or New.
type Option func(*config)

type config struct {
	table           string
	cleanupInterval time.Duration
}

// WithTableName sets the table that holds the sessions. The default is
// "sessions" (DefaultTableName). The name must be an SQL identifier of at
// most 63 ASCII letters, digits and underscores, not starting with a digit;
// anything else panics. The indexes are named after the table, with the
// suffixes "_expires_at_idx" and "_user_id_idx".
func WithTableName(name string) Option {
	if !identifier.MatchString(name) {
		panic(fmt.Sprintf("sqlitestore: WithTableName(%q): the name must be 1 to 63 ASCII letters, digits and underscores, not starting with a digit", name))
	}
	return func(c *config) { c.table = name }
}

// WithCleanupInterval sets how often a background goroutine deletes expired
// rows. The default is five minutes (DefaultCleanupInterval). Zero or a
// negative value turns the background sweep off: expired rows are then never
// returned, but stay in the table until Sweep is called or the ID is saved
// again.
func WithCleanupInterval(d time.Duration) Option {
	return func(c *config) { c.cleanupInterval = d }
}

// Store is a session store backed by an SQLite table. Create it with Open
// or New; the zero value is not usable. Its methods are safe for concurrent
// use. It satisfies the sessions.Store interface and the optional
// sessions.Toucher, sessions.Updater, sessions.Locker, sessions.UserIndexer
// and sessions.Iterator interfaces.
type Store struct {
	r, w  *sql.DB // reads and writes; the same pool unless Open made them
	owned bool    // Close closes r and w

	table                                     string
	schema                                    []string // CREATE TABLE, the two indexes
	qHasUserID, qAddUserID                    string
	qLoad, qSave, qDelete, qTouch, qSweep     string
	qUpdateGet, qUpdateSet                    string
	qLink, qUnlink, qUserSessions, qRangeLive string

	locks lockTable

	sweepInterval time.Duration
	stop          context.CancelFunc
	done          chan struct{}
	closeOnce     sync.Once
	closeErr      error
}

// Open opens the SQLite database file at path, creating it if needed, and
// returns a Store that keeps its sessions there. It creates the table and
// its index if they do not exist yet.
//
// path is a file name, or a "file:" URI (for example to pass a vfs
// parameter). A plain file name must not contain '?'. In-memory databases
// are refused: use the memory store for that.
//
// The file is switched to WAL mode (journal_mode(WAL)), which lets readers
// run alongside the writer and survives a crash of the process; commits use
// synchronous(NORMAL), which in WAL mode keeps the database consistent and
// may lose only the last commits on a power failure. Every connection runs
// with busy_timeout(5000): it waits up to five seconds for a lock held by
// another process before it reports "database is locked".
//
// Open keeps two connection pools on the file: a single connection for
// writes (Save, Delete, Touch, the sweep), so that the process's own writers
// queue in the pool, where a cancelled context ends the wait, instead of
// polling SQLite's lock; and read-only connections for Load, as many as
// GOMAXPROCS and at least four, which WAL lets run in parallel with each
// other and with the writer.
//
// The Store owns the database: Close stops the sweep and closes it.
func Open(path string, opts ...Option) (*Store, error) {
	wdsn, err := dsn(path, "journal_mode(WAL)", "synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	ctx := context.Background()
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open %q: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open %q: the journal mode is %q, not WAL: the path must name a database file", path, mode)
	}

	rdsn, err := dsn(path, "query_only(1)")
	if err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", rdsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)

	s := newStore(r, w, true, opts)
	if err := s.CreateTable(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.startSweep()
	return s, nil
}

// dsn builds the modernc.org/sqlite data source name for path with
// busy_timeout and the given pragmas.
func dsn(path string, pragmas ...string) (string, error) {
	if path == "" {
		return "", errors.New("sqlitestore: open: the path is empty; name a database file")
	}
	sep := "?"
	if strings.HasPrefix(path, "file:") {
		if strings.Contains(path, "?") {
			sep = "&"
		}
	} else if strings.Contains(path, "?") {
		return "", fmt.Errorf("sqlitestore: open %q: a file name may not contain '?'; pass a file: URI with the character escaped", path)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return path + sep + q.Encode(), nil
}

// New returns a Store that keeps its sessions in db, an SQLite database
// opened by the caller, typically with the "sqlite" driver of
// modernc.org/sqlite that this package registers. New does not
// touch the database: call CreateTable once (or create the table yourself,
// see the package documentation) before the first request.
//
// The caller keeps ownership of db: Close stops the background sweep but
// does not close db. Open the database with the DSN parameters
// "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" (or similar):
// without a busy timeout, concurrent writes fail with "database is locked".
// With a pool of several connections, concurrent writers wait inside SQLite,
// up to the busy timeout, rather than in the pool.
func New(db *sql.DB, opts ...Option) *Store {
	s := newStore(db, db, false, opts)
	s.startSweep()
	return s
}

func newStore(r, w *sql.DB, owned bool, opts []Option) *Store {
	cfg := config{table: DefaultTableName, cleanupInterval: DefaultCleanupInterval}
	for _, o := range opts {
		o(&cfg)
	}
	t := quote(cfg.table)
	s := &Store{
		r:          r,
		w:          w,
		owned:      owned,
		table:      cfg.table,
		schema:     schemaStatements(cfg.table),
		qHasUserID: "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = 'user_id'",
		qAddUserID: "ALTER TABLE " + t + " ADD COLUMN user_id TEXT",
		qLoad:      "SELECT data, expires_at FROM " + t + " WHERE id = ? AND expires_at > ?",
		// The upsert leaves user_id alone: a new row has none, and a
		// replaced row keeps the link LinkUser made.
		qSave: "INSERT INTO " + t + " (id, data, expires_at) VALUES (?, ?, ?)" +
			" ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
		qDelete: "DELETE FROM " + t + " WHERE id = ?",
		qTouch:  "UPDATE " + t + " SET expires_at = ? WHERE id = ? AND expires_at > ?",
		qSweep: fmt.Sprintf("DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE expires_at <= ? LIMIT %d)",
			t, t, sweepBatch),
		qUpdateGet:    "SELECT data FROM " + t + " WHERE id = ? AND expires_at > ?",
		qUpdateSet:    "UPDATE " + t + " SET data = ?, expires_at = ? WHERE id = ?",
		qLink:         "UPDATE " + t + " SET user_id = ? WHERE id = ?",
		qUnlink:       "UPDATE " + t + " SET user_id = NULL WHERE id = ? AND user_id = ?",
		qUserSessions: "SELECT id FROM " + t + " WHERE user_id = ? AND expires_at > ?",
		qRangeLive:    "SELECT id, data, expires_at FROM " + t + " WHERE expires_at > ?",
		locks:         lockTable{m: map[string]*lockEntry{}},
		sweepInterval: cfg.cleanupInterval,
	}
	return s
}

func quote(name string) string { return `"` + name + `"` }

// schemaStatements returns CREATE TABLE and the two CREATE INDEX statements
// of table, which WithTableName has checked.
func schemaStatements(table string) []string {
	t := quote(table)
	return []string{
		"CREATE TABLE IF NOT EXISTS " + t + " (\n" +
			"\tid         TEXT PRIMARY KEY,\n" +
			"\tdata       BLOB NOT NULL,\n" +
			"\texpires_at INTEGER NOT NULL,\n" +
			"\tuser_id    TEXT\n" +
			")",
		"CREATE INDEX IF NOT EXISTS " + quote(table+"_expires_at_idx") + " ON " + t + " (expires_at)",
		"CREATE INDEX IF NOT EXISTS " + quote(table+"_user_id_idx") + " ON " + t + " (user_id) WHERE user_id IS NOT NULL",
	}
}

// Schema returns the SQL statements that create the session table named
// table (as accepted by WithTableName) and its two indexes, on expires_at
// and on user_id (partial: only rows linked to a user), each ending with a
// semicolon and a newline, for use in a migration tool. They are what
// CreateTable runs on a new database. A table made by an earlier version of
// this package lacks user_id: CreateTable adds it, and so does
//
//	ALTER TABLE "sessions" ADD COLUMN user_id TEXT;
//
// followed by the CREATE INDEX statements. Schema panics if the table name
// is invalid.
func Schema(table string) string {
	if !identifier.MatchString(table) {
		panic(fmt.Sprintf("sqlitestore: Schema(%q): the name must be 1 to 63 ASCII letters, digits and underscores, not starting with a digit", table))
	}
	var b strings.Builder
	for _, q := range schemaStatements(table) {
		b.WriteString(q)
		b.WriteString(";\n")
	}
	return b.String()
}

// CreateTable creates the sessions table and its indexes on expires_at and
// user_id if they do not exist, and adds the user_id column to a table that
// lacks it (one made by an earlier version of this package), leaving its
// rows as they are. It is idempotent, and safe to run from several
// processes at once. Open calls it; a Store made with New needs it called
// once, or the statements of Schema run by other means.
func (s *Store) CreateTable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitestore: create table: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, s.schema[0]); err != nil {
		return fmt.Errorf("sqlitestore: create table %s: %w", s.table, err)
	}
	if err := s.addUserID(ctx); err != nil {
		return err
	}
	for _, q := range s.schema[1:] {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqlitestore: create index on %s: %w", s.table, err)
		}
	}
	return nil
}

// addUserID adds the user_id column unless the table has it. SQLite has no
// ADD COLUMN IF NOT EXISTS: when another process adds the column between the
// check and the ALTER, the ALTER fails and a second check sees the column.
func (s *Store) addUserID(ctx context.Context) error {
	has := func() (bool, error) {
		var n int
		err := s.w.QueryRowContext(ctx, s.qHasUserID, s.table).Scan(&n)
		return n > 0, err
	}
	ok, err := has()
	if err != nil {
		return fmt.Errorf("sqlitestore: create table %s: read its columns: %w", s.table, err)
	}
	if ok {
		return nil
	}
	if _, errAlter := s.w.ExecContext(ctx, s.qAddUserID); errAlter != nil {
		if ok, err := has(); err != nil || !ok {
			return fmt.Errorf("sqlitestore: create table %s: add column user_id: %w", s.table, errAlter)
		}
	}
	return nil
}

// micros returns t in Unix microseconds, rounded up.
func micros(t time.Time) int64 {
	us := t.UnixMicro() // rounded down, before the epoch too
	if time.UnixMicro(us).Before(t) {
		us++
	}
	return us
}

// Load returns the data stored under id and its expiry, or found false when
// there is no row for id or its expires_at is not after the application's
// current time (the row may still be in the table until the next sweep). The
// returned slice is a fresh copy.
func (s *Store) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("sqlitestore: load: %w", err)
	}
	var data []byte
	var exp int64
	err := s.r.QueryRowContext(ctx, s.qLoad, id, time.Now().UnixMicro()).Scan(&data, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("sqlitestore: load: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, time.UnixMicro(exp), true, nil
}

// Save stores data under id until expiresAt (kept in microseconds, rounded
// up), replacing any row for id, in one INSERT ... ON CONFLICT statement.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitestore: save: %w", err)
	}
	if data == nil {
		data = []byte{} // the driver binds a nil slice as NULL
	}
	if _, err := s.w.ExecContext(ctx, s.qSave, id, data, micros(expiresAt)); err != nil {
		return fmt.Errorf("sqlitestore: save: %w", err)
	}
	return nil
}

// Delete removes the row for id, if any.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitestore: delete: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, s.qDelete, id); err != nil {
		return fmt.Errorf("sqlitestore: delete: %w", err)
	}
	return nil
}

// Touch sets the expiry of the live session stored under id to expiresAt
// (microseconds, rounded up) without rewriting its data, in one UPDATE. A
// missing or expired row is left alone.
func (s *Store) Touch(ctx context.Context, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitestore: touch: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, s.qTouch, micros(expiresAt), id, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("sqlitestore: touch: %w", err)
	}
	return nil
}

// Sweep deletes every expired row now, in batches of at most 1000 rows per
// statement, and returns how many it deleted. The background sweep calls it
// on its interval; an app that turns the background sweep off may call it
// from its own scheduler.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("sqlitestore: sweep: %w", err)
		}
		res, err := s.w.ExecContext(ctx, s.qSweep, time.Now().UnixMicro())
		if err != nil {
			return total, fmt.Errorf("sqlitestore: sweep: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sqlitestore: sweep: %w", err)
		}
		total += n
		if n < sweepBatch {
			return total, nil
		}
	}
}

func (s *Store) startSweep() {
	if s.sweepInterval <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done = make(chan struct{})
	go s.sweepLoop(ctx, s.sweepInterval)
}

func (s *Store) sweepLoop(ctx context.Context, every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// An error (a locked or closed database) is not reported: the
			// next tick tries again, and Load never returns expired rows.
			_, _ = s.Sweep(ctx)
		}
	}
}

// Close stops the background sweep, interrupting a sweep in progress, and
// waits for it to exit. If the Store was made by Open, Close then closes the
// database and returns the error of doing so; a Store made by New keeps
// working after Close, without the sweep, and its database stays open.
// Close is idempotent: later calls return the result of the first.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil { // the sweep was started
			s.stop()
			<-s.done
		}
		if s.owned {
			errR := s.r.Close()
			errW := s.w.Close()
			if err := errors.Join(errR, errW); err != nil {
				s.closeErr = fmt.Errorf("sqlitestore: close: %w", err)
			}
		}
	})
	return s.closeErr
}
