package mysqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/go-sql-driver/mysql"
)

const defaultDSN = "root@tcp(127.0.0.1:3306)/test"

const howToStart = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd, or set FASTSESSION_MYSQL_DSN"

func dsn() string {
	if v := os.Getenv("FASTSESSION_MYSQL_DSN"); v != "" {
		return v
	}
	return defaultDSN
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// serverAddr returns the address in the DSN, without the credentials.
func serverAddr() string {
	cfg, err := mysql.ParseDSN(dsn())
	if err != nil {
		return "(unparsable DSN)"
	}
	return cfg.Addr + "/" + cfg.DBName
}

// testDB connects to the test server, skipping the test if it is down.
func testDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn())
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(c); err != nil {
		db.Close()
		storetest.Unreachable(t, "MySQL at "+serverAddr(), howToStart, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// lazyDB returns a db that has not connected, for tests that need no server.
func lazyDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn())
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// testTable returns a fresh table name, dropped when the test ends.
func testTable(t *testing.T, db *sql.DB) string {
	t.Helper()
	name := "sessions_test_" + randHex()
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop table %s: %v", name, err)
		}
	})
	return name
}

// A table made before sessions had users (no user_id column) is brought up
// to date by CreateTable, its sessions kept, and the user index then works.
func TestCreateTableUpgradesATableWithoutUsers(t *testing.T) {
	db := testDB(t)
	table := testTable(t, db)
	if _, err := db.ExecContext(ctx(t), "CREATE TABLE `"+table+"` (id VARBINARY(64) NOT NULL PRIMARY KEY, data MEDIUMBLOB NOT NULL, expires_at BIGINT NOT NULL, INDEX expires_at_idx (expires_at)) ENGINE=InnoDB"); err != nil {
		t.Fatalf("creating the old table: %v", err)
	}
	s := New(db, WithTableName(table), WithCleanupInterval(0))
	defer s.Close()
	old := storetest.NewID()
	exp := time.Now().Add(time.Hour)
	if err := s.Save(ctx(t), old, []byte("kept"), exp); err != nil {
		t.Fatalf("Save into the old table: %v", err)
	}
	storetest.CheckUpgrade(t, s, old, exp)
}

// newTestStore returns a store on a fresh table, created with CreateTable,
// and closes the store when the test ends.
func newTestStore(t *testing.T, db *sql.DB, opts ...Option) (*Store, string) {
	t.Helper()
	table := testTable(t, db)
	s := New(db, append([]Option{WithTableName(table)}, opts...)...)
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	return s, table
}

