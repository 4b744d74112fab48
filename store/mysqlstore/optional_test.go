package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/storetest"
)

var (
	_ sessions.Store       = (*Store)(nil)
	_ sessions.Toucher     = (*Store)(nil)
	_ sessions.Updater     = (*Store)(nil)
	_ sessions.Locker      = (*Store)(nil)
	_ sessions.UserIndexer = (*Store)(nil)
	_ sessions.Iterator    = (*Store)(nil)
)

// eventually polls cond until it holds, failing the test after 10 seconds.
// It polls every 200 ms: InnoDB refreshes what information_schema.innodb_trx
// shows only when it was last read more than 100 ms ago.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// userOf returns the user_id column of the row of id ("" for NULL).
func userOf(t *testing.T, db *sql.DB, table, id string) string {
	t.Helper()
	var u sql.NullString
	if err := db.QueryRowContext(ctx(t), "SELECT user_id FROM `"+table+"` WHERE id = ?", id).Scan(&u); err != nil {
		t.Fatalf("read user_id: %v", err)
	}
	return u.String
}

// lockWaits counts the transactions waiting on a row lock whose statement
// mentions table and has prefix.
func lockWaits(t *testing.T, db *sql.DB, table, prefix string) int {
	t.Helper()
	var n int
	err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM information_schema.innodb_trx"+
		" WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE CONCAT(?, '%') AND trx_query LIKE CONCAT('%', ?, '%')",
		prefix, table).Scan(&n)
	if err != nil {
		t.Fatalf("innodb_trx: %v", err)
	}
	return n
}

// The user_id column is nullable VARBINARY(255) with its own index, is set
// and cleared only by LinkUser and UnlinkUser, and survives Save and Update.
func TestUserIDColumn(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))

	var colType, nullable string
	err := db.QueryRowContext(ctx(t), "SELECT column_type, is_nullable FROM information_schema.columns"+
		" WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'user_id'", table).Scan(&colType, &nullable)
	if err != nil {
		t.Fatalf("user_id column: %v", err)
	}
	if colType != "varbinary(255)" || nullable != "YES" {
		t.Fatalf("user_id is %s, nullable %s; want varbinary(255), YES", colType, nullable)
	}
	var idx string
	err = db.QueryRowContext(ctx(t), "SELECT index_name FROM information_schema.statistics"+
		" WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'user_id'", table).Scan(&idx)
	if err != nil || idx != "user_id_idx" {
		t.Fatalf("user_id index: %q, %v", idx, err)
	}

	id := storetest.NewID()
	exp := time.Now().Add(time.Hour)
	if err := s.Save(ctx(t), id, []byte("a"), exp); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, db, table, id); u != "" {
		t.Fatalf("a new row has user %q", u)
	}
	if err := s.LinkUser(ctx(t), "ann", id, exp); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, db, table, id); u != "ann" {
		t.Fatalf("user_id after LinkUser: %q", u)
	}
	if err := s.Save(ctx(t), id, []byte("b"), exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx(t), id, exp, func([]byte) ([]byte, error) { return []byte("c"), nil }); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, db, table, id); u != "ann" {
		t.Fatalf("user_id after Save and Update: %q, want the link kept", u)
	}
	// User IDs are case-sensitive.
	if got, _ := s.UserSessions(ctx(t), "ANN"); len(got) != 0 {
		t.Fatalf("ANN has ann's sessions: %v", got)
	}
	if err := s.UnlinkUser(ctx(t), "bob", id); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, db, table, id); u != "ann" {
		t.Fatalf("unlinking another user changed user_id to %q", u)
	}
	if err := s.LinkUser(ctx(t), "bob", id, exp); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserSessions(ctx(t), "ann"); len(got) != 0 {
		t.Fatalf("relinked session still listed for its old user: %v", got)
	}
	if got, _ := s.UserSessions(ctx(t), "bob"); !slices.Equal(got, []string{id}) {
		t.Fatalf("bob's sessions: %v", got)
	}
	if err := s.UnlinkUser(ctx(t), "bob", id); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, db, table, id); u != "" {
		t.Fatalf("user_id after UnlinkUser: %q, want NULL", u)
	}
	missing := storetest.NewID()
	if err := s.LinkUser(ctx(t), "ann", missing, exp); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, db, table, missing); n != 0 {
		t.Fatal("LinkUser of a missing id created a row")
	}

	// The longest user fits; a longer one is refused, not truncated.
	long := strings.Repeat("u", MaxUserLength)
	if err := s.LinkUser(ctx(t), long, id, exp); err != nil {
		t.Fatalf("LinkUser with a %d-byte user: %v", len(long), err)
	}
	if got, err := s.UserSessions(ctx(t), long); err != nil || !slices.Equal(got, []string{id}) {
		t.Fatalf("sessions of a %d-byte user: %v, %v", len(long), got, err)
	}
	err = s.LinkUser(ctx(t), long+"u", id, exp)
	if err == nil || !strings.HasPrefix(err.Error(), "mysqlstore: link user: ") {
		t.Fatalf("LinkUser with a %d-byte user: %v, want a mysqlstore error", len(long)+1, err)
	}
	if got, err := s.UserSessions(ctx(t), long+"u"); err != nil || len(got) != 0 {
		t.Fatalf("sessions of a too-long user: %v, %v", got, err)
	}
	if err := s.UnlinkUser(ctx(t), long+"u", id); err != nil {
		t.Fatalf("UnlinkUser of a too-long user: %v", err)
	}
	if u := userOf(t, db, table, id); u != long {
		t.Fatal("a refused link changed user_id")
	}
}

