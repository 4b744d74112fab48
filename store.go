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
