package pgstore

import (
	"context"
	"crypto/rand"
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
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

const howToStart = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, or set FASTSESSION_PG_DSN"

func dsn() string {
	if v := os.Getenv("FASTSESSION_PG_DSN"); v != "" {
		return v
	}
	return defaultDSN
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// testPool connects to the test server, skipping the test if it is down.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn())
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := pool.Ping(c); err != nil {
		pool.Close()
		storetest.Unreachable(t, "PostgreSQL at "+redact(dsn()), howToStart, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// lazyPool returns a pool that has not connected, for tests that need no
// server.
func lazyPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn())
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func redact(d string) string {
	if i := strings.LastIndex(d, "@"); i >= 0 {
		if j := strings.Index(d, "://"); j >= 0 && j < i {
			return d[:j+3] + "...@" + d[i+1:]
		}
	}
	return d
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// testTable returns a fresh table name, dropped when the test ends.
func testTable(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	name := "sessions_test_" + randHex()
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
		if err != nil {
			t.Errorf("drop table %s: %v", name, err)
		}
	})
	return name
}

// newTestStore returns a store on a fresh table, created with CreateTable,
// and closes the store when the test ends.
func newTestStore(t *testing.T, pool *pgxpool.Pool, opts ...Option) (*Store, string) {
	t.Helper()
	table := testTable(t, pool)
	s := New(pool, append([]Option{WithTableName(table)}, opts...)...)
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	return s, table
}

// rowCount counts the rows stored under id, expired or not.
func rowCount(t *testing.T, pool *pgxpool.Pool, table, id string) int {
	t.Helper()
	var n int
	q := "SELECT count(*) FROM " + pgx.Identifier(strings.Split(table, ".")).Sanitize() + " WHERE id = $1"
	if err := pool.QueryRow(ctx(t), q, id).Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

func TestContract(t *testing.T) {
	pool := testPool(t)
	table := testTable(t, pool)
	if err := New(pool, WithTableName(table), WithCleanupInterval(0)).CreateTable(ctx(t)); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	storetest.Run(t, func(t *testing.T) sessions.Store {
		// A short interval runs the sweep alongside the contract.
		s := New(pool, WithTableName(table), WithCleanupInterval(500*time.Millisecond))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestCreateTableIsIdempotent(t *testing.T) {
	pool := testPool(t)
	s, table := newTestStore(t, pool, WithCleanupInterval(0))
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
	err := pool.QueryRow(ctx(t),
		"SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(expires_at)%'", table).Scan(&nIdx)
	if err != nil {
		t.Fatalf("count indexes: %v", err)
	}
	if nIdx != 1 {
		t.Fatalf("%d indexes on expires_at, want 1", nIdx)
	}
	err = pool.QueryRow(ctx(t),
		"SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(user_id)%'", table).Scan(&nIdx)
	if err != nil {
		t.Fatalf("count indexes: %v", err)
	}
	if nIdx != 1 {
		t.Fatalf("%d indexes on user_id, want 1", nIdx)
	}
}

func TestCreateTableConcurrently(t *testing.T) {
	pool := testPool(t)
	table := testTable(t, pool)
	errs := make(chan error, 4)
	for i := 0; i < cap(errs); i++ {
		go func() {
			errs <- New(pool, WithTableName(table), WithCleanupInterval(0)).CreateTable(ctx(t))
		}()
	}
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent CreateTable: %v", err)
		}
	}
}

func TestSchema(t *testing.T) {
	ddl := Schema("app.Sessions")
	for _, want := range []string{
		`CREATE TABLE IF NOT EXISTS "app"."Sessions"`,
		"id         TEXT PRIMARY KEY",
		"data       BYTEA NOT NULL",
		"expires_at TIMESTAMPTZ NOT NULL,",
		"user_id    TEXT\n)",
		`ALTER TABLE "app"."Sessions" ADD COLUMN IF NOT EXISTS user_id TEXT;`,
		`CREATE INDEX IF NOT EXISTS "Sessions_expires_at_idx" ON "app"."Sessions" (expires_at);`,
		`CREATE INDEX IF NOT EXISTS "Sessions_user_id_idx" ON "app"."Sessions" (user_id) WHERE user_id IS NOT NULL;`,
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("Schema lacks %q:\n%s", want, ddl)
		}
	}

	// The DDL runs as documented, twice.
	pool := testPool(t)
	table := testTable(t, pool)
	for i := 0; i < 2; i++ {
		if _, err := pool.Exec(ctx(t), Schema(table)); err != nil {
			t.Fatalf("running Schema (%d): %v", i, err)
		}
	}
	s := New(pool, WithTableName(table), WithCleanupInterval(0))
	defer s.Close()
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save into a table made from Schema: %v", err)
	}
}

// A table made before sessions had users (no user_id column) is brought up
// to date by CreateTable, its sessions kept, and the user index then works.
func TestCreateTableUpgradesATableWithoutUsers(t *testing.T) {
	pool := testPool(t)
	table := testTable(t, pool)
	tq := pgx.Identifier{table}.Sanitize()
	if _, err := pool.Exec(ctx(t), "CREATE TABLE "+tq+" (id TEXT PRIMARY KEY, data BYTEA NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"); err != nil {
		t.Fatalf("creating the old table: %v", err)
	}
	old := storetest.NewID()
	exp := time.Now().Add(time.Hour)
	if _, err := pool.Exec(ctx(t), "INSERT INTO "+tq+" (id, data, expires_at) VALUES ($1, $2, $3)", old, []byte("kept"), exp); err != nil {
		t.Fatalf("seeding the old table: %v", err)
	}
	s := New(pool, WithTableName(table), WithCleanupInterval(0))
	defer s.Close()
	storetest.CheckUpgrade(t, s, old, exp)
}

func TestIndexNameOfLongTable(t *testing.T) {
	a := strings.Repeat("a", 60) + "_one"
	b := strings.Repeat("a", 60) + "_two"
	a, b = a[:63], b[:63]
	for _, suffix := range []string{"_expires_at_idx", "_user_id_idx"} {
		ia, ib := indexName(a, suffix), indexName(b, suffix)
		if len(ia) > maxIdentLen || len(ib) > maxIdentLen {
			t.Fatalf("index names too long: %d, %d bytes", len(ia), len(ib))
		}
		if ia == ib {
			t.Fatalf("two tables share the index name %q", ia)
		}
		if !strings.HasSuffix(ia, suffix) {
			t.Fatalf("index name %q lacks its suffix %q", ia, suffix)
		}
	}
	if got := indexName("sessions", "_expires_at_idx"); got != "sessions_expires_at_idx" {
		t.Fatalf("indexName(sessions) = %q", got)
	}
	if got := indexName("sessions", "_user_id_idx"); got != "sessions_user_id_idx" {
		t.Fatalf("indexName(sessions) = %q", got)
	}
}

// An expired row is never returned, even while it is still in the table
// because the sweep is off.
func TestExpiredRowNotReturnedWithoutSweep(t *testing.T) {
	pool := testPool(t)
	s, table := newTestStore(t, pool, WithCleanupInterval(0))
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
	if n := rowCount(t, pool, table, id); n != 1 {
		t.Fatalf("%d rows for the expired id, want 1: it is still in the table with the sweep off", n)
	}
}

// The background sweep deletes expired rows, keeps live ones, and stops on
// Close.
func TestSweepDeletesExpiredAndStopsOnClose(t *testing.T) {
	pool := testPool(t)
	table := testTable(t, pool)
	s := New(pool, WithTableName(table), WithCleanupInterval(50*time.Millisecond))
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
	for rowCount(t, pool, table, gone) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweep did not delete the expired row within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := rowCount(t, pool, table, live); n != 1 {
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
	if n := rowCount(t, pool, table, stale); n != 1 {
		t.Fatal("an expired row was deleted after Close: the sweep is still running")
	}
	// A manual sweep still works.
	n, err := s.Sweep(ctx(t))
	if err != nil || n != 1 {
		t.Fatalf("Sweep after Close: deleted %d, err %v; want 1, nil", n, err)
	}
}

func TestSweepOffByZero(t *testing.T) {
	pool := lazyPool(t)
	s := New(pool, WithTableName("sessions_unused_"+randHex()), WithCleanupInterval(0))
	select {
	case <-s.s.done:
	default:
		t.Fatal("WithCleanupInterval(0) started a sweep goroutine")
	}
	s.Close()
}

// The expiry is rounded up to the microsecond, never down.
func TestExpiryRoundsUp(t *testing.T) {
	pool := testPool(t)
	s, _ := newTestStore(t, pool, WithCleanupInterval(0))
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

func TestIDsAreCaseSensitive(t *testing.T) {
	pool := testPool(t)
	s, _ := newTestStore(t, pool, WithCleanupInterval(0))
	lower, upper := "abcdefghij-session_id", "ABCDEFGHIJ-SESSION_ID"
	if err := s.Save(ctx(t), lower, []byte("lower"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := s.Save(ctx(t), upper, []byte("upper"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for id, want := range map[string]string{lower: "lower", upper: "upper"} {
		if got, _, found, err := s.Load(ctx(t), id); err != nil || !found || string(got) != want {
			t.Errorf("Load(%s): found=%v data=%q err=%v, want %q", id, found, got, err, want)
		}
	}
}

func TestEmptyData(t *testing.T) {
	pool := testPool(t)
	s, _ := newTestStore(t, pool, WithCleanupInterval(0))
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

// The table name option is used, schema-qualified too, and the default is
// "sessions".
func TestTableName(t *testing.T) {
	pool := testPool(t)
	schema := "fastsession_test_" + randHex()
	if _, err := pool.Exec(ctx(t), "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		if err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	table := schema + ".my_sessions"
	s := New(pool, WithTableName(table), WithCleanupInterval(0))
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
		data   []byte
		gotExp time.Time
	)
	err := pool.QueryRow(ctx(t), `SELECT data, expires_at FROM "`+schema+`".my_sessions WHERE id = $1`, id).Scan(&data, &gotExp)
	if err != nil {
		t.Fatalf("reading the row directly: %v", err)
	}
	if string(data) != "in my table" || gotExp.Before(exp) {
		t.Fatalf("row read directly: data=%q expires_at=%v, want %q and not before %v", data, gotExp, "in my table", exp)
	}
	var idxCount int
	err = pool.QueryRow(ctx(t), "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'my_sessions' AND indexname = 'my_sessions_expires_at_idx'", schema).Scan(&idxCount)
	if err != nil || idxCount != 1 {
		t.Fatalf("expiry index in schema %s: %d found, err %v", schema, idxCount, err)
	}

	if got := New(pool, WithCleanupInterval(0)).s.loadSQL; !strings.Contains(got, `FROM "sessions" `) {
		t.Fatalf("default table: load statement is %q", got)
	}
}

func TestInvalidTableNamePanics(t *testing.T) {
	pool := lazyPool(t)
	for _, name := range []string{
		"",
		"sessions; DROP TABLE users",
		`"sessions"`,
		"a.b.c",
		".sessions",
		"sessions.",
		"1sessions",
		"sess-ions",
		"sess ions",
		"séssions",
		strings.Repeat("s", 64),
	} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("New with table name %q did not panic", name)
				}
				if msg := fmt.Sprint(r); !strings.HasPrefix(msg, "pgstore: New: table name") {
					t.Fatalf("panic message %q lacks the package and the cause", msg)
				}
			}()
			New(pool, WithTableName(name), WithCleanupInterval(0))
		})
	}
	// The longest valid names pass.
	New(pool, WithTableName(strings.Repeat("s", 63)+"."+strings.Repeat("t", 63)), WithCleanupInterval(0))
}

// A server that refuses connections gives wrapped errors, not panics.
func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	defer pool.Close()
	s := New(pool, WithCleanupInterval(0))
	defer s.Close()
	id := storetest.NewID()

	check := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s against a closed port: no error", op)
		}
		if !strings.HasPrefix(err.Error(), "pgstore: "+op+": ") {
			t.Errorf("%s: error %q lacks the prefix %q", op, err, "pgstore: "+op+": ")
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
	pool := testPool(t)
	s, _ := newTestStore(t, pool, WithCleanupInterval(0))
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
