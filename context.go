package sessions

import (
	"hash/maphash"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
)

// contextKey names a middleware's sessions, so that several middlewares
// (WithContextKey) can serve one request.
type contextKey string

// Default returns the session of the request, as attached by the middleware
// mounted with the default context key ("session"). It never returns nil and
// never panics: without such a middleware it returns an inert session whose
// Err is ErrNoMiddleware, and for a skipped request one whose Err is
// ErrSkipped. Inert sessions read as empty and store nothing.
//
// On a copy of the context (c.Copy(), for a goroutine) Default returns the
// request's session once the request itself has used it, whenever the copy
// was made; before that, an inert session whose Err is ErrCopiedContext.
func Default(c *gin.Context) *Session {
	return lookup(c, contextKey(DefaultContextKey))
}

// FromContext returns the session of the middleware mounted with
// WithContextKey(key). Like Default, it never returns nil.
func FromContext(c *gin.Context, key string) *Session {
	return lookup(c, contextKey(key))
}

func lookup(c *gin.Context, key contextKey) *Session {
	if c == nil {
		return &Session{inert: ErrNoMiddleware}
	}
	switch v := bound.get(binding{c: c, key: key}).(type) {
	case *Session:
		return v
	case *manager:
		return v.attach(c)
	}
	// Not a request the middleware is serving: a copy of one (c.Copy()),
	// found through the *http.Request it shares once the session is in use,
	// or a context without the middleware.
	if c.Request != nil {
		if s, ok := bound.get(binding{r: c.Request, key: key}).(*Session); ok {
			return s
		}
	}
	if c.Handler() == nil {
		// Only a copy has no handler chain: it cannot wrap the request's
		// writer, so it must not start the session.
		return &Session{inert: ErrCopiedContext}
	}
	return &Session{inert: ErrNoMiddleware}
}

// The middleware does not hang anything on the gin.Context: creating the
// context's Keys map would cost an allocation of a few hundred bytes on
// every request, sessions used or not. Instead, while a request is served,
// bound maps its context (and, once its session is in use, its
// *http.Request, which copies of the context share) to the middleware or
// the session. Entries are removed when the request ends, panics included.

// binding names a request, by its context or by its *http.Request, for one
// middleware.
type binding struct {
	c   *gin.Context
	r   *http.Request
	key contextKey
}

const bindingShards = 64

// registry is a sharded map of the requests being served.
type registry struct {
	seed   maphash.Seed
	shards [bindingShards]registryShard
}

type registryShard struct {
	mu sync.Mutex
	m  map[binding]any // *manager before the session is used, then *Session
	_  [48]byte        // keep neighbouring shards' locks off one cache line
}

var bound = newRegistry()

func newRegistry() *registry {
	r := &registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		// The zero binding names no request. It stays, so a shard's map
		// never becomes empty: the runtime draws a new hash seed each time
		// a map's last entry is deleted, which would cost more than the
		// rest of a binding's life.
		r.shards[i].m = map[binding]any{{}: nil}
	}
	return r
}

func (r *registry) shard(b binding) *registryShard {
	var h uint64
	if b.c != nil {
		h = maphash.Comparable(r.seed, b.c)
	} else {
		h = maphash.Comparable(r.seed, b.r)
	}
	return &r.shards[h%bindingShards]
}

func (r *registry) get(b binding) any {
	sh := r.shard(b)
	sh.mu.Lock()
	v := sh.m[b]
	sh.mu.Unlock()
	return v
}

func (r *registry) set(b binding, v any) {
	sh := r.shard(b)
	sh.mu.Lock()
	sh.m[b] = v
	sh.mu.Unlock()
}

// bindSession binds b to s unless b is bound to a Session already, which
// it returns instead.
func (r *registry) bindSession(b binding, s *Session) *Session {
	sh := r.shard(b)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur, ok := sh.m[b].(*Session); ok {
		return cur
	}
	sh.m[b] = s
	return s
}

// swap sets b to v and returns what it was: gin's HandleContext serves a
// request again through the same context, so bindings nest.
func (r *registry) swap(b binding, v any) (prev any) {
	sh := r.shard(b)
	sh.mu.Lock()
	prev = sh.m[b]
	sh.m[b] = v
	sh.mu.Unlock()
	return prev
}

// restore puts prev back under b, or removes b if prev is nil.
func (r *registry) restore(b binding, prev any) {
	sh := r.shard(b)
	sh.mu.Lock()
	sh.reset(b, prev)
	sh.mu.Unlock()
}

// reset is restore with the shard's lock held.
func (sh *registryShard) reset(b binding, prev any) {
	if prev == nil {
		delete(sh.m, b)
	} else {
		sh.m[b] = prev
	}
}

// release ends b's binding for m's request, restoring prev, unless m's
// session was used: that session is returned and b left bound to it, so
// the session can still be found while it is saved.
func (r *registry) release(b binding, prev any, m *manager) *Session {
	sh := r.shard(b)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s, ok := sh.m[b].(*Session); ok && s.m == m {
		return s
	}
	sh.reset(b, prev)
	return nil
}
