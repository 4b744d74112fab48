package sessions

import "github.com/gin-gonic/gin"

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
	if s := bound.session(c, key); s != nil {
		return s
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
