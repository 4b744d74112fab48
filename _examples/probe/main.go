// Command probe shows the skip header: a load balancer's health check sends
// X-FastSession-Skip: skip and bypasses sessions, so it never creates
// sessions or touches the store, however often it calls.
//
// The header only turns sessions off for that request; it grants nothing.
package main

import (
	"log"
	"net/http"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/_examples/internal/exampleutil"
	"github.com/gin-gonic/gin"
)

func newRouter(secret []byte, opts ...sessions.Option) *gin.Engine {
	opts = append([]sessions.Option{sessions.WithSkipHeader("X-FastSession-Skip", "skip")}, opts...)
	r := gin.New()
	r.Use(gin.Recovery())
	r.Use(sessions.New(secret, opts...))
	// /healthz touches the session like any handler might (a shared
	// helper, a logging middleware); with the header, that costs nothing.
	r.GET("/healthz", func(c *gin.Context) {
		sessions.Default(c).Set("last_probe", "now")
		c.String(http.StatusOK, "ok")
	})
	r.GET("/", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "visits")
		s.Set("visits", n+1)
		c.String(http.StatusOK, "hello, visit %d", n+1)
	})
	return r
}

func main() {
	addr := exampleutil.Addr()
	log.Printf("try: curl -i -H 'X-FastSession-Skip: skip' http://%s/healthz", addr)
	log.Fatal(http.ListenAndServe(addr, newRouter(exampleutil.SecretKey())))
}
