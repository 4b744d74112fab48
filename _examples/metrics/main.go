// Command metrics is the visit counter with Prometheus metrics: session
// events, how long sessions last, store call latency and errors, and the
// number of live sessions, served on /metrics.
//
//	go run ./metrics
//	curl -c jar -b jar http://127.0.0.1:8080/count    # run it a few times
//	curl -c jar -b jar -X POST http://127.0.0.1:8080/logout
//	curl http://127.0.0.1:8080/metrics
//
// The metrics:
//
//	fastsession_session_events_total{kind}          counter: created, regenerated, destroyed, expired, unknown, rejected, store_error
//	fastsession_session_age_seconds{kind}           histogram: how long sessions lived, for destroyed, expired, regenerated
//	fastsession_store_call_duration_seconds{op}     histogram: store call latency, by op (load, save, update, delete, ...)
//	fastsession_store_call_errors_total{op}         counter: failed store calls, by op
//	fastsession_sessions_live                       gauge: live sessions, counted at scrape time with Manager.Range
//
// Counters give rates: sessions created per second is
// rate(fastsession_session_events_total{kind="created"}[5m]).
package main

import (
	"log"
	"net/http"
	"slices"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/_examples/internal/exampleutil"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newApp returns the counter app and the registry its /metrics serves. The
// registry is the app's own, not prometheus.DefaultRegisterer, so that
// several apps (or tests) can live in one process. The store must implement
// sessions.Iterator for fastsession_sessions_live (memstore, the default,
// does); with another, that gauge reports an error and the rest still works.
func newApp(secret []byte, opts ...sessions.Option) (*gin.Engine, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	obs := newSessionMetrics(reg)
	mgr := sessions.NewManager(secret, append(slices.Clip(opts), sessions.WithObserver(obs))...)
	reg.MustRegister(newLiveSessions(mgr))

	r := gin.New()
	r.Use(gin.Recovery())
	// Mounted before the sessions middleware, which therefore does not run
	// for scrapes: a scraper has no session.
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      log.Default(),
		ErrorHandling: promhttp.ContinueOnError, // one failing collector does not hide the others
	})))
	r.Use(mgr.Middleware())
	r.GET("/count", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := sessions.GetAs[int](s, "count")
		s.Set("count", n+1) // saved automatically, no Save() needed
		c.JSON(http.StatusOK, gin.H{"count": n + 1})
	})
	// POST, so that another site cannot end the session: the SameSite=Lax
	// cookie is not sent with cross-site POSTs.
	r.POST("/logout", func(c *gin.Context) {
		if err := sessions.Default(c).Destroy(); err != nil {
			c.AbortWithStatus(http.StatusServiceUnavailable)
			return
		}
		c.JSON(http.StatusOK, gin.H{"logged_out": true})
	})
	return r, reg
}

func main() {
	addr := exampleutil.Addr()
	r, reg := newApp(exampleutil.SecretKey())
	// The usual process and Go runtime metrics, on the same registry.
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	log.Printf("counter on http://%s/count, logout with POST /logout, metrics on http://%s/metrics", addr, addr)
	log.Fatal(http.ListenAndServe(addr, r))
}
