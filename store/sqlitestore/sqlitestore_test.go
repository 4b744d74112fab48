package sqlitestore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/sqlitestore"
	"github.com/fastsession/sessions/store/storetest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func dbPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "sessions.db")
}

// openStore opens a store on a fresh file and closes it when t ends.
func openStore(t *testing.T, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB opens the file without any of the store's settings, to look at it
// from outside.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rowCount(t *testing.T, db *sql.DB, table, id string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM "`+table+`" WHERE id = ?`, id).Scan(&n); err != nil {
		t.Fatalf("count rows of %s: %v", table, err)
	}
	return n
}

func insertRow(t *testing.T, db *sql.DB, table, id string, data []byte, exp time.Time) {
	t.Helper()
	_, err := db.ExecContext(ctx(t), `INSERT INTO "`+table+`" (id, data, expires_at) VALUES (?, ?, ?)`, id, data, exp.UnixMicro())
	if err != nil {
		t.Fatalf("insert %s: %v", id, err)
	}
}

// TestContract runs the contract suite against a store made by Open: one
// file shared by all subtests, which run in parallel.
func TestContract(t *testing.T) {
	s := openStore(t, dbPath(t))
	var (
		_ sessions.Toucher     = s
		_ sessions.Updater     = s
		_ sessions.Locker      = s
		_ sessions.UserIndexer = s
		_ sessions.Iterator    = s
	)
	storetest.Run(t, func(t *testing.T) sessions.Store { return s })
}

// TestContractNew runs the contract suite against a store made by New on a
// database the caller opened with the settings New's documentation asks for,
// and the default (unlimited) connection pool.
func TestContractNew(t *testing.T) {
	path := dbPath(t)
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlitestore.New(db)
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) sessions.Store { return s })
}

// TestSurvivesReopen is the restart case: what one Store saved, a Store
// opened later on the same file loads, with its expiry.
func TestSurvivesReopen(t *testing.T) {
	path := dbPath(t)
	id := storetest.NewID()
	data := []byte("kept across a restart\x00\xff")
	exp := time.Now().Add(time.Hour)

	s1, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Save(ctx(t), id, data, exp); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := openStore(t, path)
	got, gotExp, found, err := s2.Load(ctx(t), id)
	if err != nil || !found || !bytes.Equal(got, data) {
		t.Fatalf("after reopening: found=%v data=%q err=%v, want %q", found, got, err, data)
	}
	if gotExp.Before(exp) || gotExp.Sub(exp) >= time.Microsecond {
		t.Fatalf("expiry after reopening: %v, saved %v", gotExp, exp)
	}
}

