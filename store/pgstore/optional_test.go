package pgstore

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// userOf returns the user_id column of the row of id ("" for NULL).
func userOf(t *testing.T, pool *pgxpool.Pool, table, id string) string {
	t.Helper()
	var u *string
	q := "SELECT user_id FROM " + pgx.Identifier{table}.Sanitize() + " WHERE id = $1"
	if err := pool.QueryRow(ctx(t), q, id).Scan(&u); err != nil {
		t.Fatalf("read user_id: %v", err)
	}
	if u == nil {
		return ""
	}
	return *u
}

// The user_id column is nullable TEXT with its own index, is set and cleared
// only by LinkUser and UnlinkUser, and survives Save and Update.
func TestUserIDColumn(t *testing.T) {
	pool := testPool(t)
	s, table := newTestStore(t, pool, WithCleanupInterval(0))

	var dataType, nullable string
	err := pool.QueryRow(ctx(t), "SELECT data_type, is_nullable FROM information_schema.columns"+
		" WHERE table_name = $1 AND column_name = 'user_id'", table).Scan(&dataType, &nullable)
	if err != nil {
		t.Fatalf("user_id column: %v", err)
	}
	if dataType != "text" || nullable != "YES" {
		t.Fatalf("user_id is %s, nullable %s; want text, YES", dataType, nullable)
	}
	var idxDef string
	err = pool.QueryRow(ctx(t), "SELECT indexdef FROM pg_indexes WHERE tablename = $1 AND indexname = $2",
		table, indexName(table, "_user_id_idx")).Scan(&idxDef)
	if err != nil {
		t.Fatalf("user_id index: %v", err)
	}
	if !strings.Contains(idxDef, "(user_id)") {
		t.Fatalf("user_id index is %q", idxDef)
	}

	id := storetest.NewID()
	exp := time.Now().Add(time.Hour)
	if err := s.Save(ctx(t), id, []byte("a"), exp); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, pool, table, id); u != "" {
		t.Fatalf("a new row has user %q", u)
	}
	if err := s.LinkUser(ctx(t), "ann", id, exp); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, pool, table, id); u != "ann" {
		t.Fatalf("user_id after LinkUser: %q", u)
	}
	if err := s.Save(ctx(t), id, []byte("b"), exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx(t), id, exp, func([]byte) ([]byte, error) { return []byte("c"), nil }); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, pool, table, id); u != "ann" {
		t.Fatalf("user_id after Save and Update: %q, want the link kept", u)
	}
	if err := s.UnlinkUser(ctx(t), "bob", id); err != nil {
		t.Fatal(err)
	}
	if u := userOf(t, pool, table, id); u != "ann" {
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
	if u := userOf(t, pool, table, id); u != "" {
		t.Fatalf("user_id after UnlinkUser: %q, want NULL", u)
	}
	// Linking an id that is not stored creates nothing.
	missing := storetest.NewID()
	if err := s.LinkUser(ctx(t), "ann", missing, exp); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, pool, table, missing); n != 0 {
		t.Fatal("LinkUser of a missing id created a row")
	}
}

// Update holds the row lock from its SELECT ... FOR UPDATE to its COMMIT: a
// second Update of the same id waits on the lock (the server shows it
// waiting) and runs its fn only after the first has committed, on the first
// one's result.
func TestUpdateHoldsRowLock(t *testing.T) {
	pool := testPool(t)
	s, table := newTestStore(t, pool, WithCleanupInterval(0))
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

	// B's SELECT ... FOR UPDATE waits on A's row lock.
	eventually(t, "the second Update waiting on the row lock", func() bool {
		var n int
		err := pool.QueryRow(ctx(t), "SELECT count(*) FROM pg_stat_activity"+
			" WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%' AND query LIKE '%' || $1 || '%'", table).Scan(&n)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		return n == 1
	})
	if bCalled.Load() {
		t.Fatal("the second Update ran its fn while the first held the row")
	}
	// A plain Save waits too.
	doneSave := make(chan error, 1)
	go func() { doneSave <- s.Save(context.Background(), id, []byte("S"), time.Now().Add(time.Hour)) }()
	eventually(t, "a Save waiting on the row lock", func() bool {
		var n int
		err := pool.QueryRow(ctx(t), "SELECT count(*) FROM pg_stat_activity"+
			" WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%' AND query LIKE '%' || $1 || '%'", table).Scan(&n)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		return n == 1
	})

	release()
	if err := <-doneA; err != nil {
		t.Fatalf("first Update: %v", err)
	}
	if err := <-doneB; err != nil {
		t.Fatalf("second Update: %v", err)
	}
	if err := <-doneSave; err != nil {
		t.Fatalf("Save: %v", err)
	}
	// B and the Save ran in either order after A; B saw either A's or the
	// Save's result, never the data from before A. If B came first, the
	// Save then replaced its result; if the Save came first, B added to it.
	saw, _ := bSaw.Load().(string)
	want := map[string]string{"0A": "S", "S": "SB"}[saw]
	if want == "" {
		t.Fatalf("the second Update saw %q, want the first one's result %q (or the Save's)", saw, "0A")
	}
	got, _, _, err := s.Load(ctx(t), id)
	if err != nil || string(got) != want {
		t.Fatalf("after both (the second Update saw %q): %q, %v; want %q", saw, got, err, want)
	}
}

