package sessions

import (
	"math/bits"
	"net/http"
	"sync"
	"unsafe"

	"github.com/gin-gonic/gin"
)

// The middleware does not hang anything on the gin.Context: creating the
// context's Keys map would cost an allocation of a few hundred bytes on
// every request, sessions used or not. Instead, while a request is served,
// bound maps its context (and, once its session is in use, its
// *http.Request, which copies of the context share) to the middleware or
// the session. Entries are removed when the request ends, panics included.

// binding names a request, by its context or by its *http.Request, for one
// middleware. The zero binding names no request.
type binding struct {
	c   *gin.Context
	r   *http.Request
	key contextKey
}

const (
	bindingShardBits = 6
	bindingShards    = 1 << bindingShardBits
	// shardSlots is how many bindings a shard holds inline; more go to its
	// overflow map. 64 shards of 8 cover hundreds of requests in flight.
	shardSlots = 8
)

// registry is a sharded table of the requests being served. Each shard
// keeps a few bindings in a small array, of which only the entries in use
// are compared (no hashing beyond the choice of shard), and the rest in a
// map.
type registry struct {
	shards [bindingShards]registryShard
}

// used has a bit per inline entry: this fails to compile if they outgrow it.
const _ = uint8(1<<shardSlots - 1)

type registryShard struct {
	mu   sync.Mutex
	used uint8 // bit i set: e[i] holds a binding
	e    [shardSlots]registryEntry
	more map[binding]any // the bindings that found e full; nil until needed
	_    [16]byte        // keep neighbouring shards' locks off one cache line
}

type registryEntry struct {
	b binding // zero: the entry is free
	v any     // *manager before the session is used, then *Session
}

var bound registry

// shard picks b's shard from the address of its context or request: the
// object is alive, and does not move, while the request is served.
func (r *registry) shard(b binding) *registryShard {
	p := uintptr(unsafe.Pointer(b.c))
	if p == 0 {
		p = uintptr(unsafe.Pointer(b.r))
	}
	return &r.shards[(uint64(p)*0x9e3779b97f4a7c15)>>(64-bindingShardBits)]
}

// find returns the index of b's inline entry, or -1. Only the entries in
// use are compared: usually one or two. The caller holds the lock.
func (sh *registryShard) find(b binding) int {
	for u := sh.used; u != 0; u &= u - 1 {
		if i := bits.TrailingZeros8(u); sh.e[i].b == b {
			return i
		}
	}
	return -1
}

// load returns what b is bound to, or nil. The caller holds the lock.
func (sh *registryShard) load(b binding) any {
	if i := sh.find(b); i >= 0 {
		return sh.e[i].v
	}
	if sh.more == nil {
		return nil
	}
	return sh.more[b]
}

// store binds b to v, or removes b if v is nil. The caller holds the lock.
func (sh *registryShard) store(b binding, v any) {
	if i := sh.find(b); i >= 0 {
		if v == nil {
			sh.e[i].set(binding{}, nil)
			sh.used &^= 1 << i
		} else {
			sh.e[i].v = v
		}
		return
	}
	if sh.more != nil {
		if _, ok := sh.more[b]; ok {
			if v == nil {
				delete(sh.more, b)
			} else {
				sh.more[b] = v
			}
			return
		}
	}
	switch {
	case v == nil:
	case sh.used != 1<<shardSlots-1:
		i := bits.TrailingZeros8(^sh.used)
		sh.e[i].set(b, v)
		sh.used |= 1 << i
	default:
		if sh.more == nil {
			// The zero binding stays in the map, so it never becomes
			// empty: the runtime draws a new hash seed each time a map's
			// last entry is deleted.
			sh.more = map[binding]any{{}: nil}
		}
		sh.more[b] = v
	}
}

// set makes e bind b to v. It writes the fields one by one: while the
// garbage collector marks, an entry written whole goes through the
// runtime's bulk write barrier, several times the cost of the inline
// barriers of single pointer writes.
func (e *registryEntry) set(b binding, v any) {
	e.b.c = b.c
	e.b.r = b.r
	e.b.key = b.key
	e.v = v
}

func (r *registry) get(b binding) any {
	sh := r.shard(b)
	sh.mu.Lock()
	v := sh.load(b)
	sh.mu.Unlock()
	return v
}

func (r *registry) set(b binding, v any) {
	sh := r.shard(b)
	sh.mu.Lock()
	sh.store(b, v)
	sh.mu.Unlock()
}

// swap sets b to v and returns what it was: gin's HandleContext serves a
// request again through the same context, so bindings nest.
func (r *registry) swap(b binding, v any) (prev any) {
	sh := r.shard(b)
	sh.mu.Lock()
	prev = sh.load(b)
	sh.store(b, v)
	sh.mu.Unlock()
	return prev
}

// restore puts prev back under b, or removes b if prev is nil.
func (r *registry) restore(b binding, prev any) { r.set(b, prev) }

// session returns the Session of the request served through c under key,
// making it on first use (attach), or nil if c is not a request a
// middleware of that key is serving.
func (r *registry) session(c *gin.Context, key contextKey) *Session {
	b := binding{c: c, key: key}
	sh := r.shard(b)
	sh.mu.Lock()
	switch v := sh.load(b).(type) {
	case *Session:
		sh.mu.Unlock()
		return v
	case *manager:
		s := v.attach(c)
		sh.store(b, s)
		sh.mu.Unlock()
		if s.req != nil {
			// Copies of c share the request: they find the session by it.
			r.set(binding{r: s.req, key: key}, s)
		}
		return s
	}
	sh.mu.Unlock()
	return nil
}

// release ends b's binding for m's request, restoring prev, unless m's
// session was used: that session is returned. If the session can still be
// found while it is saved without b, through its request, b is released
// all the same and released reports it; otherwise b stays bound to the
// session and the caller restores prev when the session is saved.
func (r *registry) release(b binding, prev any, m *manager) (s *Session, released bool) {
	sh := r.shard(b)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.load(b).(*Session)
	if !ok || s.m != m {
		sh.store(b, prev)
		return nil, true
	}
	if prev == nil && s.req != nil && s.req == b.c.Request {
		sh.store(b, nil)
		return s, true
	}
	return s, false
}