// TestExpiredRowNotReturned: with the sweep off, an expired row stays in the
// table but Load does not return it and Touch does not revive it.
func TestExpiredRowNotReturned(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	db := rawDB(t, path)

	id := storetest.NewID()
	insertRow(t, db, "sessions", id, []byte("old"), time.Now().Add(-time.Second))
	if _, _, found, err := s.Load(ctx(t), id); err != nil || found {
		t.Fatalf("Load of an expired row: found=%v err=%v", found, err)
	}
	if err := s.Touch(ctx(t), id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, found, err := s.Load(ctx(t), id); err != nil || found {
		t.Fatalf("Load after touching an expired row: found=%v err=%v", found, err)
	}

	// Saved through the store with a short expiry, then waited out.
	short := storetest.NewID()
	exp := time.Now().Add(50 * time.Millisecond)
	if err := s.Save(ctx(t), short, []byte("short"), exp); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
	if _, _, found, err := s.Load(ctx(t), short); err != nil || found {
		t.Fatalf("Load after the expiry passed: found=%v err=%v", found, err)
	}

	for _, x := range []string{id, short} {
		if n := rowCount(t, db, "sessions", x); n != 1 {
			t.Fatalf("expired row %s...: %d rows in the table, want it still there (no sweep)", x[:6], n)
		}
	}
}

// TestSweep: the background sweep deletes expired rows and only those, and
// Close stops it. The store is made by New so that the database stays open
// after Close.
func TestSweep(t *testing.T) {
	path := dbPath(t)
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	const every = 20 * time.Millisecond
	s := sqlitestore.New(db, sqlitestore.WithCleanupInterval(every))
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatal(err)
	}

	expired, live := storetest.NewID(), storetest.NewID()
	insertRow(t, db, "sessions", expired, []byte("old"), time.Now().Add(-time.Second))
	if err := s.Save(ctx(t), live, []byte("live"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rowCount(t, db, "sessions", expired) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background sweep did not delete an expired row within 10s")
		}
		time.Sleep(every)
	}
	if rowCount(t, db, "sessions", live) != 1 {
		t.Fatal("the sweep deleted a live row")
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	after := storetest.NewID()
	insertRow(t, db, "sessions", after, []byte("old"), time.Now().Add(-time.Second))
	time.Sleep(20 * every)
	if rowCount(t, db, "sessions", after) != 1 {
		t.Fatal("an expired row was deleted after Close: the sweep is still running")
	}
	// Close of a Store made by New leaves the caller's database open and the
	// store working.
	if got, _, found, err := s.Load(ctx(t), live); err != nil || !found || string(got) != "live" {
		t.Fatalf("Load after Close of a New store: found=%v data=%q err=%v", found, got, err)
	}

	// Sweep on demand.
	n, err := s.Sweep(ctx(t))
	if err != nil || n != 1 {
		t.Fatalf("Sweep: deleted %d, err %v; want 1, nil", n, err)
	}
}

// TestSweepBatches: Sweep deletes more expired rows than one batch holds.
func TestSweepBatches(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	db := rawDB(t, path)
	const rows = 2500
	tx, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute).UnixMicro()
	for i := 0; i < rows; i++ {
		if _, err := tx.Exec(`INSERT INTO sessions (id, data, expires_at) VALUES (?, ?, ?)`, storetest.NewID(), []byte("x"), past); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	live := storetest.NewID()
	if err := s.Save(ctx(t), live, []byte("live"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(ctx(t))
	if err != nil || n != rows {
		t.Fatalf("Sweep: deleted %d, err %v; want %d", n, err, rows)
	}
	var left int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sessions`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("rows left after Sweep: %d (err %v), want the live one", left, err)
	}
}

// TestTableName: WithTableName puts the sessions in the named table, with
// its index, and leaves the default table out.
func TestTableName(t *testing.T) {
	path := dbPath(t)
	const table = "my_app_sessions"
	s := openStore(t, path, sqlitestore.WithTableName(table), sqlitestore.WithCleanupInterval(0))
	db := rawDB(t, path)

	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("named"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var data []byte
	if err := db.QueryRowContext(ctx(t), `SELECT data FROM `+table+` WHERE id = ?`, id).Scan(&data); err != nil || string(data) != "named" {
		t.Fatalf("row in %s: data=%q err=%v", table, data, err)
	}
	var names []string
	rows, err := db.QueryContext(ctx(t), `SELECT name FROM sqlite_master WHERE tbl_name = ? ORDER BY name`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, table+"_expires_at_idx") {
		t.Fatalf("objects of %s: %s, want the expires_at index", table, got)
	}
	var n int
	if err := db.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM sqlite_master WHERE name = 'sessions'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the default table exists (%d, %v) although another name was given", n, err)
	}
}

func TestTableNameInvalidPanics(t *testing.T) {
	for _, name := range []string{"", "1sessions", "my-sessions", `a"b`, "sessions; DROP TABLE x", "séance", strings.Repeat("a", 64)} {
		func() {
			defer func() {
				r := recover()
				if r == nil {
					t.Errorf("WithTableName(%q) did not panic", name)
					return
				}
				if msg, _ := r.(string); !strings.HasPrefix(msg, "sqlitestore: ") {
					t.Errorf("WithTableName(%q) panicked with %v, want a message prefixed with the package name", name, r)
				}
			}()
			sqlitestore.WithTableName(name)
		}()
	}
	// Keywords are quoted, so they are valid names.
	s := openStore(t, dbPath(t), sqlitestore.WithTableName("order"), sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("k"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save into a table named order: %v", err)
	}
}

// TestWALMode: the file Open makes is in WAL mode, seen from a connection
// that sets no journal mode itself.
func TestWALMode(t *testing.T) {
	path := dbPath(t)
	openStore(t, path)
	var mode string
	if err := rawDB(t, path).QueryRowContext(ctx(t), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
}

// TestCreateTableIdempotent: CreateTable may run again on a table that
// exists and holds sessions.
func TestCreateTableIdempotent(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("still here"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.CreateTable(ctx(t)); err != nil {
			t.Fatalf("CreateTable #%d: %v", i+2, err)
		}
	}
	if got, _, found, err := s.Load(ctx(t), id); err != nil || !found || string(got) != "still here" {
		t.Fatalf("after CreateTable again: found=%v data=%q err=%v", found, got, err)
	}
}

// TestEmptyData: an empty (even nil) value is stored, not refused by the
// NOT NULL constraint.
func TestEmptyData(t *testing.T) {
	s := openStore(t, dbPath(t), sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, nil, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save(nil): %v", err)
	}
	got, _, found, err := s.Load(ctx(t), id)
	if err != nil || !found || len(got) != 0 {
		t.Fatalf("Load of an empty value: found=%v data=%q err=%v", found, got, err)
	}
}

// TestExpiryRoundedUp: a sub-microsecond expiry is stored rounded up.
func TestExpiryRoundedUp(t *testing.T) {
	s := openStore(t, dbPath(t), sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond).Add(1) // 1ns past a microsecond
	if err := s.Save(ctx(t), id, []byte("x"), exp); err != nil {
		t.Fatal(err)
	}
	_, got, found, err := s.Load(ctx(t), id)
	if err != nil || !found {
		t.Fatalf("Load: found=%v err=%v", found, err)
	}
	if want := exp.Truncate(time.Microsecond).Add(time.Microsecond); !got.Equal(want) {
		t.Fatalf("expiry %v, want %v (rounded up to the microsecond)", got, want)
	}
}

// TestOpenErrors: failures to open come back as errors, not panics nor
// hangs: a missing directory, an in-memory database, a '?' in a file name,
// a file that is not a database, and a table that cannot be created (a view
// holds its name, and views cannot be indexed).
func TestOpenErrors(t *testing.T) {
	notDB := filepath.Join(t.TempDir(), "not-a-database.db")
	if err := os.WriteFile(notDB, bytes.Repeat([]byte("not SQLite "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	viewDB := dbPath(t)
	if _, err := rawDB(t, viewDB).ExecContext(ctx(t), `CREATE VIEW sessions AS SELECT 1 AS id`); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		filepath.Join(t.TempDir(), "missing-dir", "sessions.db"),
		":memory:",
		"",
		filepath.Join(t.TempDir(), "what?.db"),
		notDB,
		viewDB,
	} {
		s, err := sqlitestore.Open(path)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q): no error", path)
			continue
		}
		t.Logf("Open(%q): %v", path, err)
		if !strings.HasPrefix(err.Error(), "sqlitestore: ") {
			t.Errorf("Open(%q): %v, want an error prefixed with the package name", path, err)
		}
	}
}

// TestClosedStoreErrors: a Store made by Open returns wrapped errors, not
// panics, once Close has closed its database.
func TestClosedStoreErrors(t *testing.T) {
	s, err := sqlitestore.Open(dbPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	id := storetest.NewID()
	_, _, _, errLoad := s.Load(ctx(t), id)
	errSave := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour))
	errDelete := s.Delete(ctx(t), id)
	errTouch := s.Touch(ctx(t), id, time.Now().Add(time.Hour))
	_, errUpdate := s.Update(ctx(t), id, time.Now().Add(time.Hour), func(b []byte) ([]byte, error) { return b, nil })
	errLink := s.LinkUser(ctx(t), "ann", id, time.Now().Add(time.Hour))
	errUnlink := s.UnlinkUser(ctx(t), "ann", id)
	_, errUserSessions := s.UserSessions(ctx(t), "ann")
	errRange := s.Range(ctx(t), func(string, []byte, time.Time) bool { return true })
	for name, err := range map[string]error{
		"Load": errLoad, "Save": errSave, "Delete": errDelete, "Touch": errTouch,
		"Update": errUpdate, "LinkUser": errLink, "UnlinkUser": errUnlink,
		"UserSessions": errUserSessions, "Range": errRange,
	} {
		if !errors.Is(err, sql.ErrConnDone) && (err == nil || !strings.Contains(err.Error(), "database is closed")) {
			t.Errorf("%s on a closed store: %v, want the driver's error", name, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "sqlitestore: ") {
			t.Errorf("%s on a closed store: %v, want it prefixed with the package name", name, err)
		}
	}
}

// TestCancelledTouchAndSweep: the methods beyond the contract honour a
// cancelled context too.
func TestCancelledTouchAndSweep(t *testing.T) {
	s := openStore(t, dbPath(t), sqlitestore.WithCleanupInterval(0))
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Touch(c, storetest.NewID(), time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("Touch: %v", err)
	}
	if _, err := s.Sweep(c); !errors.Is(err, context.Canceled) {
		t.Errorf("Sweep: %v", err)
	}
	if err := s.CreateTable(c); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTable: %v", err)
	}
	called := false
	if _, err := s.Update(c, storetest.NewID(), time.Now().Add(time.Hour), func(b []byte) ([]byte, error) { called = true; return b, nil }); !errors.Is(err, context.Canceled) || called {
		t.Errorf("Update: %v (fn called: %v)", err, called)
	}
	if _, err := s.Lock(c, storetest.NewID(), time.Second, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock: %v", err)
	}
	if err := s.LinkUser(c, "ann", storetest.NewID(), time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("LinkUser: %v", err)
	}
	if err := s.UnlinkUser(c, "ann", storetest.NewID()); !errors.Is(err, context.Canceled) {
		t.Errorf("UnlinkUser: %v", err)
	}
	if _, err := s.UserSessions(c, "ann"); !errors.Is(err, context.Canceled) {
		t.Errorf("UserSessions: %v", err)
	}
	if err := s.Range(c, func(string, []byte, time.Time) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Errorf("Range: %v", err)
	}
}

// TestFileURI: Open takes a file: URI as well as a file name, and both name
// the same database.
func TestFileURI(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, "file:"+path+"?cache=private", sqlitestore.WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("via uri"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, path, sqlitestore.WithCleanupInterval(0))
	if got, _, found, err := s2.Load(ctx(t), id); err != nil || !found || string(got) != "via uri" {
		t.Fatalf("Load by file name of what a file: URI saved: found=%v data=%q err=%v", found, got, err)
	}
}
