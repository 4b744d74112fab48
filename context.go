package sessions

import "github.com/gin-gonic/gin"

// contextKey is the type of the keys under which sessions hang on a
// gin.Context, so they never collide with an app's own string keys.
type contextKey string

// Default returns the session of the request, as attached by the middleware
// mounted with the default context key ("session"). It never returns nil and
// never panics: without such a middleware it returns an inert session whose
// Err is ErrNoMiddleware, and for a skipped request one whose Err is
// ErrSkipped. Inert sessions read as empty and store nothing.
//
// On a copy of the context (c.Copy(), for a goroutine) Default returns the
// request's session if the request used it before the copy was made, and
// otherwise an inert session whose Err is ErrCopiedContext.
func Default(c *gin.Context) *Session {
	return lookup(c, contextKey(DefaultContextKey))
}

// FromContext returns the session of the middleware mounted with
// WithContextKey(key). Like Default, it never returns nil.
func FromContext(c *gin.Context, key string) *Session {
	return lookup(c, contextKey(key))
}

func lookup(c *gin.Context, key contextKey) *Session {
	if v, ok := c.Get(key); ok {
		switch v := v.(type) {
		case *Session:
			return v
		case *manager:
			if c.Handler() == nil {
				// Only a copy has no handler chain: it cannot wrap the
				// request's writer, so it must not start the session.
				return &Session{inert: ErrCopiedContext}
			}
			return v.attach(c)
		}
	}
	return &Session{inert: ErrNoMiddleware}
}
