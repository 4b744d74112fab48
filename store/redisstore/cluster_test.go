package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/redis/go-redis/v9"
)

const installRedis = "apt-get install -y redis-server redis-tools"

// freeClusterPort returns a loopback port below 55535 that is free, with
// its cluster bus port (port+10000) free as well.
func freeClusterPort(t *testing.T, taken map[int]bool) int {
	t.Helper()
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if port >= 55535 || taken[port] || taken[port+10000] {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		_ = bus.Close()
		taken[port], taken[port+10000] = true, true
		return port
	}
	t.Fatal("no free port pair (P, P+10000) found on 127.0.0.1")
	return 0
}

// startCluster starts three cluster-enabled redis-server processes on
// loopback, joins them into a cluster of three masters and waits until
// every node reports cluster_state:ok. It returns their addresses. Every
// process is killed when the test ends, passed or failed.
func startCluster(t *testing.T) []string {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		storetest.Unreachable(t, "redis-server", installRedis, err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		storetest.Unreachable(t, "redis-cli", installRedis, err)
	}
	dir := t.TempDir()
	taken := map[int]bool{}
	var addrs []string
	var logs []string
	for range 3 {
		port := freeClusterPort(t, taken)
		p := strconv.Itoa(port)
		logFile := filepath.Join(dir, "redis-"+p+".log")
		cmd := exec.Command(server,
			"--port", p,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes-"+p+".conf"),
			"--dir", dir,
			"--save", "",
			"--appendonly", "no",
			"--bind", "127.0.0.1",
			"--daemonize", "no",
			"--logfile", logFile,
		)
		cmd.SysProcAttr = childProcAttr()
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server on port %s: %v", p, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		addrs = append(addrs, "127.0.0.1:"+p)
		logs = append(logs, logFile)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", filepath.Base(l), tail(b, 2000))
			}
		}
	})

	// Each node answers PING.
	nodes := make([]*redis.Client, len(addrs))
	for i, a := range addrs {
		nodes[i] = redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1, DialTimeout: time.Second})
		defer nodes[i].Close()
		var last error
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			last = nodes[i].Ping(ctx).Err()
			cancel()
			if last == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis-server at %s does not answer PING: %v", a, last)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	// Every node reports cluster_state:ok.
	deadline := time.Now().Add(30 * time.Second)
	for i, n := range nodes {
		for {
			c, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := n.ClusterInfo(c).Result()
			cancel()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s did not reach cluster_state:ok within 30s; last CLUSTER INFO: %q, err: %v", addrs[i], info, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return addrs
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func TestCluster(t *testing.T) {
	addrs := startCluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = cc.Close() })

	// The client must see all three masters before the tests start.
	ctx := ctxT(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var masters atomic.Int32
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			masters.Add(1)
			return m.Ping(ctx).Err()
		})
		if err == nil && masters.Load() == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster client sees %d masters (err %v), want 3", masters.Load(), err)
		}
		cc.ReloadState(ctx)
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("contract", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) sessions.Store {
			s := redisstore.New(cc, redisstore.WithKeyPrefix("contract:"))
			t.Cleanup(func() { _ = s.Close() })
			return s
		})
	})

	t.Run("many sessions spread over every master", func(t *testing.T) {
		const workers, perWorker = 8, 200
		const prefix = "load:"
		s := redisstore.New(cc, redisstore.WithKeyPrefix(prefix))
		ctx := ctxT(t)
		exp := time.Now().Add(time.Hour)
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids := make([]string, perWorker)
				for i := range ids {
					ids[i] = storetest.NewID()
					if err := s.Save(ctx, ids[i], []byte(fmt.Sprintf("worker %d session %d", w, i)), exp); err != nil {
						errs <- fmt.Errorf("worker %d save %d: %w", w, i, err)
						return
					}
				}
				for i, id := range ids {
					want := fmt.Sprintf("worker %d session %d", w, i)
					got, gotExp, found, err := s.Load(ctx, id)
					if err != nil || !found || !bytes.Equal(got, []byte(want)) || gotExp.Before(exp) {
						errs <- fmt.Errorf("worker %d load %d: found=%v data=%q exp=%v err=%v", w, i, found, got, gotExp, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}

		var mu sync.Mutex
		perNode := map[string][2]int64{} // addr: DBSIZE, keys under prefix
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			size, err := m.DBSize(ctx).Result()
			if err != nil {
				return err
			}
			var n int64
			iter := m.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				n++
			}
			if err := iter.Err(); err != nil {
				return err
			}
			mu.Lock()
			perNode[m.Options().Addr] = [2]int64{size, n}
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(perNode) != 3 {
			t.Fatalf("counted keys on %d masters, want 3: %v", len(perNode), perNode)
		}
		var total int64
		for addr, c := range perNode {
			if c[0] == 0 || c[1] == 0 {
				t.Errorf("master %s holds DBSIZE %d, %d session keys: sessions are not spread over every master", addr, c[0], c[1])
			}
			total += c[1]
		}
		if total != workers*perWorker {
			t.Errorf("%d session keys over the masters, want %d (%v)", total, workers*perWorker, perNode)
		}
	})

	t.Run("touch and delete route to the key's master", func(t *testing.T) {
		s := redisstore.New(cc, redisstore.WithKeyPrefix("touch:"))
		ctx := ctxT(t)
		for i := range 30 {
			id := storetest.NewID()
			if err := s.Save(ctx, id, []byte("t"), time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			newExp := time.Now().Add(time.Hour)
			if err := s.Touch(ctx, id, newExp); err != nil {
				t.Fatalf("touch %d: %v", i, err)
			}
			if _, exp, found, err := s.Load(ctx, id); err != nil || !found || exp.Before(newExp) {
				t.Fatalf("load after touch %d: found=%v exp=%v err=%v", i, found, exp, err)
			}
			if err := s.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			if _, _, found, err := s.Load(ctx, id); err != nil || found {
				t.Fatalf("load after delete %d: found=%v err=%v", i, found, err)
			}
		}
	})

	t.Run("user index and range span every master", func(t *testing.T) {
		const prefix = "span:"
		s := redisstore.New(cc, redisstore.WithKeyPrefix(prefix))
		ctx := ctxT(t)
		const n = 300
		user := "carol-" + storetest.NewID()[:8]
		exp := time.Now().Add(time.Hour)
		want := map[string]string{}
		var ids []string
		for i := range n {
			id := storetest.NewID()
			data := sessions.JoinRecord(sessions.RecordHeader(time.Now(), user), []sessions.Field{{Key: "i", Value: []byte(strconv.Itoa(i))}})
			if err := s.Save(ctx, id, data, exp); err != nil {
				t.Fatal(err)
			}
			if err := s.LinkUser(ctx, user, id, exp); err != nil {
				t.Fatal(err)
			}
			want[id] = string(data)
			ids = append(ids, id)
		}
		// The sessions live on every master.
		var mu sync.Mutex
		perMaster := map[string]int{}
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			iter := m.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			k := 0
			for iter.Next(ctx) {
				if !strings.HasPrefix(iter.Val(), prefix+"user:") {
					k++
				}
			}
			mu.Lock()
			perMaster[m.Options().Addr] = k
			mu.Unlock()
			return iter.Err()
		}); err != nil {
			t.Fatal(err)
		}
		for addr, k := range perMaster {
			if k == 0 {
				t.Fatalf("master %s holds none of the sessions: %v", addr, perMaster)
			}
		}

		got, err := s.UserSessions(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		sorted := slices.Sorted(maps.Keys(want))
		if !slices.Equal(got, sorted) {
			t.Fatalf("UserSessions: %d IDs, want the %d linked", len(got), len(sorted))
		}
		for _, id := range ids[:100] {
			if err := s.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			delete(want, id)
		}
		got, err = s.UserSessions(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if sorted = slices.Sorted(maps.Keys(want)); !slices.Equal(got, sorted) {
			t.Fatalf("UserSessions after deleting 100: %d IDs, want %d", len(got), len(sorted))
		}
		if card := cc.SCard(ctx, prefix+"user:"+user).Val(); card != int64(len(want)) {
			t.Fatalf("the user set holds %d IDs after UserSessions, want %d (pruned)", card, len(want))
		}

		seen := map[string]int{}
		if err := s.Range(ctx, func(id string, data []byte, _ time.Time) bool {
			seen[id]++
			if w, ok := want[id]; !ok || string(data) != w {
				t.Errorf("Range gave %s, %d bytes: not a live session of this test", id, len(data))
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(want) {
			t.Errorf("Range saw %d sessions, want %d", len(seen), len(want))
		}
		for id, k := range seen {
			if k != 1 {
				t.Errorf("Range saw %s %d times", id, k)
			}
		}
	})

	t.Run("a lock of a closed client frees within its lease", func(t *testing.T) {
		s := redisstore.New(cc, redisstore.WithKeyPrefix("lock-test:"))
		ctx := ctxT(t)
		holder := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRetries: -1})
		crashed := redisstore.New(holder, redisstore.WithKeyPrefix("lock-test:"))
		holderCtx, stopHolder := context.WithCancel(context.Background())
		defer stopHolder()
		id := storetest.NewID()
		const lease = time.Second
		if _, err := crashed.Lock(holderCtx, id, 5*time.Second, lease); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lock(ctx, id, 0, time.Minute); !errors.Is(err, redisstore.ErrLocked) {
			t.Fatalf("the lock is not held: %v", err)
		}
		if err := holder.Close(); err != nil {
			t.Fatal(err)
		}
		unlock, err := s.Lock(ctx, id, lease+5*time.Second, time.Minute)
		if err != nil {
			t.Fatalf("the lock of a closed client is not free within its lease and 5s of slack: %v", err)
		}
		unlock()
	})
}
