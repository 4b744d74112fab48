// Command redis is the counter example on Redis: run two copies on two ports
// and a visitor's count carries over from one to the other, as it would
// behind a load balancer.
//
//	FASTSESSION_SECRET=$(openssl rand -hex 32) ADDR=127.0.0.1:8080 go run ./redis &
//	FASTSESSION_SECRET=... ADDR=127.0.0.1:8081 go run ./redis &
//
// The Redis address comes from FASTSESSION_REDIS_ADDR (default
// 127.0.0.1:6379).
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/_examples/internal/exampleutil"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

// redisAddr is where the example finds Redis.
func redisAddr() string {
	if a := os.Getenv("FASTSESSION_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// newClient returns a client whose calls end when their context does.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
}

func newRouter(secret []byte, store sessions.Store, opts ...sessions.Option) *gin.Engine {
	r := gin.New()
	r.Use(gin.Recovery())
	r.Use(sessions.New(secret, append([]sessions.Option{
		sessions.WithStore(store),
		sessions.WithStoreTimeout(2 * time.Second),
	}, opts...)...))
	r.GET("/count", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		s.Set("count", n+1)
		c.JSON(http.StatusOK, gin.H{"count": n + 1})
	})
	return r
}

func main() {
	client := newClient(redisAddr())
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		log.Fatalf("redis at %s: %v", redisAddr(), err)
	}
	addr := exampleutil.Addr()
	r := newRouter(exampleutil.SecretKey(), redisstore.New(client))
	log.Printf("counter on Redis at http://%s/count", addr)
	log.Fatal(http.ListenAndServe(addr, r))
}