// rowCount counts the rows stored under id, expired or not.
func rowCount(t *testing.T, db *sql.DB, table, id string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM `"+table+"` WHERE id = ?", id).Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

func TestContract(t *testing.T) {
	db := testDB(t)
	table := testTable(t, db)
	if err := New(db, WithTableName(table), WithCleanupInterval(0)).CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	storetest.Run(t, func(t *testing.T) sessions.Store {
		// A short interval runs the sweep alongside the contract.
		s := New(db, WithTableName(table), WithCleanupInterval(500*time.Millisecond))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestCreateTableIsIdempotent(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("kept"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := s.CreateTable(ctx(t)); err != nil {
			t.Fatalf("CreateTable again (%d): %v", i, err)
		}
	}
	if got, _, found, err := s.Load(ctx(t), id); err != nil || !found || string(got) != "kept" {
		t.Fatalf("after CreateTable again: found=%v data=%q err=%v", found, got, err)
	}
	var nIdx int
	err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM information_schema.statistics"+
		" WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'expires_at'", table).Scan(&nIdx)
	if err != nil {
		t.Fatalf("count indexes: %v", err)
	}
	if nIdx != 1 {
		t.Fatalf("%d indexes on expires_at, want 1", nIdx)
	}
	err = db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM information_schema.statistics"+
		" WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'user_id'", table).Scan(&nIdx)
	if err != nil {
		t.Fatalf("count indexes: %v", err)
	}
	if nIdx != 1 {
		t.Fatalf("%d indexes on user_id, want 1", nIdx)
	}
	var engine string
	err = db.QueryRowContext(ctx(t), "SELECT engine FROM information_schema.tables"+
		" WHERE table_schema = DATABASE() AND table_name = ?", table).Scan(&engine)
	if err != nil || engine != "InnoDB" {
		t.Fatalf("engine %q, err %v; want InnoDB", engine, err)
	}
}

func TestSchema(t *testing.T) {
	ddl := Schema("app.Sessions")
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS `app`.`Sessions` (",
		"id         VARBINARY(64) NOT NULL PRIMARY KEY",
		"data       MEDIUMBLOB NOT NULL",
		"expires_at BIGINT NOT NULL,",
		"user_id    VARBINARY(255) NULL,",
		"INDEX expires_at_idx (expires_at),",
		"INDEX user_id_idx (user_id)\n",
		") ENGINE=InnoDB",
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("Schema lacks %q:\n%s", want, ddl)
		}
	}

	// The DDL runs as documented, twice.
	db := testDB(t)
	table := testTable(t, db)
	for i := 0; i < 2; i++ {
		if _, err := db.ExecContext(ctx(t), Schema(table)); err != nil {
			t.Fatalf("running Schema (%d): %v", i, err)
		}
	}
	s := New(db, WithTableName(table), WithCleanupInterval(0))
	defer s.Close()
	if err := s.Save(ctx(t), storetest.NewID(), []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save into a table made from Schema: %v", err)
	}
}

// An expired row is never returned, even while it is still in the table
// because the sweep is off.
func TestExpiredRowNotReturnedWithoutSweep(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))
	id := storetest.NewID()
	exp := time.Now().Add(300 * time.Millisecond)
	if err := s.Save(ctx(t), id, []byte("short"), exp); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if _, _, found, err := s.Load(ctx(t), id); err != nil || !found {
		t.Fatalf("Load before expiry: found=%v err=%v", found, err)
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	if data, _, found, err := s.Load(ctx(t), id); err != nil || found || data != nil {
		t.Fatalf("Load after expiry: found=%v data=%q err=%v, want not found", found, data, err)
	}
	// Touch does not revive it.
	if err := s.Touch(ctx(t), id, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if _, _, found, err := s.Load(ctx(t), id); err != nil || found {
		t.Fatalf("Load after Touch of an expired row: found=%v err=%v, want not found", found, err)
	}
	if n := rowCount(t, db, table, id); n != 1 {
		t.Fatalf("%d rows for the expired id, want 1: it is still in the table with the sweep off", n)
	}
}

// The background sweep deletes expired rows, keeps live ones, and stops on
// Close.
func TestSweepDeletesExpiredAndStopsOnClose(t *testing.T) {
	db := testDB(t)
	table := testTable(t, db)
	s := New(db, WithTableName(table), WithCleanupInterval(50*time.Millisecond))
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	gone, live := storetest.NewID(), storetest.NewID()
	if err := s.Save(ctx(t), gone, []byte("a"), time.Now().Add(100*time.Millisecond)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := s.Save(ctx(t), live, []byte("b"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rowCount(t, db, table, gone) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweep did not delete the expired row within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := rowCount(t, db, table, live); n != 1 {
		t.Fatalf("the sweep deleted a live row (%d left)", n)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// After Close the store still works, without the sweep.
	stale := storetest.NewID()
	exp := time.Now().Add(50 * time.Millisecond)
	if err := s.Save(ctx(t), stale, []byte("c"), exp); err != nil {
		t.Fatalf("Save after Close: %v", err)
	}
	time.Sleep(time.Until(exp) + 500*time.Millisecond) // ten intervals
	if n := rowCount(t, db, table, stale); n != 1 {
		t.Fatal("an expired row was deleted after Close: the sweep is still running")
	}
	if got, _, found, err := s.Load(ctx(t), live); err != nil || !found || string(got) != "b" {
		t.Fatalf("Load after Close: found=%v data=%q err=%v", found, got, err)
	}
	// A manual sweep still works.
	n, err := s.Sweep(ctx(t))
	if err != nil || n != 1 {
		t.Fatalf("Sweep after Close: deleted %d, err %v; want 1, nil", n, err)
	}
}

func TestSweepOffByZero(t *testing.T) {
	s := New(lazyDB(t), WithCleanupInterval(0))
	select {
	case <-s.s.done:
	default:
		t.Fatal("WithCleanupInterval(0) started a sweep goroutine")
	}
	s.Close()
}

// Loading and saving run one prepared statement each: after the first use
// on a connection, no statement is prepared again.
func TestOneStatementPerCall(t *testing.T) {
	db := testDB(t)
	db.SetMaxOpenConns(1) // one connection, so its session counters see every call
	s, _ := newTestStore(t, db, WithCleanupInterval(0))
	status := func() (prepare, execute int) {
		t.Helper()
		rows, err := db.QueryContext(ctx(t), "SHOW SESSION STATUS WHERE Variable_name IN ('Com_stmt_prepare', 'Com_stmt_execute')")
		if err != nil {
			t.Fatalf("show status: %v", err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var v int
			if err := rows.Scan(&name, &v); err != nil {
				t.Fatalf("scan status: %v", err)
			}
			switch strings.ToLower(name) {
			case "com_stmt_prepare":
				prepare = v
			case "com_stmt_execute":
				execute = v
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("status rows: %v", err)
		}
		return prepare, execute
	}
	id := storetest.NewID()
	exp := time.Now().Add(time.Hour)
	// Warm up: prepare each statement on the connection.
	if err := s.Save(ctx(t), id, []byte("x"), exp); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if _, _, _, err := s.Load(ctx(t), id); err != nil {
		t.Fatalf("Load: %v", err)
	}
	p0, e0 := status()
	const n = 5
	for i := 0; i < n; i++ {
		if err := s.Save(ctx(t), id, []byte("x"), exp); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if _, _, found, err := s.Load(ctx(t), id); err != nil || !found {
			t.Fatalf("Load: found=%v err=%v", found, err)
		}
	}
	p1, e1 := status()
	if p1 != p0 || e1-e0 != 2*n {
		t.Fatalf("%d saves and %d loads: %d prepares, %d executions; want 0 and %d", n, n, p1-p0, e1-e0, 2*n)
	}
}

// The expiry is rounded up to the microsecond, never down.
func TestExpiryRoundsUp(t *testing.T) {
	db := testDB(t)
	s, _ := newTestStore(t, db, WithCleanupInterval(0))
	base := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	for _, exp := range []time.Time{base, base.Add(1), base.Add(999)} {
		id := storetest.NewID()
		if err := s.Save(ctx(t), id, []byte("x"), exp); err != nil {
			t.Fatalf("Save: %v", err)
		}
		_, got, found, err := s.Load(ctx(t), id)
		if err != nil || !found {
			t.Fatalf("Load: found=%v err=%v", found, err)
		}
		if got.Before(exp) || !got.Before(exp.Add(time.Microsecond)) {
			t.Errorf("saved expiry %v came back as %v: want it rounded up to the microsecond", exp, got)
		}
	}
}

// Two IDs that differ only in letter case are two sessions.
func TestIDsAreCaseSensitive(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))
	lower := strings.ToLower(storetest.NewID())
	upper := strings.ToUpper(lower)
	if err := s.Save(ctx(t), lower, []byte("lower"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := s.Save(ctx(t), upper, []byte("upper"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for id, want := range map[string]string{lower: "lower", upper: "upper"} {
		if got, _, found, err := s.Load(ctx(t), id); err != nil || !found || string(got) != want {
			t.Errorf("Load(%s): found=%v data=%q err=%v, want %q", id[:6], found, got, err, want)
		}
	}
	if err := s.Delete(ctx(t), upper); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got, _, found, err := s.Load(ctx(t), lower); err != nil || !found || string(got) != "lower" {
		t.Errorf("deleting the upper-case ID removed the lower-case one: found=%v data=%q err=%v", found, got, err)
	}
	if n := rowCount(t, db, table, lower); n != 1 {
		t.Errorf("%d rows match the lower-case ID, want 1", n)
	}
}

func TestLongID(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))
	long := strings.Repeat("a", MaxIDLength+1)
	err := s.Save(ctx(t), long, []byte("x"), time.Now().Add(time.Hour))
	if err == nil || !strings.HasPrefix(err.Error(), "mysqlstore: save: ") {
		t.Fatalf("Save with a %d-byte id: err = %v, want a mysqlstore error", len(long), err)
	}
	// The row it would have been truncated to is not written.
	if n := rowCount(t, db, table, long[:MaxIDLength]); n != 0 {
		t.Fatalf("a too-long id was stored truncated")
	}
	if _, _, found, err := s.Load(ctx(t), long); err != nil || found {
		t.Fatalf("Load of a too-long id: found=%v err=%v", found, err)
	}
	if err := s.Delete(ctx(t), long); err != nil {
		t.Fatalf("Delete of a too-long id: %v", err)
	}
	if err := s.Touch(ctx(t), long, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Touch of a too-long id: %v", err)
	}
	// The longest allowed id works.
	max := strings.Repeat("b", MaxIDLength)
	if err := s.Save(ctx(t), max, []byte("y"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save with a %d-byte id: %v", len(max), err)
	}
	if got, _, found, err := s.Load(ctx(t), max); err != nil || !found || string(got) != "y" {
		t.Fatalf("Load of a %d-byte id: found=%v data=%q err=%v", len(max), found, got, err)
	}
}

func TestEmptyData(t *testing.T) {
	db := testDB(t)
	s, _ := newTestStore(t, db, WithCleanupInterval(0))
	id := storetest.NewID()
	for _, data := range [][]byte{nil, {}} {
		if err := s.Save(ctx(t), id, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("Save(%#v): %v", data, err)
		}
		got, _, found, err := s.Load(ctx(t), id)
		if err != nil || !found || len(got) != 0 {
			t.Fatalf("Load after Save(%#v): found=%v data=%q err=%v", data, found, got, err)
		}
	}
}

// The table name option is used, database-qualified too, and the default is
// "sessions".
func TestTableName(t *testing.T) {
	db := testDB(t)
	dbName := "fastsession_test_" + randHex()
	if _, err := db.ExecContext(ctx(t), "CREATE DATABASE `"+dbName+"`"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+dbName+"`"); err != nil {
			t.Errorf("drop database %s: %v", dbName, err)
		}
	})
	s := New(db, WithTableName(dbName+".my_sessions"), WithCleanupInterval(0))
	defer s.Close()
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	id := storetest.NewID()
	exp := time.Now().Add(time.Hour)
	if err := s.Save(ctx(t), id, []byte("in my table"), exp); err != nil {
		t.Fatalf("Save: %v", err)
	}
	var (
		data  []byte
		expUS int64
	)
	err := db.QueryRowContext(ctx(t), "SELECT data, expires_at FROM `"+dbName+"`.my_sessions WHERE id = ?", id).Scan(&data, &expUS)
	if err != nil {
		t.Fatalf("reading the row directly: %v", err)
	}
	if string(data) != "in my table" || expUS != ceilMicro(exp) {
		t.Fatalf("row read directly: data=%q expires_at=%d, want %q and %d", data, expUS, "in my table", ceilMicro(exp))
	}
	if got, _, found, err := s.Load(ctx(t), id); err != nil || !found || string(got) != "in my table" {
		t.Fatalf("Load: found=%v data=%q err=%v", found, got, err)
	}

	if got := New(lazyDB(t), WithCleanupInterval(0)).s.stmts[stmtLoad].query; !strings.Contains(got, "FROM `sessions` ") {
		t.Fatalf("default table: load statement is %q", got)
	}
}

func TestInvalidTableNamePanics(t *testing.T) {
	db := lazyDB(t)
	for _, name := range []string{
		"",
		"sessions; DROP TABLE users",
		"`sessions`",
		"sess`ions",
		"a.b.c",
		".sessions",
		"sessions.",
		"1sessions",
		"sess-ions",
		"sess ions",
		"séssions",
		strings.Repeat("s", 65),
	} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("New with table name %q did not panic", name)
				}
				if msg := fmt.Sprint(r); !strings.HasPrefix(msg, "mysqlstore: New: table name") {
					t.Fatalf("panic message %q lacks the package and the cause", msg)
				}
			}()
			New(db, WithTableName(name), WithCleanupInterval(0))
		})
	}
	// The longest valid names pass.
	New(db, WithTableName(strings.Repeat("s", 64)+"."+strings.Repeat("t", 64)), WithCleanupInterval(0))
}

// A server that refuses connections gives wrapped errors, not panics.
func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	db, err := sql.Open("mysql", "root@tcp("+addr+")/test?timeout=2s")
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	defer db.Close()
	s := New(db, WithCleanupInterval(0))
	defer s.Close()
	id := storetest.NewID()

	check := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s against a closed port: no error", op)
		}
		if !strings.HasPrefix(err.Error(), "mysqlstore: "+op+": ") {
			t.Errorf("%s: error %q lacks the prefix %q", op, err, "mysqlstore: "+op+": ")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: error %q does not wrap ECONNREFUSED", op, err)
		}
	}
	_, _, found, err := s.Load(ctx(t), id)
	if found {
		t.Error("Load against a closed port: found")
	}
	check("load", err)
	check("save", s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)))
	check("delete", s.Delete(ctx(t), id))
	check("touch", s.Touch(ctx(t), id, time.Now().Add(time.Hour)))
	check("create table", s.CreateTable(ctx(t)))
	_, err = s.Sweep(ctx(t))
	check("sweep", err)
	called := false
	found, err = s.Update(ctx(t), id, time.Now().Add(time.Hour), func(b []byte) ([]byte, error) { called = true; return b, nil })
	if found || called {
		t.Errorf("Update against a closed port: found=%v, fn called=%v", found, called)
	}
	check("update", err)
	unlock, err := s.Lock(ctx(t), id, time.Second, time.Hour)
	if unlock != nil {
		t.Error("Lock against a closed port returned an unlock function")
	}
	check("lock", err)
	check("link user", s.LinkUser(ctx(t), "ann", id, time.Now().Add(time.Hour)))
	check("unlink user", s.UnlinkUser(ctx(t), "ann", id))
	ids, err := s.UserSessions(ctx(t), "ann")
	if ids != nil {
		t.Errorf("UserSessions against a closed port: %v", ids)
	}
	check("user sessions", err)
	check("range", s.Range(ctx(t), func(string, []byte, time.Time) bool { t.Error("Range called fn"); return true }))
}