// Update holds the InnoDB row lock from its SELECT ... FOR UPDATE to its
// COMMIT: a second Update and a Save of the same id wait on it (the server
// shows them waiting), and the second Update's fn runs only afterwards, on
// a result that includes the first one's.
func TestUpdateHoldsRowLock(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("0"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	inA, releaseA := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(releaseA) }) }
	defer release() // a failing test must not leave the row locked
	doneA := make(chan error, 1)
	go func() {
		_, err := s.Update(context.Background(), id, time.Now().Add(time.Hour), func(cur []byte) ([]byte, error) {
			close(inA)
			<-releaseA
			return append(cur, 'A'), nil
		})
		doneA <- err
	}()
	<-inA

	var bCalled atomic.Bool
	var bSaw atomic.Value
	doneB := make(chan error, 1)
	go func() {
		_, err := s.Update(context.Background(), id, time.Now().Add(time.Hour), func(cur []byte) ([]byte, error) {
			bCalled.Store(true)
			bSaw.Store(string(cur))
			return append(cur, 'B'), nil
		})
		doneB <- err
	}()
	eventually(t, "the second Update waiting on the row lock", func() bool {
		return lockWaits(t, db, table, "SELECT data") == 1
	})
	if bCalled.Load() {
		t.Fatal("the second Update ran its fn while the first held the row")
	}
	doneSave := make(chan error, 1)
	go func() { doneSave <- s.Save(context.Background(), id, []byte("S"), time.Now().Add(time.Hour)) }()
	eventually(t, "a Save waiting on the row lock", func() bool {
		return lockWaits(t, db, table, "INSERT INTO") == 1
	})

	release()
	for what, done := range map[string]chan error{"first Update": doneA, "second Update": doneB, "Save": doneSave} {
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	saw, _ := bSaw.Load().(string)
	if saw != "0A" && saw != "S" {
		t.Fatalf("the second Update saw %q, want the first one's result %q (or the Save's)", saw, "0A")
	}
	got, _, _, err := s.Load(ctx(t), id)
	if err != nil || (string(got) != "0AB" && string(got) != "S") {
		t.Fatalf("after both: %q, %v", got, err)
	}
}

// With a pool of one connection, Update still works: its statements are
// prepared before its transaction takes the connection.
func TestUpdateWithOneConnection(t *testing.T) {
	db := testDB(t)
	db.SetMaxOpenConns(1)
	s, _ := newTestStore(t, db, WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func(b []byte) ([]byte, error) { return append(b, '1'), nil })
		if err != nil || !found {
			t.Fatalf("Update %d: found=%v err=%v", i, found, err)
		}
	}
	if got, _, _, err := s.Load(ctx(t), id); err != nil || string(got) != "1111" {
		t.Fatalf("after 3 Updates: %q, %v", got, err)
	}
	boom := errors.New("boom")
	if found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func([]byte) ([]byte, error) { return nil, boom }); err != boom || !found {
		t.Fatalf("Update with a failing fn: found=%v err=%v; want true and fn's error itself", found, err)
	}
	if found, err := s.Update(ctx(t), storetest.NewID(), time.Now().Add(time.Hour), nil); found || err != nil {
		t.Fatalf("Update of a missing id: found=%v err=%v", found, err)
	}
	// Neither left a transaction open on the one connection: the row is
	// free and the connection usable.
	if err := s.Save(ctx(t), id, []byte("2"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var trx int
	if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()").Scan(&trx); err != nil {
		t.Fatal(err)
	}
	if trx != 0 {
		t.Fatal("a transaction is still open on the connection")
	}
}

