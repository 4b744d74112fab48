package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// persist stores the session. A new session, or one under a new ID, is
// written whole with Save (built in place by the memory store's
// SaveAppend). An existing session is saved through the store's DeltaSaver
// or Updater when it has one, so that only this request's changes are
// applied to what is stored now and a concurrent request's changes to
// other keys survive. found is false when the session vanished from the store
// during the request (it was destroyed or expired meanwhile); nothing is then
// written. now is the time the save started. On success s.raw holds the
// session as this request last saw it.
func (s *Session) persist(ctx context.Context, buf []byte, now, exp time.Time) (found bool, err error) {
	m := s.m
	found = true
	op := "save"
	switch {
	case s.stored && s.oldID == "" && m.deltaSaver != nil:
		op = "save_delta"
	case s.stored && s.oldID == "" && m.updater != nil:
		op = "update"
	}
	done := m.track(ctx, op)
	defer func() { done(err) }()
	switch {
	case s.stored && s.oldID == "" && m.deltaSaver != nil:
		found, err = m.deltaSaver.SaveDelta(ctx, s.id, s.delta(), exp)
		s.raw = buf
	case s.stored && s.oldID == "" && m.updater != nil:
		s.applyErr = nil
		fn := s.updateFn()
		var stored []byte
		if m.memstore != nil {
			// Update, with the new data built in the store's own memory.
			stored, found, err = m.memstore.UpdateAppend(ctx, s.id, now, exp, fn)
		} else {
			var last []byte // the last call's result is what the store keeps
			found, err = m.updater.Update(ctx, s.id, exp, func(cur []byte) ([]byte, error) {
				next, ferr := fn(nil, cur)
				last = next
				return next, ferr
			})
			stored = last
		}
		if s.applyErr != nil && errors.Is(err, s.applyErr) {
			// Not the store's failure: the changes do not fit (ErrTooLarge),
			// or what is stored cannot be read.
			return false, s.applyErr
		}
		if found && err == nil {
			s.raw = stored
		}
	case m.memstore != nil:
		// Save, with the record built in the store's own memory.
		var tooLarge error
		var stored []byte
		stored, err = m.memstore.SaveAppend(ctx, s.id, exp, func(dst []byte) ([]byte, error) {
			b := s.encodeTo(dst)
			tooLarge = s.checkSize(b)
			return b, tooLarge
		})
		if tooLarge != nil {
			return false, tooLarge
		}
		if err == nil {
			s.raw = stored
		}
	default:
		err = m.store.Save(ctx, s.id, buf, exp)
		s.raw = buf
	}
	if err != nil {
		return false, fmt.Errorf("%w: save session %s: %w", ErrStore, logID(s.id), err)
	}
	return found, nil
}

// updates reports whether the session will be saved through the store's
// Updater, which reads what is stored and applies this request's changes.
func (s *Session) updates() bool {
	return s.stored && s.oldID == "" && s.m.deltaSaver == nil && s.m.updater != nil
}

// updateFn is apply, remembering its error in s, for memstore's
// UpdateAppend and (wrapped, with no buffer) an Updater's Update. It is made
// once per Session.
func (s *Session) updateFn() func(dst, cur []byte) ([]byte, error) {
	if s.applyFn == nil {
		s.applyFn = func(dst, cur []byte) ([]byte, error) {
			next, err := s.apply(dst, cur)
			s.applyErr = err
			return next, err
		}
	}
	return s.applyFn
}

// delta is this request's changes, for a DeltaSaver.
func (s *Session) delta() Delta {
	d := Delta{Clear: s.cleared}
	if s.user != s.rec.user {
		d.Header = RecordHeader(s.createdTime(), s.user)
	}
	for _, ch := range s.changes {
		if ch.del {
			d.Delete = append(d.Delete, ch.key)
		} else {
			d.Set = append(d.Set, Field{Key: ch.key, Value: ch.val})
		}
	}
	return d
}

// apply appends to dst cur, the session as stored now, with this request's
// changes applied, for an Updater. It keeps the stored creation time, and
// the stored user unless this request changed it.
func (s *Session) apply(dst, cur []byte) ([]byte, error) {
	var rec record
	if len(cur) > 0 && len(cur) == len(s.raw) && &cur[0] == &s.raw[0] {
		rec = s.rec // what this request loaded, unchanged since: already checked
	} else {
		var err error
		if rec, err = parseRecord(cur); err != nil {
			return nil, fmt.Errorf("stored session unreadable, not overwritten: %w", err)
		}
	}
	user := rec.user
	if s.user != s.rec.user {
		user = s.user
	}
	buf := build(dst, rec.created, user, rec, s.unchanged, s.changes)
	if err := s.checkSize(buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// vanished handles a session that another request destroyed (or that
// expired) while this one ran: its changes are dropped, since writing them
// would bring a logged-out session back, and the client's cookie is expired.
func (s *Session) vanished(headersSent bool) {
	s.m.cfg.logger.LogAttrs(s.c.Request.Context(), slog.LevelWarn,
		"session ended by another request while this one ran; its changes are dropped",
		slog.String("session", logID(s.id)))
	if s.unlock != nil {
		s.unlock()
	}
	s.oldID, s.needCookie, s.reissue = "", false, false
	s.fresh()
	if s.hadCookie && !headersSent {
		s.setCookie(s.w.Header(), s.m.cookie.gone)
	}
}

// syncUserIndex brings the store's user index in line with the session's
// user and ID after a save.
func (s *Session) syncUserIndex(ctx context.Context) error {
	ui := s.m.userIndex
	if ui == nil || (s.user == s.linkedUser && s.id == s.linkedID) {
		return nil
	}
	if s.linkedUser != "" {
		done := s.m.track(ctx, "unlink_user")
		err := ui.UnlinkUser(ctx, s.linkedUser, s.linkedID)
		done(err)
		if err != nil {
			return fmt.Errorf("%w: unlink session %s: %w", ErrStore, logID(s.linkedID), err)
		}
		s.linkedUser, s.linkedID = "", ""
	}
	if s.user != "" {
		// The link needs to last as long as the session can: its lifetime.
		done := s.m.track(ctx, "link_user")
		err := ui.LinkUser(ctx, s.user, s.id, s.createdTime().Add(s.m.cfg.lifetime))
		done(err)
		if err != nil {
			return fmt.Errorf("%w: link session %s: %w", ErrStore, logID(s.id), err)
		}
		s.linkedUser, s.linkedID = s.user, s.id
	}
	return nil
}
