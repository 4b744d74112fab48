package sessions

import (
	"context"
	"time"
)

// Store keeps encoded sessions on the server, keyed by session ID.
//
// The middleware is the only caller in normal use. It hands a store opaque
// bytes (the encoded session) and reads them back; a store never needs to
// understand them. A Store speaks in standard types only, so a store package
// does not have to import this package, and any type with these three methods
// is a Store.
//
// Every method must be safe for concurrent use by many goroutines, must
// honour the cancellation and deadline of ctx, and must report system errors
// (a connection refused, a timeout, a corrupt reply) as a non-nil error,
// wrapping the underlying error with %w. A store must never panic.
//
// Optional capabilities are separate interfaces that a store may also
// implement; the middleware detects them with a type assertion and falls back
// to these three methods when they are absent. See [Toucher].
//
// The package storetest checks a Store against this contract.
type Store interface {
	// Load returns the data saved under id and the time it expires.
	//
	// If no session is stored under id, or the stored one has expired (its
	// expiresAt is not after now), found is false and err is nil: a store
	// never returns an expired session, even before it has removed it. The err
	// value is used for system errors only.
	//
	// The caller treats data as read-only and may keep it; a store must
	// therefore never modify a slice after returning it. A store that does
	// not know the expiry of an entry returns the zero time.
	Load(ctx context.Context, id string) (data []byte, expiresAt time.Time, found bool, err error)

	// Save stores data under id, replacing whatever was stored there, so that
	// it can be loaded until expiresAt and not after. The caller never
	// modifies data once it has been passed to Save, so a store that keeps
	// bytes in memory may keep this very slice instead of a copy.
	//
	// expiresAt is always in the future when the middleware calls Save. A
	// store whose expiry has coarser precision rounds it up, never down.
	Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error

	// Delete removes the session stored under id. Deleting an id that is not
	// stored is not an error.
	Delete(ctx context.Context, id string) error
}

// Toucher is an optional interface for a [Store] that can move the expiry of
// a stored session without rewriting its data. When the idle timeout is on,
// the middleware extends a session that is read but not changed by calling
// Touch at most once per touch interval (see [WithTouchInterval]); a store
// without Touch gets a Save of the unchanged data instead.
type Toucher interface {
	// Touch sets the expiry of the session stored under id to expiresAt and
	// leaves its data as it is. Touching an id that is not stored (or has
	// expired) is not an error and stores nothing.
	Touch(ctx context.Context, id string, expiresAt time.Time) error
}

// Field is one key of a session with its encoded value, as stores that keep
// a session's keys separately see it.
type Field struct {
	Key   string
	Value []byte
}

// Delta is what one request changed in a stored session: applied in order,
// Clear removes every field, Delete removes the listed keys, and Set writes
// the listed fields. Header, when not nil, replaces the session's header
// (see SplitRecord); it changes when the session's user changes.
type Delta struct {
	Header []byte
	Clear  bool
	Delete []string
	Set    []Field
}

// DeltaSaver is an optional interface for a [Store] that keeps each key of
// a session as its own field (a Redis hash, for example). The middleware
// saves an existing session through SaveDelta, so two requests of one
// session that change different keys never undo each other's writes.
//
// Load still returns the whole session: JoinRecord builds it from the
// header and fields that Save stored (SplitRecord splits them).
type DeltaSaver interface {
	// SaveDelta applies d atomically to the session stored under id and
	// sets its expiry to expiresAt. If no live session is stored under id
	// (it expired, or was destroyed by another request), found is false,
	// err is nil, and nothing is stored: a delta never resurrects a session.
	SaveDelta(ctx context.Context, id string, d Delta, expiresAt time.Time) (found bool, err error)
}

// Updater is an optional interface for a [Store] that can change a stored
// session atomically, read-modify-write, for example under a row lock in a
// transaction. The middleware saves an existing session through Update,
// applying only this request's changes to what is stored now, so two
// requests of one session that change different keys never undo each
// other's writes.
type Updater interface {
	// Update calls fn with the data stored under id and stores what fn
	// returns, with expiry expiresAt, atomically with respect to every other
	// Save, Update and Delete of id. fn may be called more than once (by a
	// store that retries on conflict) and must not keep current. If fn
	// returns an error, nothing is stored and Update returns that error. If
	// no live session is stored under id, fn is not called, found is false,
	// err is nil, and nothing is stored.
	Update(ctx context.Context, id string, expiresAt time.Time, fn func(current []byte) ([]byte, error)) (found bool, err error)
}

// Locker is an optional interface for a [Store] that can serialise the
// requests of one session. It is used only with [WithLocking].
type Locker interface {
	// Lock waits at most wait (and no longer than ctx allows) until it holds
	// the lock of session id. If the wait elapses while another holder keeps
	// the lock, the error wraps ErrLocked (a store that does not import this
	// package wraps context.DeadlineExceeded instead); if ctx ends, it wraps
	// ctx's error; any other error is a store failure. The lock is then held until unlock is called or
	// ctx ends, whichever comes first (unlock is idempotent and safe to call
	// from any goroutine). A store that keeps the lock outside the process
	// gives it an expiry of lease, renews it while it is held, and stops
	// renewing when it is released, so the lock of a process that died is
	// free again at the latest lease later.
	Lock(ctx context.Context, id string, wait, lease time.Duration) (unlock func(), err error)
}

// UserIndexer is an optional interface for a [Store] that can list the
// sessions of a user (see Session.SetUser and Manager).
type UserIndexer interface {
	// LinkUser records that session id belongs to user, until expiresAt at
	// least. The middleware calls it after the session is saved.
	LinkUser(ctx context.Context, user, id string, expiresAt time.Time) error
	// UnlinkUser removes the link; a missing link is not an error.
	UnlinkUser(ctx context.Context, user, id string) error
	// UserSessions returns the IDs of the live sessions linked to user, in
	// no particular order. IDs whose session has expired or been deleted
	// are never returned (a store may prune them as it goes).
	UserSessions(ctx context.Context, user string) ([]string, error)
}

// Iterator is an optional interface for a [Store] that can walk every live
// session (see Manager.Range).
type Iterator interface {
	// Range calls fn for each live session, in no particular order, until
	// fn returns false or every session has been seen. Sessions saved or
	// deleted while Range runs may or may not be seen. data is read-only.
	Range(ctx context.Context, fn func(id string, data []byte, expiresAt time.Time) bool) error
}