// A failed fn or a missing row leaves no transaction open: the connection
// goes back to the pool idle, and the row is not locked.
func TestUpdateLeavesNoTransaction(t *testing.T) {
	pool := testPool(t)
	s, table := newTestStore(t, pool, WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), func([]byte) ([]byte, error) { return nil, boom })
	if err != boom || !found {
		t.Fatalf("Update with a failing fn: found=%v err=%v; want true and fn's error itself", found, err)
	}
	if found, err := s.Update(ctx(t), storetest.NewID(), time.Now().Add(time.Hour), nil); found || err != nil {
		t.Fatalf("Update of a missing id: found=%v err=%v", found, err)
	}
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still acquired", n)
	}
	var open int
	if err := pool.QueryRow(ctx(t), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"+
		" AND state LIKE 'idle in transaction%' AND query LIKE '%' || $1 || '%'", table).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Fatalf("%d connections idle in a transaction", open)
	}
	// The row is free: a Save does not wait.
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Save(c, id, []byte("y"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Save after the failed Update: %v", err)
	}
}

// lockHolderPID returns the backend that holds the advisory lock with key,
// or 0.
func lockHolderPID(t *testing.T, pool *pgxpool.Pool, key int64) int32 {
	t.Helper()
	var pid int32
	err := pool.QueryRow(ctx(t), "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"+
		" AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"+
		" AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
		int64(uint64(key)>>32), int64(uint64(key)&0xffffffff)).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatalf("pg_locks: %v", err)
	}
	return pid
}

// The lock is a session-level advisory lock on the holder's connection: when
// that connection dies (its backend is terminated, as when the holder's
// process crashes), the server frees the lock and another Lock gets it.
func TestLockFreedWhenHolderConnectionDies(t *testing.T) {
	pool := testPool(t)
	holderPool := testPool(t) // the "crashing" process
	id := storetest.NewID()
	table := "sessions_test_" + randHex()
	holder := New(holderPool, WithTableName(table), WithCleanupInterval(0))
	other := New(pool, WithTableName(table), WithCleanupInterval(0))

	unlockDead, err := holder.Lock(ctx(t), id, time.Second, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockDead()
	key := holder.s.lockKey(id)
	pid := lockHolderPID(t, pool, key)
	if pid == 0 {
		t.Fatal("no backend holds the advisory lock")
	}
	if _, err := other.Lock(ctx(t), id, 200*time.Millisecond, time.Hour); err == nil {
		t.Fatal("a second holder got the lock")
	}

	var ok bool
	if err := pool.QueryRow(ctx(t), "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", pid, ok, err)
	}
	unlock, err := other.Lock(ctx(t), id, 5*time.Second, time.Hour)
	if err != nil {
		t.Fatalf("Lock after the holder's connection died: %v", err)
	}
	if p := lockHolderPID(t, pool, key); p == 0 || p == pid {
		t.Fatalf("lock holder after the takeover: pid %d (the dead one was %d)", p, pid)
	}
	// The dead holder's unlock fails quietly and frees nothing of the new
	// holder's.
	unlockDead()
	if _, err := holder.Lock(ctx(t), id, 200*time.Millisecond, time.Hour); err == nil {
		t.Fatal("the old holder's unlock freed the new holder's lock")
	}
	unlock()
	if p := lockHolderPID(t, pool, key); p != 0 {
		t.Fatalf("lock still held by %d after unlock", p)
	}
	// The pool destroys a broken connection in the background, so the dead
	// holder's goes back a little after its unlock.
	eventually(t, "every connection back in its pool after every unlock", func() bool {
		return holderPool.Stat().AcquiredConns()+pool.Stat().AcquiredConns() == 0
	})
}

// The lock's connection comes from WithLockPool when given, and goes back to
// it on unlock and when the holder's context ends.
func TestLockPool(t *testing.T) {
	pool := testPool(t)
	lockPool := testPool(t)
	s := New(pool, WithTableName("sessions_test_"+randHex()), WithCleanupInterval(0), WithLockPool(lockPool))
	id := storetest.NewID()
	unlock, err := s.Lock(ctx(t), id, time.Second, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n := lockPool.Stat().AcquiredConns(); n != 1 {
		t.Fatalf("lock pool: %d connections acquired while the lock is held, want 1", n)
	}
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("main pool: %d connections acquired while the lock is held, want 0", n)
	}
	unlock()
	if n := lockPool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("lock pool: %d connections acquired after unlock", n)
	}

	holderCtx, cancel := context.WithCancel(context.Background())
	if _, err := s.Lock(holderCtx, id, time.Second, time.Hour); err != nil {
		t.Fatal(err)
	}
	cancel()
	eventually(t, "the lock's connection back in the pool after its context ended", func() bool {
		return lockPool.Stat().AcquiredConns() == 0
	})
	if p := lockHolderPID(t, pool, s.s.lockKey(id)); p != 0 {
		t.Fatalf("lock still held by %d after its context ended", p)
	}
}

