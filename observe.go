package sessions

import (
	"context"
	"time"
)

// Observer receives what happens to sessions and how long store calls take,
// for metrics: sessions created per second, how long sessions last, store
// latency and errors. Pass one with WithObserver. Its methods are called on
// the request's goroutine, synchronously: they must be quick and safe for
// concurrent use. _examples/metrics wires one to Prometheus.
type Observer interface {
	// SessionEvent reports one event of one session.
	SessionEvent(ctx context.Context, e Event)
	// StoreCall reports one call to the store: op is "load", "save",
	// "save_delta", "update", "delete", "touch", "lock", "link_user" or
	// "unlink_user"; err is what the store returned.
	StoreCall(ctx context.Context, op string, d time.Duration, err error)
}

// EventKind is the kind of a session Event.
type EventKind int

// The kinds of session events.
const (
	// EventCreated: a new session was stored for the first time.
	EventCreated EventKind = iota + 1
	// EventRegenerated: a session was stored under a new ID (Regenerate).
	EventRegenerated
	// EventDestroyed: a session was ended by Destroy or by the Manager.
	EventDestroyed
	// EventExpired: a request presented a session past its absolute
	// lifetime; it was deleted. (Sessions that expire unseen, or by their
	// idle timeout, leave the store without an event.)
	EventExpired
	// EventUnknown: a request presented a validly signed cookie whose
	// session is not stored (it expired or was destroyed); it got a fresh
	// session.
	EventUnknown
	// EventRejected: a request presented a cookie that failed the checks
	// (Reason says which); it got a fresh session.
	EventRejected
	// EventStoreError: a store call failed (Reason holds the error).
	EventStoreError
)

var eventNames = [...]string{"", "created", "regenerated", "destroyed", "expired", "unknown", "rejected", "store_error"}

// String returns the event kind's name in lower case, such as "created".
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "invalid"
}

// Event is one thing that happened to a session.
type Event struct {
	Kind EventKind
	// Ref is a short hash of the session ID (see Session.Ref), or "" when
	// there is no session ID (EventRejected).
	Ref string
	// Reason explains EventRejected and EventStoreError. It never holds a
	// cookie value or a session ID.
	Reason string
	// Age is how long the session had lived, for EventRegenerated,
	// EventDestroyed and EventExpired; 0 when unknown (a session ended by
	// the Manager).
	Age time.Duration
}

// WithObserver sets an Observer for session events and store call timings.
// The default is none, which costs nothing.
func WithObserver(o Observer) Option {
	return func(c *config) { c.observer = o }
}

func noTrack(error) {}

// track starts timing a store call; call the result with the call's error.
func (m *manager) track(ctx context.Context, op string) func(error) {
	o := m.cfg.observer
	if o == nil {
		return noTrack
	}
	start := time.Now()
	return func(err error) { o.StoreCall(ctx, op, time.Since(start), err) }
}

// event reports e to the observer, if any.
func (m *manager) event(ctx context.Context, kind EventKind, id, reason string, age time.Duration) {
	if o := m.cfg.observer; o != nil {
		o.SessionEvent(ctx, Event{Kind: kind, Ref: logID(id), Reason: reason, Age: age})
	}
}
