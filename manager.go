package sessions

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
)

// Manager is a configured session middleware together with the operations
// that work outside a request: listing a user's sessions, ending one or all
// of them ("log out everywhere", after a password change), and walking every
// session. Make one with NewManager, mount Middleware, and keep the Manager
// for admin and account handlers. Its methods are safe for concurrent use.
type Manager struct {
	m *manager
}

// SessionInfo describes a stored session without revealing its ID.
type SessionInfo struct {
	// Ref is a short hash of the session ID: safe to show and log, and
	// accepted by DestroyRef. Session.Ref gives the current request's.
	Ref string
	// User is the user set with Session.SetUser, or "".
	User string
	// Created is when the session was created (Regenerate keeps it).
	Created time.Time
	// LastAccess is when the session was last saved or had its idle expiry
	// extended, to within the touch interval. Without an idle timeout it is
	// the creation time.
	LastAccess time.Time
	// ExpiresAt is when the session ends unless it is used again.
	ExpiresAt time.Time
}

// NewManager returns a Manager with the given key and options, checked as
// New checks them (it panics on the same mistakes).
func NewManager(secretKey []byte, opts ...Option) *Manager {
	return &Manager{m: newManager(secretKey, opts)}
}

// Middleware returns the Gin middleware of this Manager; see New.
func (mg *Manager) Middleware() gin.HandlerFunc { return mg.m.handle }

// Store returns the store the Manager keeps sessions in.
func (mg *Manager) Store() Store { return mg.m.store }

// info describes the session stored under id, or found false if it is not
// stored (or unreadable).
func (mg *Manager) info(ctx context.Context, id string) (SessionInfo, bool, error) {
	done := mg.m.track(ctx, "load")
	data, exp, found, err := mg.m.store.Load(ctx, id)
	done(err)
	if err != nil {
		return SessionInfo{}, false, fmt.Errorf("%w: load session %s: %w", ErrStore, logID(id), err)
	}
	if !found {
		return SessionInfo{}, false, nil
	}
	return mg.describe(id, data, exp)
}

func (mg *Manager) describe(id string, data []byte, exp time.Time) (SessionInfo, bool, error) {
	rec, err := parseRecord(data)
	if err != nil {
		return SessionInfo{}, false, nil
	}
	created := time.Unix(0, rec.created)
	if !created.Add(mg.m.cfg.lifetime).After(time.Now()) {
		return SessionInfo{}, false, nil
	}
	last := created
	if idle := mg.m.cfg.idleTimeout; idle > 0 && !exp.IsZero() && exp.Add(-idle).After(created) {
		last = exp.Add(-idle)
	}
	return SessionInfo{Ref: logID(id), User: rec.user, Created: created, LastAccess: last, ExpiresAt: exp}, true, nil
}

// userIDs returns the IDs of user's live sessions.
func (mg *Manager) userIDs(ctx context.Context, user string) ([]string, error) {
	ui := mg.m.userIndex
	if ui == nil {
		return nil, fmt.Errorf("%w: the store (%T) keeps no user index", ErrNotSupported, mg.m.store)
	}
	ids, err := ui.UserSessions(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("%w: sessions of a user: %w", ErrStore, err)
	}
	return ids, nil
}

// UserSessions lists the live sessions of user, oldest first. It returns an
// error wrapping ErrNotSupported if the store implements no UserIndexer.
func (mg *Manager) UserSessions(ctx context.Context, user string) ([]SessionInfo, error) {
	ids, err := mg.userIDs(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []SessionInfo
	for _, id := range ids {
		info, found, err := mg.info(ctx, id)
		if err != nil {
			return nil, err
		}
		if found && info.User == user {
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// DestroyUser ends every session of user, for "log out everywhere" or
// after a password change: each is deleted from the store, so its cookie is
// worthless from the next request on. It returns how many were ended. A
// request of one of those sessions that is running meanwhile cannot bring
// it back: its changes are dropped when it saves.
func (mg *Manager) DestroyUser(ctx context.Context, user string) (int, error) {
	return mg.destroyWhere(ctx, user, func(string) bool { return true })
}

// DestroyRef ends the session of user whose Ref is ref, for a "your
// devices" page. It reports whether there was such a session.
func (mg *Manager) DestroyRef(ctx context.Context, user, ref string) (bool, error) {
	n, err := mg.destroyWhere(ctx, user, func(id string) bool { return logID(id) == ref })
	return n > 0, err
}

func (mg *Manager) destroyWhere(ctx context.Context, user string, match func(id string) bool) (int, error) {
	ids, err := mg.userIDs(ctx, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if !match(id) {
			continue
		}
		done := mg.m.track(ctx, "delete")
		err := mg.m.store.Delete(ctx, id)
		done(err)
		if err != nil {
			return n, fmt.Errorf("%w: destroy session %s: %w", ErrStore, logID(id), err)
		}
		mg.m.event(ctx, EventDestroyed, id, "", 0)
		if err := mg.m.userIndex.UnlinkUser(ctx, user, id); err != nil {
			return n, fmt.Errorf("%w: unlink session %s: %w", ErrStore, logID(id), err)
		}
		n++
	}
	return n, nil
}

// Range calls fn for every live session, until fn returns false. It
// returns an error wrapping ErrNotSupported if the store implements no
// Iterator.
func (mg *Manager) Range(ctx context.Context, fn func(SessionInfo) bool) error {
	it := mg.m.iterator
	if it == nil {
		return fmt.Errorf("%w: the store (%T) cannot list its sessions", ErrNotSupported, mg.m.store)
	}
	err := it.Range(ctx, func(id string, data []byte, exp time.Time) bool {
		info, ok, _ := mg.describe(id, data, exp)
		return !ok || fn(info)
	})
	if err != nil {
		return fmt.Errorf("%w: list sessions: %w", ErrStore, err)
	}
	return nil
}
