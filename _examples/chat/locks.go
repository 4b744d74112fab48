package main

import (
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
)

// visitorLocks lets one changing request (POST) per session cookie run at a
// time. A session is loaded when a request starts and saved as a whole, so
// without it two tabs of one visitor sending at once would each save their
// own view, and the last save would drop the other's turn. Reads (GET) never
// wait: they change nothing.
//
// The locks live in this process. Several instances sharing a Redis store
// would need a lock in Redis instead, or a load balancer that sends each
// visitor to the same instance.
type visitorLocks struct {
	cookie string
	mu     sync.Mutex
	held   map[string]*visitorLock
}

type visitorLock struct {
	ch      chan struct{} // holds a token while the lock is taken
	waiters int           // requests holding or waiting for ch
}

func newVisitorLocks(cookieName string) *visitorLocks {
	return &visitorLocks{cookie: cookieName, held: map[string]*visitorLock{}}
}

// handle must run before the session middleware, so the session is loaded
// after the lock is taken and saved before it is released.
func (l *visitorLocks) handle(c *gin.Context) {
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
		c.Next()
		return
	}
	ck, err := c.Request.Cookie(l.cookie)
	if err != nil || ck.Value == "" {
		c.Next() // no session yet: nothing to overwrite
		return
	}
	key := ck.Value
	l.mu.Lock()
	v := l.held[key]
	if v == nil {
		v = &visitorLock{ch: make(chan struct{}, 1)}
		l.held[key] = v
	}
	v.waiters++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if v.waiters--; v.waiters == 0 {
			delete(l.held, key)
		}
		l.mu.Unlock()
	}()

	select {
	case v.ch <- struct{}{}:
	case <-c.Request.Context().Done():
		c.AbortWithStatus(http.StatusServiceUnavailable) // the visitor has gone
		return
	}
	defer func() { <-v.ch }()
	c.Next()
}