func TestCancelledContext(t *testing.T) {
	db := testDB(t)
	s, _ := newTestStore(t, db, WithCleanupInterval(0))
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Touch(c, storetest.NewID(), time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("Touch: %v", err)
	}
	if err := s.CreateTable(c); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTable: %v", err)
	}
	if _, err := s.Sweep(c); !errors.Is(err, context.Canceled) {
		t.Errorf("Sweep: %v", err)
	}
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("kept"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if found, err := s.Update(c, id, time.Now().Add(time.Hour), func([]byte) ([]byte, error) {
		t.Error("Update with a cancelled context called fn")
		return []byte("changed"), nil
	}); found || !errors.Is(err, context.Canceled) {
		t.Errorf("Update: found=%v err=%v", found, err)
	}
	if _, err := s.Lock(c, id, time.Second, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock: %v", err)
	}
	if err := s.LinkUser(c, "ann", id, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("LinkUser: %v", err)
	}
	if err := s.UnlinkUser(c, "ann", id); !errors.Is(err, context.Canceled) {
		t.Errorf("UnlinkUser: %v", err)
	}
	if _, err := s.UserSessions(c, "ann"); !errors.Is(err, context.Canceled) {
		t.Errorf("UserSessions: %v", err)
	}
	if err := s.Range(c, func(string, []byte, time.Time) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Errorf("Range: %v", err)
	}
	if got, _, _, err := s.Load(ctx(t), id); err != nil || string(got) != "kept" {
		t.Errorf("after cancelled calls: %q, %v", got, err)
	}
}

// Calls running while Close releases the prepared statements all succeed.
func TestCloseDuringCalls(t *testing.T) {
	db := testDB(t)
	s, _ := newTestStore(t, db, WithCleanupInterval(time.Hour))
	id := storetest.NewID()
	errs := make(chan error, 4)
	for w := 0; w < cap(errs); w++ {
		go func() {
			for i := 0; i < 50; i++ {
				if err := s.Save(context.Background(), id, []byte("x"), time.Now().Add(time.Hour)); err != nil {
					errs <- err
					return
				}
				if _, _, _, err := s.Load(context.Background(), id); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	time.Sleep(10 * time.Millisecond)
	s.Close()
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err != nil {
			t.Errorf("call around Close: %v", err)
		}
	}
}
