// Package pgstore is a PostgreSQL session store for
// github.com/fastsession/sessions, built on github.com/jackc/pgx/v5.
//
// Each session is one row of a table (by default "sessions") with its ID, its
// encoded data, its expiry and the user it belongs to, if any:
//
//	CREATE TABLE IF NOT EXISTS "sessions" (
//	    id         TEXT PRIMARY KEY,
//	    data       BYTEA NOT NULL,
//	    expires_at TIMESTAMPTZ NOT NULL,
//	    user_id    TEXT
//	);
//	CREATE INDEX IF NOT EXISTS "sessions_expires_at_idx" ON "sessions" (expires_at);
//	CREATE INDEX IF NOT EXISTS "sessions_user_id_idx" ON "sessions" (user_id) WHERE user_id IS NOT NULL;
//
// [Store.CreateTable] creates them; [Schema] returns the statements for a
// migration tool. Load is one SELECT that skips expired rows, Save one upsert,
// Delete one DELETE and Touch one UPDATE, each one round trip.
// Expired rows are never returned; a background goroutine deletes them on an
// interval (see [WithCleanupInterval]) and [Store.Close] stops it.
//
// The Store also implements the optional interfaces of the sessions package:
// [Store.Update] (sessions.Updater) changes a session under a row lock in a
// transaction, [Store.Lock] (sessions.Locker) takes a session-level advisory
// lock, [Store.LinkUser], [Store.UnlinkUser] and [Store.UserSessions]
// (sessions.UserIndexer) keep the user in the user_id column, and
// [Store.Range] (sessions.Iterator) walks the live sessions.
//
// Times are compared against the application's clock, the same clock that
// computes the expiry the middleware saves, so the database server's clock
// plays no part.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultTableName is the table a Store uses unless [WithTableName] says
// otherwise.
const DefaultTableName = "sessions"

// DefaultCleanupInterval is how often a Store deletes expired rows unless
// [WithCleanupInterval] says otherwise.
const DefaultCleanupInterval = 5 * time.Minute

// maxIdentLen is PostgreSQL's limit on the length of an identifier in bytes
// (NAMEDATALEN - 1); longer names are silently truncated by the server.
const maxIdentLen = 63

// Option configures a Store. Pass options to New.
type Option func(*config)

type config struct {
	table           string
	cleanupInterval time.Duration
	lockPool        *pgxpool.Pool
}

// WithTableName sets the table that holds the sessions. The default is
// "sessions". The name may be qualified with a schema, as in "app.sessions";
// each part must start with a letter or an underscore, hold only ASCII
// letters, digits and underscores, and be at most 63 bytes long. The name is
// quoted in every statement, so its letter case is kept as given. New panics
// on a name that does not follow these rules.
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

// WithLockPool sets the pool from which [Store.Lock] takes the connection
// that holds a session's lock; by default it is the pool given to New. A
// held lock keeps its connection for as long as the request runs, and the
// request needs another connection from the pool to load and save its
// session; with locking on, either give locks a pool of their own or make
// the pool's MaxConns larger than twice the number of requests that may
// hold a lock at once. The pool stays the caller's: the Store never closes
// it. It must reach the same database as the main pool.
func WithLockPool(pool *pgxpool.Pool) Option {
	return func(c *config) { c.lockPool = pool }
}

// state is everything the sweep goroutine needs. It is kept apart from Store
// so that a Store nobody references any more can be collected, which stops
// the sweep.
type state struct {
	pool     *pgxpool.Pool
	lockPool *pgxpool.Pool

	table     pgx.Identifier
	createSQL []string
	loadSQL   string
	saveSQL   string
	deleteSQL string
	touchSQL  string
	sweepSQL  string

	lockRowSQL      string // Update: the locking read
	updateSQL       string // Update: the write
	linkSQL         string
	unlinkSQL       string
	userSessionsSQL string
	rangeSQL        string

	cancel context.CancelFunc // stops the sweep
	done   chan struct{}      // closed when the sweep has exited
	once   sync.Once
}

// Store is a PostgreSQL session store. Create it with New; the zero value is
// not usable. Its methods are safe for concurrent use. It satisfies the
// sessions.Store, sessions.Toucher, sessions.Updater, sessions.Locker,
// sessions.UserIndexer and sessions.Iterator interfaces.
type Store struct {
	s *state
}

