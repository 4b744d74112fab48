// Command chat is a chat front-end with a toy bot: each conversation's
// history lives in the visitor's server-side session, is rendered by the
// server on every page load, and grows by one streamed reply per turn.
//
//	go run ./chat                                   # memory store
//	go run ./chat -store sqlite -sqlite chat.db     # history survives a restart
//	go run ./chat -store redis                      # FASTSESSION_REDIS_ADDR, default 127.0.0.1:6379
//
// With sqlite or redis, set FASTSESSION_SECRET (openssl rand -hex 32) so
// that the cookies issued before a restart are still accepted after it.
//
// The visitor's message is stored, and a new session's cookie sent, before
// the reply starts to stream; the full reply is added to the history once
// the stream has ended, after the response headers went out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/_examples/internal/exampleutil"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/sqlitestore"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

func main() {
	storeName := flag.String("store", envOr("FASTSESSION_STORE", "memory"), "where sessions live: memory, redis or sqlite (env FASTSESSION_STORE)")
	redisAddr := flag.String("redis-addr", envOr("FASTSESSION_REDIS_ADDR", "127.0.0.1:6379"), "Redis address for -store redis (env FASTSESSION_REDIS_ADDR)")
	sqlitePath := flag.String("sqlite", "chat-sessions.db", "SQLite file for -store sqlite")
	maxMessages := flag.Int("max-messages", DefaultMaxMessages, "messages kept per conversation; the oldest turns are dropped")
	maxChats := flag.Int("max-chats", DefaultMaxChats, "conversations kept per session; the least recently used is dropped")
	tokenDelay := flag.Duration("token-delay", DefaultTokenDelay, "pause between two streamed tokens")
	flag.Parse()
	if *maxMessages < 2 || *maxChats < 1 {
		log.Fatal("-max-messages must be at least 2 and -max-chats at least 1")
	}

	store, closeStore, err := openStore(*storeName, *redisAddr, *sqlitePath)
	if err != nil {
		log.Fatal(err)
	}
	if *storeName != "memory" && os.Getenv("FASTSESSION_SECRET") == "" {
		log.Print("set FASTSESSION_SECRET (openssl rand -hex 32) for the history to survive a restart")
	}
	gin.SetMode(gin.ReleaseMode)
	r := newServer(config{
		Secret:      exampleutil.SecretKey(),
		Store:       store,
		MaxMessages: *maxMessages,
		MaxChats:    *maxChats,
		TokenDelay:  *tokenDelay,
	})

	ln, err := net.Listen("tcp", exampleutil.Addr())
	if err != nil {
		log.Fatal(err)
	}
	// Secure cookies are accepted from http://localhost and 127.0.0.1;
	// serve any other host over HTTPS.
	log.Printf("chat on http://%s/ (store: %s)", ln.Addr(), *storeName)

	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown) // lets streaming replies finish and be stored
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	if err := closeStore(); err != nil {
		log.Print(err)
	}
}

// openStore returns the named store and the function that closes it.
func openStore(name, redisAddr, sqlitePath string) (sessions.Store, func() error, error) {
	switch name {
	case "memory":
		st := memstore.New()
		return st, st.Close, nil
	case "redis":
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			_ = rdb.Close()
			return nil, nil, fmt.Errorf("redis at %s: %w (start redis-server, or use -store memory)", redisAddr, err)
		}
		return redisstore.New(rdb, redisstore.WithKeyPrefix("fastsession:chat:")), rdb.Close, nil
	case "sqlite":
		st, err := sqlitestore.Open(sqlitePath)
		if err != nil {
			return nil, nil, err
		}
		return st, st.Close, nil
	}
	return nil, nil, fmt.Errorf("-store %q: use memory, redis or sqlite", name)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
