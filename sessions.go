package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

// manager is one configured middleware.
type manager struct {
	cfg        config
	store      Store
	toucher    Toucher
	deltaSaver DeltaSaver
	updater    Updater
	// memstore is the store when it is the built-in memory store itself
	// (not a wrapper of it): its writes then build the new data straight
	// into the store's memory.
	memstore  *memstore.Store
	locker    Locker
	userIndex UserIndexer
	iterator  Iterator
	cookie    *cookieCodec
	key       contextKey // the name its requests are bound under (WithContextKey)
	inert     *Session   // handed to skipped requests; never changes
}

// New returns the session middleware. secretKey signs the session cookies;
// it must be at least 32 bytes, random, and kept secret (load it from the
// environment or a secret manager). Rotate it with WithPreviousKeys.
//
// New panics if the key is too short or an option is invalid or contradicts
// another, with a message that says what to fix: that is a programming error
// found at start-up. Nothing panics per request.
//
// Each request gets a *Session (read it with Default, or FromContext for a
// middleware mounted under another context key), loaded only if a handler
// uses it and saved automatically. See the package documentation for the
// lifecycle. New(key, opts...) is NewManager(key, opts...).Middleware(); use
// NewManager to also manage sessions outside requests.
//
// So that shared caches never hand one visitor's session to another, the
// response of a request that used its session says "Vary: Cookie", and a
// response that sets or expires the session cookie says
// `Cache-Control: no-cache="Set-Cookie"` unless its Cache-Control already
// has no-store or no-cache. The handler's own values are kept.
func New(secretKey []byte, opts ...Option) gin.HandlerFunc {
	return NewManager(secretKey, opts...).Middleware()
}

func newManager(secretKey []byte, opts []Option) *manager {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	cfg.validate(secretKey)
	if len(cfg.problems) > 0 {
		panic("sessions.New: " + strings.Join(cfg.problems, "; "))
	}
	if cfg.store == nil {
		cfg.store = memstore.New()
	}
	m := &manager{
		cfg:    cfg,
		store:  cfg.store,
		cookie: newCookieCodec(&cfg, secretKey),
		key:    contextKey(cfg.contextKey),
	}
	m.toucher, _ = cfg.store.(Toucher)
	m.deltaSaver, _ = cfg.store.(DeltaSaver)
	m.updater, _ = cfg.store.(Updater)
	m.memstore, _ = cfg.store.(*memstore.Store)
	m.userIndex, _ = cfg.store.(UserIndexer)
	m.iterator, _ = cfg.store.(Iterator)
	if cfg.lockWait > 0 {
		if m.locker, _ = cfg.store.(Locker); m.locker == nil {
			panic(fmt.Sprintf("sessions.New: WithLocking: the store (%T) does not implement sessions.Locker; use a store that does (memstore, redisstore, pgstore, mysqlstore, sqlitestore) or leave locking off", cfg.store))
		}
	}
	m.inert = &Session{m: m, inert: ErrSkipped}
	return m
}

func (m *manager) handle(c *gin.Context) {
	b := binding{c: c, key: m.key}
	if m.skip(c) {
		prev := bound.swap(b, m.inert)
		defer bound.restore(b, prev)
		c.Next()
		return
	}
	prev := bound.swap(b, m)
	completed := false
	defer func() {
		s, released := bound.release(b, prev, m)
		if s == nil {
			return // the session was never used
		}
		defer func() {
			if !released {
				bound.restore(b, prev)
			}
			if s.req != nil {
				bound.restore(binding{r: s.req, key: m.key}, nil)
			}
		}()
		if completed {
			s.finish()
		} else {
			s.abandon()
		}
	}()
	c.Next()
	completed = true
}

// abandon runs when a handler panicked: the session saves nothing (not
// even when a recovery middleware then writes an error response through the
// wrapped writer), and its lock, if any, is released.
func (s *Session) abandon() {
	s.mu.Lock()
	s.done = true
	unlock := s.unlock
	s.mu.Unlock()
	if unlock != nil {
		unlock()
	}
}

// attach makes the request's Session on first use: it wraps the current
// response writer, so every write from here on saves the session first.
// The caller binds the Session to the request in place of the manager,
// holding the binding's lock throughout, so the goroutines of one request
// that use the session at once make it once.
func (m *manager) attach(c *gin.Context) *Session {
	s := &Session{m: m, c: c, req: c.Request}
	s.w.ResponseWriter = c.Writer
	s.w.s = s
	c.Writer = &s.w
	return s
}

// storeContext returns the context for one store call. Writes are not
// cancelled with the request, so a reply streamed to a visitor who then
// leaves is still recorded; every call is bounded by WithStoreTimeout.
func (m *manager) storeContext(c *gin.Context, write bool) (context.Context, context.CancelFunc) {
	ctx := c.Request.Context()
	if write && ctx.Done() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	if m.cfg.storeTimeout > 0 {
		return context.WithTimeout(ctx, m.cfg.storeTimeout)
	}
	return ctx, nop
}

func nop() {}

// fail logs err and hands it to the error handler. If the handler answers
// the request from inside a request handler, the rest of what that request
// handler writes is dropped.
func (m *manager) fail(s *Session, err error) {
	c := s.c
	level := slog.LevelError
	msg := "session could not be saved"
	switch {
	case s.state == failed:
		msg = "session could not be loaded"
	case errors.Is(err, ErrHeadersWritten):
		msg = "session change lost"
	}
	m.cfg.logger.LogAttrs(c.Request.Context(), level, msg,
		slog.String("session", logID(s.id)), slog.String("error", err.Error()))
	if errors.Is(err, ErrStore) {
		m.event(c.Request.Context(), EventStoreError, s.id, err.Error(), 0)
	}
	wasSent := s.w.sent()
	s.w.committing = true
	m.cfg.errorHandler(c, err)
	s.w.committing = false
	if !wasSent && s.w.sent() {
		s.w.discard = true
	}
}

// debug logs at debug level, at no cost when debug logging is off.
func (m *manager) debug(c *gin.Context, msg string, attrs ...slog.Attr) {
	ctx := c.Request.Context()
	if m.cfg.logger.Enabled(ctx, slog.LevelDebug) {
		m.cfg.logger.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
	}
}

// debugSession logs a session event at debug level, computing the ID's
// hash only when debug logging is on.
func (m *manager) debugSession(c *gin.Context, msg, id string) {
	ctx := c.Request.Context()
	if m.cfg.logger.Enabled(ctx, slog.LevelDebug) {
		m.cfg.logger.LogAttrs(ctx, slog.LevelDebug, msg, slog.String("session", logID(id)))
	}
}

// DefaultErrorHandler is the error handler used unless WithErrorHandler
// sets another. If the response has not started, it aborts the chain and
// answers 503 {"error":"session store unavailable"} when errors.Is(err,
// ErrStore), 503 {"error":"session busy, try again"} for ErrLocked, or 500 {"error":"session could not be saved"} otherwise. If the
// response has started it does nothing: the middleware has logged err.
func DefaultErrorHandler(c *gin.Context, err error) {
	if c.Writer.Written() {
		return
	}
	if errors.Is(err, ErrStore) {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "session store unavailable"})
		return
	}
	if errors.Is(err, ErrLocked) {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "session busy, try again"})
		return
	}
	c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "session could not be saved"})
}

// String describes the middleware's configuration without its secrets.
func (m *manager) String() string {
	return fmt.Sprintf("sessions(cookie=%q, key=%q)", m.cfg.cookieName, m.cfg.contextKey)
}