// New returns a Store that keeps sessions in a table reached through pool.
// The pool stays the caller's: the Store never closes it. New does not
// contact the server; create the table with [Store.CreateTable] or with the
// statements of [Schema].
//
// Unless [WithCleanupInterval] turns it off, a background goroutine deletes
// expired rows on the interval; [Store.Close] stops it, and so does the
// garbage collector once the Store is no longer referenced.
//
// New panics if pool is nil or if the table name is invalid (see
// [WithTableName]). A nil [WithLockPool] means the pool given here.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	if pool == nil {
		panic("pgstore: New: the pool is nil")
	}
	cfg := config{table: DefaultTableName, cleanupInterval: DefaultCleanupInterval}
	for _, o := range opts {
		o(&cfg)
	}
	ident, err := parseTableName(cfg.table)
	if err != nil {
		panic("pgstore: New: " + err.Error())
	}
	t := ident.Sanitize()
	if cfg.lockPool == nil {
		cfg.lockPool = pool
	}
	st := &state{
		pool:      pool,
		lockPool:  cfg.lockPool,
		table:     ident,
		createSQL: schemaStatements(ident),
		loadSQL:   "SELECT data, expires_at FROM " + t + " WHERE id = $1 AND expires_at > $2",
		// Save leaves user_id alone: only LinkUser and UnlinkUser set it.
		saveSQL: "INSERT INTO " + t + " (id, data, expires_at) VALUES ($1, $2, $3)" +
			" ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at",
		deleteSQL: "DELETE FROM " + t + " WHERE id = $1",
		touchSQL:  "UPDATE " + t + " SET expires_at = $2 WHERE id = $1 AND expires_at > $3",
		sweepSQL:  "DELETE FROM " + t + " WHERE expires_at <= $1",

		lockRowSQL:      "SELECT data FROM " + t + " WHERE id = $1 AND expires_at > $2 FOR UPDATE",
		updateSQL:       "UPDATE " + t + " SET data = $2, expires_at = $3 WHERE id = $1",
		linkSQL:         "UPDATE " + t + " SET user_id = $2 WHERE id = $1",
		unlinkSQL:       "UPDATE " + t + " SET user_id = NULL WHERE id = $1 AND user_id = $2",
		userSessionsSQL: "SELECT id FROM " + t + " WHERE user_id = $1 AND expires_at > $2",
		rangeSQL:        "SELECT id, data, expires_at FROM " + t + " WHERE expires_at > $1",

		done: make(chan struct{}),
	}
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

// parseTableName checks a table name, optionally schema-qualified, and splits
// it into the parts of an identifier.
func parseTableName(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("table name %q: want \"table\" or \"schema.table\"", name)
	}
	for _, p := range parts {
		if err := checkIdent(p); err != nil {
			return nil, fmt.Errorf("table name %q: %v", name, err)
		}
	}
	return pgx.Identifier(parts), nil
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

// indexName returns the name of the index of the table whose name ends
// with suffix ("_expires_at_idx", "_user_id_idx"), within the limit on
// identifier length. A name that would be too long is shortened and given a
// hash of the table name, so that two long table names sharing a prefix do
// not share an index name.
func indexName(table, suffix string) string {
	name := table + suffix
	if len(name) <= maxIdentLen {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(table))
	tag := fmt.Sprintf("_%08x", h.Sum32())
	return table[:maxIdentLen-len(suffix)-len(tag)] + tag + suffix
}

func schemaStatements(ident pgx.Identifier) []string {
	t := ident.Sanitize()
	name := ident[len(ident)-1]
	expIdx := pgx.Identifier{indexName(name, "_expires_at_idx")}.Sanitize()
	userIdx := pgx.Identifier{indexName(name, "_user_id_idx")}.Sanitize()
	return []string{
		"CREATE TABLE IF NOT EXISTS " + t + " (\n" +
			"    id         TEXT PRIMARY KEY,\n" +
			"    data       BYTEA NOT NULL,\n" +
			"    expires_at TIMESTAMPTZ NOT NULL,\n" +
			"    user_id    TEXT\n" +
			")",
		// A table made before sessions had users lacks the column.
		"ALTER TABLE " + t + " ADD COLUMN IF NOT EXISTS user_id TEXT",
		"CREATE INDEX IF NOT EXISTS " + expIdx + " ON " + t + " (expires_at)",
		// Most sessions have no user: the index holds only those that do.
		"CREATE INDEX IF NOT EXISTS " + userIdx + " ON " + t + " (user_id) WHERE user_id IS NOT NULL",
	}
}

