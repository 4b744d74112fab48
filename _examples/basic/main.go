// Command basic is the smallest FastSession app: a visit counter on the
// default memory store.
//
//	go run ./basic
//	curl -c jar -b jar http://127.0.0.1:8080/count   # run it a few times
package main

import (
	"log"
	"net/http"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/_examples/internal/exampleutil"
	"github.com/gin-gonic/gin"
)

func newRouter(secret []byte, opts ...sessions.Option) *gin.Engine {
	r := gin.New()
	r.Use(gin.Recovery())
	r.Use(sessions.New(secret, opts...))
	r.GET("/count", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		s.Set("count", n+1) // saved automatically, no Save() needed
		c.JSON(http.StatusOK, gin.H{"count": n + 1})
	})
	return r
}

func main() {
	addr := exampleutil.Addr()
	// Secure cookies are accepted from http://localhost and 127.0.0.1 by
	// browsers and curl; serve anything else over HTTPS.
	r := newRouter(exampleutil.SecretKey())
	log.Printf("counter on http://%s/count", addr)
	log.Fatal(http.ListenAndServe(addr, r))
}