// Failing to get the lock within wait is an error that names the wait and
// does not pretend the caller's context ended.
func TestLockWaitElapsed(t *testing.T) {
	pool := testPool(t)
	s := New(pool, WithTableName("sessions_test_"+randHex()), WithCleanupInterval(0))
	id := storetest.NewID()
	unlock, err := s.Lock(ctx(t), id, time.Second, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, wait := range []time.Duration{0, 100 * time.Millisecond} {
		_, err := s.Lock(ctx(t), id, wait, time.Hour)
		if err == nil || !strings.HasPrefix(err.Error(), "pgstore: lock: ") {
			t.Fatalf("Lock(wait %v) of a held lock: %v", wait, err)
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Fatalf("Lock(wait %v): %v wraps a context error, but the caller's context is live", wait, err)
		}
	}
	if n := pool.Stat().AcquiredConns(); n != 1 {
		t.Fatalf("%d connections acquired, want only the holder's", n)
	}
}

func TestLockKey(t *testing.T) {
	a := New(lazyPool(t), WithTableName("a"), WithCleanupInterval(0))
	b := New(lazyPool(t), WithTableName("b"), WithCleanupInterval(0))
	if again := New(lazyPool(t), WithTableName("a"), WithCleanupInterval(0)); a.s.lockKey("x") != again.s.lockKey("x") {
		t.Fatal("two stores on one table give one session different lock keys")
	}
	if a.s.lockKey("x") == a.s.lockKey("y") {
		t.Fatal("two ids share a lock key")
	}
	if a.s.lockKey("x") == b.s.lockKey("x") {
		t.Fatal("two tables share a lock key")
	}
}

// Range streams: stopping early leaves the store usable and no connection
// acquired, and data handed to fn is fn's to keep.
func TestRangeStopsEarly(t *testing.T) {
	pool := testPool(t)
	s, table := newTestStore(t, pool, WithCleanupInterval(0))
	_, err := pool.Exec(ctx(t), "INSERT INTO "+pgx.Identifier{table}.Sanitize()+" (id, data, expires_at)"+
		" SELECT 'row' || i, repeat('x', 1000)::bytea, now() + interval '1 hour' FROM generate_series(1, 2000) i")
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
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections acquired after Range", n)
	}
	n := 0
	if err := s.Range(ctx(t), func(string, []byte, time.Time) bool { n++; return true }); err != nil || n != 2000 {
		t.Fatalf("full Range: %d sessions, err %v", n, err)
	}
	// fn may call the store.
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

// countingTracer counts the statements and batches a pool sends.
type countingTracer struct {
	queries, batches atomic.Int32
}

func (ct *countingTracer) TraceQueryStart(c context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	ct.queries.Add(1)
	return c
}
func (ct *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (ct *countingTracer) TraceBatchStart(c context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	ct.batches.Add(1)
	return c
}
func (ct *countingTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (ct *countingTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// An Update that finds its session sends two pipelined batches (BEGIN with
// the locking SELECT, the UPDATE with COMMIT) and no other statement.
func TestUpdateIsTwoBatches(t *testing.T) {
	testPool(t) // skips when the server is down
	cfg, err := pgxpool.ParseConfig(dsn())
	if err != nil {
		t.Fatal(err)
	}
	tracer := &countingTracer{}
	cfg.ConnConfig.Tracer = tracer
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, _ := newTestStore(t, pool, WithCleanupInterval(0))
	id := storetest.NewID()
	if err := s.Save(ctx(t), id, []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	inc := func(b []byte) ([]byte, error) { return append(b, 'x'), nil }
	if _, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), inc); err != nil {
		t.Fatal(err)
	}
	q0, b0 := tracer.queries.Load(), tracer.batches.Load()
	const n = 5
	for i := 0; i < n; i++ {
		if found, err := s.Update(ctx(t), id, time.Now().Add(time.Hour), inc); err != nil || !found {
			t.Fatalf("Update: found=%v err=%v", found, err)
		}
	}
	if q, b := tracer.queries.Load()-q0, tracer.batches.Load()-b0; q != 0 || b != 2*n {
		t.Fatalf("%d Updates sent %d statements and %d batches; want 0 and %d", n, q, b, 2*n)
	}
}

// Holding and releasing locks leaves no goroutine behind, whether the lock
// ends by unlock or by the end of its holder's context.
func TestLockLeavesNoGoroutine(t *testing.T) {
	pool := testPool(t)
	s := New(pool, WithTableName("sessions_test_"+randHex()), WithCleanupInterval(0))
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
	eventually(t, "the lock free", func() bool { return pool.Stat().AcquiredConns() == 0 })
	base := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		cycle()
	}
	eventually(t, "goroutines back to where they were", func() bool {
		return pool.Stat().AcquiredConns() == 0 && runtime.NumGoroutine() <= base
	})
}