// Schema returns the SQL statements that create the session table named
// table (as accepted by [WithTableName]), add its user_id column to a table
// made before sessions had users, and create its indexes on the expiry and
// on the user, each ending with a semicolon and a newline. They are the
// statements that [Store.CreateTable] runs, for use in a migration tool.
// Schema panics if the table name is invalid.
func Schema(table string) string {
	ident, err := parseTableName(table)
	if err != nil {
		panic("pgstore: Schema: " + err.Error())
	}
	var b strings.Builder
	for _, q := range schemaStatements(ident) {
		b.WriteString(q)
		b.WriteString(";\n")
	}
	return b.String()
}

// CreateTable creates the session table and its indexes unless they
// already exist, and adds the user_id column to a table made before
// sessions had users; calling it again, or from several processes at once,
// is safe. The schema of a schema-qualified table name must already exist.
func (s *Store) CreateTable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: create table: %w", err)
	}
	// CREATE TABLE IF NOT EXISTS can fail when two sessions run it at the
	// same moment; a transaction-scoped advisory lock on the table name makes
	// them take turns.
	h := fnv.New64a()
	h.Write([]byte("pgstore:" + s.s.table.Sanitize()))
	lockKey := int64(h.Sum64())
	err := pgx.BeginFunc(ctx, s.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
			return err
		}
		for _, q := range s.s.createSQL {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: create table: %w", err)
	}
	return nil
}

// ceilMicro rounds t up to PostgreSQL's resolution of one microsecond.
func ceilMicro(t time.Time) time.Time {
	r := t.Truncate(time.Microsecond)
	if r.Before(t) {
		r = r.Add(time.Microsecond)
	}
	return r
}

// Load returns the data stored under id and its expiry, or found false when
// there is no row for id or its expiry is not after the current time. The
// returned slice belongs to the caller.
func (s *Store) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("pgstore: load: %w", err)
	}
	var (
		data []byte
		exp  time.Time
	)
	err := s.s.pool.QueryRow(ctx, s.s.loadSQL, id, time.Now()).Scan(&data, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("pgstore: load: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, exp, true, nil
}

// Save stores data under id until expiresAt, rounded up to the microsecond,
// replacing the data and expiry of any row stored under id, in a single
// upsert. The row's user_id, set by [Store.LinkUser], is kept.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: save: %w", err)
	}
	if data == nil {
		data = []byte{} // nil would be sent as NULL
	}
	if _, err := s.s.pool.Exec(ctx, s.s.saveSQL, id, data, ceilMicro(expiresAt)); err != nil {
		return fmt.Errorf("pgstore: save: %w", err)
	}
	return nil
}

// Delete removes the row stored under id, if any.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: delete: %w", err)
	}
	if _, err := s.s.pool.Exec(ctx, s.s.deleteSQL, id); err != nil {
		return fmt.Errorf("pgstore: delete: %w", err)
	}
	return nil
}

// Touch sets the expiry of the live session stored under id to expiresAt,
// rounded up to the microsecond, without rewriting its data, in a single
// UPDATE. A missing or expired id is left alone.
func (s *Store) Touch(ctx context.Context, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: touch: %w", err)
	}
	if _, err := s.s.pool.Exec(ctx, s.s.touchSQL, id, ceilMicro(expiresAt), time.Now()); err != nil {
		return fmt.Errorf("pgstore: touch: %w", err)
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
		return 0, fmt.Errorf("pgstore: sweep: %w", err)
	}
	tag, err := st.pool.Exec(ctx, st.sweepSQL, time.Now())
	if err != nil {
		return 0, fmt.Errorf("pgstore: sweep: %w", err)
	}
	return tag.RowsAffected(), nil
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
	st.once.Do(st.cancel)
	<-st.done
}

// Close stops the background sweep, cancelling a sweep in progress, and
// waits for it to exit. It does not close the pool, and the store keeps
// working afterwards, without the sweep. Close is idempotent and always
// returns nil.
func (s *Store) Close() error {
	s.s.close()
	return nil
}
