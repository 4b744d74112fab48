package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/sqlitestore"
	"github.com/fastsession/sessions/store/storetest"
)

// TestMain fails the run if a goroutine of this module outlives the tests:
// the sweeps are stopped by Close, and a lock's release on its holder's
// context ending is a context.AfterFunc that unlock stops.
func TestMain(m *testing.M) { os.Exit(storetest.CheckGoroutines(m, "fastsession/sessions")) }

// impatientDB opens the file with busy_timeout(0), so that a write it
// cannot start fails at once with "database is locked" instead of waiting.
func impatientDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// tryWriteLock tries to take SQLite's write lock from db, and releases it
// at once if it got it.
func tryWriteLock(db *sql.DB) error {
	c := context.Background()
	conn, err := db.Conn(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(c, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	_, err = conn.ExecContext(c, "ROLLBACK")
	return err
}

// newStore opens a store made by New on a database the caller opened, with
// the default (unlimited) pool, as TestContractNew does.
func newStore(t *testing.T, path string) *sqlitestore.Store {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlitestore.New(db, sqlitestore.WithCleanupInterval(0))
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUpdateHoldsWriteLock: while fn runs, that is after Update's SELECT
// and before its UPDATE, the transaction already holds SQLite's write lock:
// another connection cannot start a write. A deferred transaction would hold
// only a read snapshot at that point. Checked for a store made by Open and
// for one made by New on a caller's pool. After Update returns, whether it
// stored, found nothing, or fn failed, the lock is free again.
func TestUpdateHoldsWriteLock(t *testing.T) {
	for name, mk := range map[string]func(*testing.T, string) *sqlitestore.Store{
		"Open": func(t *testing.T, path string) *sqlitestore.Store {
			return openStore(t, path, sqlitestore.WithCleanupInterval(0))
		},
		"New": newStore,
	} {
		t.Run(name, func(t *testing.T) {
			path := dbPath(t)
			s := mk(t, path)
			other := impatientDB(t, path)
			if err := tryWriteLock(other); err != nil {
				t.Fatalf("the write lock is taken before any Update: %v", err)
			}
			id := storetest.NewID()
			if err := s.Save(ctx(t), id, []byte("before"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			var during error
			found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func(cur []byte) ([]byte, error) {
				during = tryWriteLock(other)
				return append(slices.Clone(cur), " after"...), nil
			})
			if err != nil || !found {
				t.Fatalf("Update: found=%v err=%v", found, err)
			}
			if during == nil || !strings.Contains(during.Error(), "database is locked") {
				t.Fatalf("another connection took the write lock while fn ran (err %v): Update's read is not under the write lock", during)
			}
			if got, _, _, _ := s.Load(ctx(t), id); string(got) != "before after" {
				t.Fatalf("after Update: %q", got)
			}
			if err := tryWriteLock(other); err != nil {
				t.Fatalf("the write lock is still held after Update committed: %v", err)
			}

			boom := errors.New("boom")
			if _, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
				t.Fatalf("Update with a failing fn: %v", err)
			}
			if err := tryWriteLock(other); err != nil {
				t.Fatalf("the write lock is still held after fn failed: %v", err)
			}
			if found, err := s.Update(ctx(t), storetest.NewID(), time.Now().Add(time.Hour), func(b []byte) ([]byte, error) { return b, nil }); err != nil || found {
				t.Fatalf("Update of a missing ID: found=%v err=%v", found, err)
			}
			if err := tryWriteLock(other); err != nil {
				t.Fatalf("the write lock is still held after an Update found nothing: %v", err)
			}
		})
	}
}

// TestUpdateCancelledMidway: a context that ends while fn runs makes the
// UPDATE fail; the transaction is rolled back, nothing is stored, and the
// store's connection is not left inside a transaction.
func TestUpdateCancelledMidway(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("kept"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	_, err := s.Update(c, id, time.Now().Add(time.Hour), func([]byte) ([]byte, error) {
		cancel()
		return []byte("lost"), nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update whose context ended in fn: %v, want one wrapping context.Canceled", err)
	}
	if got, _, _, _ := s.Load(ctx(t), id); string(got) != "kept" {
		t.Fatalf("after a cancelled Update: %q, want the data untouched", got)
	}
	if err := tryWriteLock(impatientDB(t, path)); err != nil {
		t.Fatalf("the write lock is held after a cancelled Update: %v", err)
	}
	// The writer connection still works, outside any transaction: a Save
	// is committed and seen by another connection.
	if err := s.Save(ctx(t), id, []byte("saved later"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var data []byte
	if err := rawDB(t, path).QueryRowContext(ctx(t), `SELECT data FROM sessions WHERE id = ?`, id).Scan(&data); err != nil || string(data) != "saved later" {
		t.Fatalf("a Save after the cancelled Update, seen from outside: %q, %v", data, err)
	}
}

// TestUserIDColumn: the table has a nullable user_id column with a partial
// index that UserSessions uses; Save, Update and Touch leave user_id alone,
// so the link LinkUser made stays until UnlinkUser by the same user.
func TestUserIDColumn(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	db := rawDB(t, path)

	type col struct {
		name, typ string
		notNull   bool
	}
	var cols []col
	rows, err := db.QueryContext(ctx(t), `SELECT name, type, "notnull" FROM pragma_table_info('sessions')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.name, &c.typ, &c.notNull); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if !slices.Contains(cols, col{"user_id", "TEXT", false}) {
		t.Fatalf("columns %v: want a nullable user_id TEXT", cols)
	}
	var idxSQL string
	if err := db.QueryRowContext(ctx(t), `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'sessions_user_id_idx'`).Scan(&idxSQL); err != nil {
		t.Fatalf("the user_id index: %v", err)
	}
	if !strings.Contains(idxSQL, "(user_id) WHERE user_id IS NOT NULL") {
		t.Fatalf("user_id index: %s, want a partial index of linked rows", idxSQL)
	}

	userOf := func(id string) sql.NullString {
		t.Helper()
		var u sql.NullString
		if err := db.QueryRowContext(ctx(t), `SELECT user_id FROM sessions WHERE id = ?`, id).Scan(&u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	id := storetest.NewID()
	later := time.Now().Add(time.Hour)
	if err := s.Save(ctx(t), id, []byte("a"), later); err != nil {
		t.Fatal(err)
	}
	if u := userOf(id); u.Valid {
		t.Fatalf("a new row has user_id %q, want NULL", u.String)
	}
	if err := s.LinkUser(ctx(t), "ann", id, later); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx(t), id, []byte("b"), later); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx(t), id, later, func([]byte) ([]byte, error) { return []byte("c"), nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx(t), id, later.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if u := userOf(id); u.String != "ann" {
		t.Fatalf("user_id after Save, Update and Touch: %v, want ann kept", u)
	}
	if err := s.UnlinkUser(ctx(t), "bob", id); err != nil {
		t.Fatal(err)
	}
	if u := userOf(id); u.String != "ann" {
		t.Fatalf("UnlinkUser of another user cleared the link: %v", u)
	}
	if err := s.UnlinkUser(ctx(t), "ann", id); err != nil {
		t.Fatal(err)
	}
	if u := userOf(id); u.Valid {
		t.Fatalf("user_id after UnlinkUser: %q, want NULL", u.String)
	}
	// Linking a session that has no row stores nothing.
	ghost := storetest.NewID()
	if err := s.LinkUser(ctx(t), "ann", ghost, later); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, db, "sessions", ghost); n != 0 {
		t.Fatalf("LinkUser of a missing session made %d rows", n)
	}

	// UserSessions goes through the index.
	var plan []string
	rows, err = db.QueryContext(ctx(t), `EXPLAIN QUERY PLAN SELECT id FROM "sessions" WHERE user_id = ? AND expires_at > ?`, "ann", 0)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, b, c int
		var detail string
		if err := rows.Scan(&a, &b, &c, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	rows.Close()
	if p := strings.Join(plan, "; "); !strings.Contains(p, "sessions_user_id_idx") {
		t.Fatalf("query plan of UserSessions: %s, want the user_id index", p)
	}
}

// TestMigrateOldTable: CreateTable (through Open) adds user_id and its
// index to a table made before the column existed, keeping its rows.
func TestMigrateOldTable(t *testing.T) {
	path := dbPath(t)
	db := rawDB(t, path)
	for _, q := range []string{
		`CREATE TABLE sessions (id TEXT PRIMARY KEY, data BLOB NOT NULL, expires_at INTEGER NOT NULL)`,
		`CREATE INDEX sessions_expires_at_idx ON sessions (expires_at)`,
	} {
		if _, err := db.ExecContext(ctx(t), q); err != nil {
			t.Fatal(err)
		}
	}
	id := storetest.NewID()
	insertRow(t, db, "sessions", id, []byte("from before"), time.Now().Add(time.Hour))

	s := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	if got, _, found, err := s.Load(ctx(t), id); err != nil || !found || string(got) != "from before" {
		t.Fatalf("an old row after the migration: found=%v data=%q err=%v", found, got, err)
	}
	if err := s.LinkUser(ctx(t), "ann", id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.UserSessions(ctx(t), "ann"); err != nil || !slices.Equal(ids, []string{id}) {
		t.Fatalf("UserSessions after the migration: %v, %v", ids, err)
	}
	for i := 0; i < 2; i++ {
		if err := s.CreateTable(ctx(t)); err != nil {
			t.Fatalf("CreateTable again on the migrated table: %v", err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM sqlite_master WHERE name = 'sessions_user_id_idx'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("user_id index after the migration: %d (%v)", n, err)
	}
}

// TestSchema: the statements Schema returns make a table the store works
// with, and CreateTable accepts it as it is.
func TestSchema(t *testing.T) {
	ddl := sqlitestore.Schema("app_sessions")
	for _, want := range []string{
		`CREATE TABLE IF NOT EXISTS "app_sessions"`,
		"user_id    TEXT",
		`CREATE INDEX IF NOT EXISTS "app_sessions_expires_at_idx" ON "app_sessions" (expires_at);`,
		`CREATE INDEX IF NOT EXISTS "app_sessions_user_id_idx" ON "app_sessions" (user_id) WHERE user_id IS NOT NULL;`,
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("Schema lacks %q:\n%s", want, ddl)
		}
	}
	path := dbPath(t)
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for i := 0; i < 2; i++ {
		if _, err := db.ExecContext(ctx(t), ddl); err != nil {
			t.Fatalf("running Schema (%d): %v", i, err)
		}
	}
	s := sqlitestore.New(db, sqlitestore.WithTableName("app_sessions"), sqlitestore.WithCleanupInterval(0))
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable on a table made from Schema: %v", err)
	}
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkUser(ctx(t), "ann", id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.UserSessions(ctx(t), "ann"); err != nil || !slices.Equal(ids, []string{id}) {
		t.Fatalf("UserSessions on a table made from Schema: %v, %v", ids, err)
	}
	func() {
		defer func() {
			if r, _ := recover().(string); !strings.HasPrefix(r, "sqlitestore: ") {
				t.Errorf("Schema of an invalid name: panic %q, want one prefixed with the package name", r)
			}
		}()
		sqlitestore.Schema("bad name")
	}()
}

// TestLockTimeout: a Lock that cannot get the lock within its wait returns
// an error wrapping ErrLockTimeout; a wait of zero tries once.
func TestLockTimeout(t *testing.T) {
	s := openStore(t, dbPath(t), sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	unlock, err := s.Lock(ctx(t), id, 0, 0)
	if err != nil {
		t.Fatalf("Lock of a free session with no wait: %v", err)
	}
	for _, wait := range []time.Duration{0, -time.Second, 50 * time.Millisecond} {
		if _, err := s.Lock(ctx(t), id, wait, time.Second); !errors.Is(err, sqlitestore.ErrLockTimeout) {
			t.Errorf("Lock of a held session, wait %v: %v, want one wrapping ErrLockTimeout", wait, err)
		}
	}
	unlock()
	unlock, err = s.Lock(ctx(t), id, 0, 0)
	if err != nil {
		t.Fatalf("Lock after unlock, no wait: %v", err)
	}
	unlock()
}

// TestLockIsPerProcess documents the limit of the in-process lock: two
// Stores on one file (as two processes would have) do not exclude each
// other.
func TestLockIsPerProcess(t *testing.T) {
	path := dbPath(t)
	a := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	b := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	unlockA, err := a.Lock(ctx(t), id, time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA()
	unlockB, err := b.Lock(ctx(t), id, 0, time.Second)
	if err != nil {
		t.Fatalf("another Store's Lock: %v; the lock was meant to be in-process only", err)
	}
	unlockB()
}

// TestRangeCallsStore: with a store made by Open, fn may call the store
// while Range walks (here, deleting every session it sees).
func TestRangeCallsStore(t *testing.T) {
	s := openStore(t, dbPath(t), sqlitestore.WithCleanupInterval(0))
	for i := 0; i < 20; i++ {
		if err := s.Save(ctx(t), storetest.NewID(), []byte("x"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	err := s.Range(ctx(t), func(id string, _ []byte, _ time.Time) bool {
		seen++
		if err := s.Delete(ctx(t), id); err != nil {
			t.Errorf("Delete inside Range: %v", err)
			return false
		}
		return true
	})
	if err != nil || seen != 20 {
		t.Fatalf("Range: %d sessions seen, err %v; want 20", seen, err)
	}
	left := 0
	if err := s.Range(ctx(t), func(string, []byte, time.Time) bool { left++; return true }); err != nil || left != 0 {
		t.Fatalf("after deleting inside Range: %d left (err %v)", left, err)
	}
}

// TestUpdateCancelledWaitingForLock: an Update that waits for the write
// lock another process holds ends with its context, stores nothing, and
// leaves the store working (its connection is rolled back, or discarded
// and reopened, never kept inside a transaction).
func TestUpdateCancelledWaitingForLock(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("kept"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	holder, err := impatientDB(t, path).Conn(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx(t), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	called := false
	_, err = s.Update(c, id, time.Now().Add(time.Hour), func([]byte) ([]byte, error) { called = true; return []byte("lost"), nil })
	if !errors.Is(err, context.DeadlineExceeded) || called {
		t.Fatalf("Update while another connection holds the write lock: err=%v fn called=%v, want the deadline and no call", err, called)
	}
	if _, err := holder.ExecContext(ctx(t), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func(b []byte) ([]byte, error) { return append(slices.Clone(b), '!'), nil })
	if err != nil || !found {
		t.Fatalf("Update once the lock is free: found=%v err=%v", found, err)
	}
	if got, _, _, _ := s.Load(ctx(t), id); string(got) != "kept!" {
		t.Fatalf("after the cancelled Update and a good one: %q, want \"kept!\"", got)
	}
	if err := tryWriteLock(impatientDB(t, path)); err != nil {
		t.Fatalf("the write lock is held after the Updates returned: %v", err)
	}
}