// When InnoDB picks Update's transaction as a deadlock victim, Update runs
// it again: fn is called twice and the update lands.
func TestUpdateRetriesDeadlock(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))
	base := time.Now().Add(time.Hour)
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("x"), base); err != nil {
		t.Fatal(err)
	}
	var filler []string
	for i := 0; i < 50; i++ {
		f := storetest.NewID()
		filler = append(filler, f)
		if err := s.Save(ctx(t), f, []byte("f"), base); err != nil {
			t.Fatal(err)
		}
	}
	newExp := base.Add(24 * time.Hour)

	// The other transaction changes 50 rows, so InnoDB rolls back the
	// lighter Update, and holds the gap of the expiry index where Update's
	// new expiry goes.
	other, err := db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	// One row at a time, by primary key: a scan would lock every row in
	// REPEATABLE READ, the session's too.
	for _, f := range filler {
		if _, err := other.ExecContext(ctx(t), "UPDATE `"+table+"` SET data = 'o' WHERE id = ?", f); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := other.QueryContext(ctx(t), "SELECT id FROM `"+table+"` FORCE INDEX (expires_at_idx)"+
		" WHERE expires_at BETWEEN ? AND ? FOR UPDATE", ceilMicro(newExp)-1000, ceilMicro(newExp)+1000)
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()

	var calls atomic.Int32
	otherDone := make(chan error, 1)
	found, err := s.Update(ctx(t), id, newExp, func(cur []byte) ([]byte, error) {
		if calls.Add(1) == 1 {
			// Close the cycle: the other transaction waits for this row
			// while this one's UPDATE waits for the other's gap lock.
			go func() {
				var d []byte
				err := other.QueryRowContext(context.Background(), "SELECT data FROM `"+table+"` WHERE id = ? FOR UPDATE", id).Scan(&d)
				if err == nil {
					err = other.Commit()
				}
				otherDone <- err
			}()
		}
		return append(cur, 'u'), nil
	})
	if err != nil || !found {
		t.Fatalf("Update: found=%v err=%v", found, err)
	}
	if err := <-otherDone; err != nil {
		t.Fatalf("the other transaction: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("fn called %d times, want 2 (the first attempt was the deadlock victim)", n)
	}
	if got, _, _, err := s.Load(ctx(t), id); err != nil || string(got) != "xu" {
		t.Fatalf("after the retried Update: %q, %v", got, err)
	}
}

// The lock is a named lock of the holder's connection: when that connection
// is killed (as when the holder's process crashes), the server frees the
// lock and another Lock gets it.
func TestLockFreedWhenHolderConnectionKilled(t *testing.T) {
	db := testDB(t)
	holderDB := testDB(t) // the "crashing" process
	table := "sessions_test_" + randHex()
	holder := New(holderDB, WithTableName(table), WithCleanupInterval(0))
	other := New(db, WithTableName(table), WithCleanupInterval(0))
	id := storetest.NewID()
	name := holder.s.lockName(id)
	holderConn := func() int64 {
		var c sql.NullInt64
		if err := db.QueryRowContext(ctx(t), "SELECT IS_USED_LOCK(?)", name).Scan(&c); err != nil {
			t.Fatalf("IS_USED_LOCK: %v", err)
		}
		return c.Int64
	}

	unlockDead, err := holder.Lock(ctx(t), id, time.Second, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockDead()
	conn := holderConn()
	if conn == 0 {
		t.Fatal("no connection holds the lock")
	}
	if _, err := other.Lock(ctx(t), id, 200*time.Millisecond, time.Hour); err == nil {
		t.Fatal("a second holder got the lock")
	}

	if _, err := db.ExecContext(ctx(t), fmt.Sprintf("KILL CONNECTION %d", conn)); err != nil {
		t.Fatalf("KILL CONNECTION %d: %v", conn, err)
	}
	unlock, err := other.Lock(ctx(t), id, 5*time.Second, time.Hour)
	if err != nil {
		t.Fatalf("Lock after the holder's connection was killed: %v", err)
	}
	if c := holderConn(); c == 0 || c == conn {
		t.Fatalf("lock holder after the takeover: connection %d (the killed one was %d)", c, conn)
	}
	// The dead holder's unlock fails quietly and frees nothing of the new
	// holder's.
	unlockDead()
	if _, err := holder.Lock(ctx(t), id, 200*time.Millisecond, time.Hour); err == nil {
		t.Fatal("the old holder's unlock freed the new holder's lock")
	}
	unlock()
	if c := holderConn(); c != 0 {
		t.Fatalf("lock still held by connection %d after unlock", c)
	}
	if n := holderDB.Stats().InUse + db.Stats().InUse; n != 0 {
		t.Fatalf("%d connections still in use after every unlock", n)
	}
}

// The lock's connection goes back to the db on unlock and when the holder's
// context ends, and the lock is free then.
func TestLockConnectionReturned(t *testing.T) {
	db := testDB(t)
	s := New(db, WithTableName("sessions_test_"+randHex()), WithCleanupInterval(0))
	id := storetest.NewID()
	name := s.s.lockName(id)
	free := func() bool {
		var f int
		if err := db.QueryRowContext(ctx(t), "SELECT IS_FREE_LOCK(?)", name).Scan(&f); err != nil {
			t.Fatalf("IS_FREE_LOCK: %v", err)
		}
		return f == 1
	}
	unlock, err := s.Lock(ctx(t), id, time.Second, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().InUse; n != 1 {
		t.Fatalf("%d connections in use while the lock is held, want 1", n)
	}
	if free() {
		t.Fatal("the lock is free while held")
	}
	unlock()
	if n := db.Stats().InUse; n != 0 || !free() {
		t.Fatalf("after unlock: %d connections in use, lock free %v", n, free())
	}

	holderCtx, cancel := context.WithCancel(context.Background())
	if _, err := s.Lock(holderCtx, id, time.Second, time.Hour); err != nil {
		t.Fatal(err)
	}
	cancel()
	eventually(t, "the lock free after its holder's context ended", free)
	eventually(t, "the lock's connection back after its holder's context ended", func() bool { return db.Stats().InUse == 0 })
}

// Failing to get the lock within wait is an error that names the wait and
// does not pretend the caller's context ended.
func TestLockWaitElapsed(t *testing.T) {
	db := testDB(t)
	s := New(db, WithTableName("sessions_test_"+randHex()), WithCleanupInterval(0))
	id := storetest.NewID()
	unlock, err := s.Lock(ctx(t), id, time.Second, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, wait := range []time.Duration{0, 100 * time.Millisecond} {
		_, err := s.Lock(ctx(t), id, wait, time.Hour)
		if err == nil || !strings.HasPrefix(err.Error(), "mysqlstore: lock: ") {
			t.Fatalf("Lock(wait %v) of a held lock: %v", wait, err)
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Fatalf("Lock(wait %v): %v wraps a context error, but the caller's context is live", wait, err)
		}
	}
	if n := db.Stats().InUse; n != 1 {
		t.Fatalf("%d connections in use, want only the holder's", n)
	}
}

func TestLockName(t *testing.T) {
	a := New(lazyDB(t), WithTableName("a"), WithCleanupInterval(0))
	b := New(lazyDB(t), WithTableName("db.a"), WithCleanupInterval(0))
	n := a.s.lockName(storetest.NewID())
	if len(n) > 64 || !strings.HasPrefix(n, "fastsession:") {
		t.Fatalf("lock name %q: want the prefix and at most 64 characters", n)
	}
	for _, c := range n {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == ':') {
			t.Fatalf("lock name %q has %q, which may not be written into a literal", n, c)
		}
	}
	if again := New(lazyDB(t), WithTableName("a"), WithCleanupInterval(0)); a.s.lockName("x") != again.s.lockName("x") {
		t.Fatal("two stores on one table give one session different lock names")
	}
	if a.s.lockName("x") == a.s.lockName("y") {
		t.Fatal("two ids share a lock name")
	}
	if a.s.lockName("x") == b.s.lockName("x") {
		t.Fatal("two tables share a lock name")
	}
	if long := a.s.lockName(strings.Repeat("x", 1000)); len(long) != len(n) {
		t.Fatalf("a long id gives a %d-character name", len(long))
	}
}

// Range streams: stopping early leaves the store usable and no connection
// in use, data handed to fn is fn's to keep, and fn may call the store.
func TestRangeStopsEarly(t *testing.T) {
	db := testDB(t)
	s, table := newTestStore(t, db, WithCleanupInterval(0))
	exp := ceilMicro(time.Now().Add(time.Hour))
	var args []any
	for i := 0; i < 2000; i++ {
		args = append(args, fmt.Sprint("row", i), strings.Repeat("x", 1000), exp)
	}
	_, err := db.ExecContext(ctx(t), "INSERT INTO `"+table+"` (id, data, expires_at) VALUES (?, ?, ?)"+
		strings.Repeat(", (?, ?, ?)", 1999), args...)
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	calls := 0
	err = s.Range(ctx(t), func(id string, data []byte, exp time.Time) bool {
		calls++
		kept = append(kept, data)
		return calls < 3
	})
	if err != nil || calls != 3 {
		t.Fatalf("Range: %d calls, err %v; want 3, nil", calls, err)
	}
	for _, d := range kept {
		if len(d) != 1000 || d[0] != 'x' || d[999] != 'x' {
			t.Fatal("data kept from Range was overwritten")
		}
	}
	if n := db.Stats().InUse; n != 0 {
		t.Fatalf("%d connections in use after Range", n)
	}
	n := 0
	if err := s.Range(ctx(t), func(string, []byte, time.Time) bool { n++; return true }); err != nil || n != 2000 {
		t.Fatalf("full Range: %d sessions, err %v", n, err)
	}
	var deleted []string
	err = s.Range(ctx(t), func(id string, _ []byte, _ time.Time) bool {
		if err := s.Delete(ctx(t), id); err != nil {
			t.Fatalf("Delete inside Range: %v", err)
		}
		deleted = append(deleted, id)
		return len(deleted) < 5
	})
	if err != nil || len(deleted) != 5 {
		t.Fatalf("Range deleting 5: %d deleted, err %v", len(deleted), err)
	}
	n = 0
	err = s.Range(ctx(t), func(id string, _ []byte, _ time.Time) bool {
		if slices.Contains(deleted, id) {
			t.Errorf("deleted session %s seen", id)
		}
		n++
		return true
	})
	if err != nil || n != 1995 {
		t.Fatalf("Range after deleting 5: %d sessions, err %v", n, err)
	}
}

// sessionStatus reads counters of the session's connection (the db must
// have one connection).
func sessionStatus(t *testing.T, db *sql.DB, names ...string) map[string]int {
	t.Helper()
	q := "SHOW SESSION STATUS WHERE Variable_name IN ('" + strings.Join(names, "', '") + "')"
	rows, err := db.QueryContext(ctx(t), q)
	if err != nil {
		t.Fatalf("show status: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var v int
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatalf("scan status: %v", err)
		}
		out[strings.ToLower(name)] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("status rows: %v", err)
	}
	return out
}

// An Update that finds its session is START TRANSACTION, two executions of
// prepared statements and COMMIT: four round trips, and nothing prepared
// again once the connection has the statements.
func TestUpdateRoundTrips(t *testing.T) {
	db := testDB(t)
	db.SetMaxOpenConns(1)
	s, _ := newTestStore(t, db, WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	inc := func(b []byte) ([]byte, error) { return append(b, 'x'), nil }
	if _, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), inc); err != nil {
		t.Fatal(err)
	}
	names := []string{"com_stmt_prepare", "com_stmt_execute", "com_begin", "com_commit"}
	before := sessionStatus(t, db, names...)
	const n = 5
	for i := 0; i < n; i++ {
		if found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), inc); err != nil || !found {
			t.Fatalf("Update: found=%v err=%v", found, err)
		}
	}
	after := sessionStatus(t, db, names...)
	want := map[string]int{"com_stmt_prepare": 0, "com_stmt_execute": 2 * n, "com_begin": n, "com_commit": n}
	for _, name := range names {
		if d := after[name] - before[name]; d != want[name] {
			t.Errorf("%d Updates: %s went up by %d, want %d", n, name, d, want[name])
		}
	}
}

// Holding and releasing locks leaves no goroutine behind, whether the lock
// ends by unlock or by the end of its holder's context.
func TestLockLeavesNoGoroutine(t *testing.T) {
	db := testDB(t)
	s := New(db, WithTableName("sessions_test_"+randHex()), WithCleanupInterval(0))
	id := storetest.NewID()
	cycle := func() {
		unlock, err := s.Lock(ctx(t), id, time.Second, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		holderCtx, cancel := context.WithCancel(context.Background())
		if _, err := s.Lock(holderCtx, id, time.Second, time.Hour); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	cycle()
	eventually(t, "the lock free", func() bool { return db.Stats().InUse == 0 })
	// The driver runs one goroutine per open connection, and the pool may
	// keep one more idle connection than before.
	others := func() int { return runtime.NumGoroutine() - db.Stats().OpenConnections }
	base := others()
	for i := 0; i < 20; i++ {
		cycle()
	}
	eventually(t, "goroutines back to where they were", func() bool {
		return db.Stats().InUse == 0 && others() <= base
	})
}
