package sessions

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where
// one applies; match them with errors.Is.
var (
	// ErrHeadersWritten reports a change that needs a Set-Cookie header
	// (a new session, a regenerated ID) made after the response headers were
	// sent. The change is not stored, because the client could never present
	// its ID; the middleware logs it at error level.
	ErrHeadersWritten = errors.New("sessions: response headers already written")

	// ErrSkipped is returned by Save, Regenerate and Destroy of the inert
	// session given to a skipped request (see WithSkipHeader and
	// WithSkipper), and reported by its Err.
	ErrSkipped = errors.New("sessions: sessions are skipped for this request")

	// ErrTooLarge reports an encoded session larger than the limit set with
	// WithMaxSize. The stored session is left as it was.
	ErrTooLarge = errors.New("sessions: session too large")

	// ErrStore wraps every error that comes from the Store, so that
	// errors.Is(err, ErrStore) tells a store outage from a programming
	// error. The store's own error is wrapped too.
	ErrStore = errors.New("sessions: store error")

	// ErrEncode reports a value that the codec cannot encode, such as a
	// struct type that was not registered with Register, or a channel.
	ErrEncode = errors.New("sessions: cannot encode value")

	// ErrDecode reports stored bytes that cannot be decoded: corrupt data
	// or a value of a type this program does not know.
	ErrDecode = errors.New("sessions: cannot decode value")

	// ErrNoMiddleware is reported by the inert session that Default and
	// FromContext return when no session middleware with that context key
	// ran for the request.
	ErrNoMiddleware = errors.New("sessions: no session middleware for this context key")

	// ErrCopiedContext is reported by the inert session that Default and
	// FromContext return for a copy of the gin.Context (c.Copy()) when the
	// request has not used its session yet, or has no session middleware. A
	// copy cannot take the request's response writer over, so it cannot
	// start the session: call Default(c) in the handler first, or hand the
	// *Session itself to the goroutine. Once the request has used its
	// session, every copy of its context shares it.
	ErrCopiedContext = errors.New("sessions: session first used through a copy of the gin.Context; call sessions.Default(c) before c.Copy()")

	// ErrLocked reports a request that could not get its session's lock
	// within the wait set by WithLocking. The default error handler answers
	// it with 503.
	ErrLocked = errors.New("sessions: session is locked by another request")

	// ErrNotSupported reports a Manager call that the store cannot serve,
	// such as listing a user's sessions on a store without a user index.
	ErrNotSupported = errors.New("sessions: not supported by this store")

	// ErrRequestDone reports a change made after the handler chain returned,
	// for example from a goroutine that outlived its request. It is not
	// stored.
	ErrRequestDone = errors.New("sessions: request already completed")
)
