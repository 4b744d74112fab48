package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// flashKey holds the pending flash messages. Keys beginning with a NUL byte
// are reserved and hidden from Keys.
const flashKey = "\x00flash"

// Load states of a Session.
const (
	unloaded uint8 = iota // nothing read yet: the cookie has not been looked at
	loaded                // the session is usable (found in the store or fresh)
	failed                // the store failed; the session is unusable
)

// Session is one visitor's session during one request. Get it in a handler
// with Default or FromContext; never create one yourself.
//
// A Session is loaded lazily: the cookie is checked and the store read on the
// first call of any method, so a handler that never touches it costs nothing.
// Changes are saved automatically before the response headers go out and
// again when the handler chain returns, so Save is rarely needed.
//
// Values are copied in and out: Set encodes the value at once, and Get
// decodes a fresh copy, so modifying a value after Set, or a value returned
// by Get, does not change the session; call Set again.
//
// Its methods are safe for concurrent use by the goroutines of one request.
// A Session must not be used after its request has completed: changes made
// then are not stored (Save reports ErrRequestDone).
type Session struct {
	mu    sync.Mutex
	m     *manager
	c     *gin.Context
	req   *http.Request // the request the session is bound to, for copies of c
	w     responseWriter
	inert error // non-nil: the session is inert, and this is why
	err   error // why the session failed

	id  string
	raw []byte // the stored record, as loaded or last saved
	rec record
	// Times as Unix nanoseconds, 8 bytes each rather than a time.Time's 24.
	loadedAt int64 // when the session was loaded: "now" for reads; 0 without a cookie
	created  int64 // 0 for a new session until it is first saved

	changes []change
	arena   []byte // backing store of the encoded values in changes

	// Inline storage for the common small request, saving allocations:
	// hdrs backs the header values the session sets (see headers.go).
	changeBuf [1]change
	arenaBuf  [40]byte
	hdrs      [hdrSlots]string

	// The Updater path: the function handed to the store, and the error of
	// its last call.
	applyFn  func(dst, cur []byte) ([]byte, error)
	applyErr error
	setErr   error // first value that could not be encoded

	user       string // the session's user (SetUser)
	linkedUser string // the user index entry known to exist: user ...
	linkedID   string // ... and session ID
	oldID      string // the ID Regenerate replaced, to delete on save
	unlock     func() // releases the session's lock (WithLocking)

	state        uint8
	done         bool
	isNew        bool
	stored       bool // id is in the store (found at load, or saved since)
	hadCookie    bool // the request carried a validly signed cookie
	cleared      bool
	dirty        bool
	refreshed    bool // saved or touched during this request
	touchDue     bool // at load, the stored expiry lagged by a touch interval or more
	reported     bool // a save failed before the headers and was reported
	needCookie   bool // the client does not have this ID yet
	reissue      bool // the cookie was signed with a previous key
	expireCookie bool // Destroy: drop the client's cookie unless a new one is sent
}

type change struct {
	key string
	val []byte // encoded; nil for a deletion
	del bool
}

// lock locks s and loads it if this is its first use. When the load fails,
// the error handler runs (unlocked) before lock returns with s locked.
func (s *Session) lock() {
	s.mu.Lock()
	if s.state != unloaded || s.inert != nil {
		return
	}
	s.load()
	if s.state == failed {
		err := s.err
		s.mu.Unlock()
		s.m.fail(s, err)
		s.mu.Lock()
	}
}

// usable reports whether s may be read or changed. The caller holds the lock.
func (s *Session) usable() bool { return s.inert == nil && s.state == loaded }

// load reads the cookie and the store. The caller holds the lock.
func (s *Session) load() {
	s.state = loaded
	m := s.m
	var vals [maxCandidates]string
	n := m.cookie.find(s.c.Request.Header, &vals)
	var now time.Time
	if n > 0 {
		// Without a cookie nothing here needs the time: a new session's
		// creation time is taken when it is first saved.
		now = time.Now()
		s.loadedAt = now.UnixNano()
	}
	id := ""
	old := false
	for i := 0; i < n; i++ {
		var err error
		if id, old, err = m.cookie.decode(vals[i], now.Unix()); err == nil {
			break
		}
		m.debug(s.c, "session cookie rejected", slog.String("reason", err.Error()))
		m.event(s.c.Request.Context(), EventRejected, "", err.Error(), 0)
	}
	if id == "" {
		s.fresh()
		return
	}
	s.hadCookie = true
	if m.locker != nil {
		done := m.track(s.c.Request.Context(), "lock")
		unlock, err := m.locker.Lock(s.c.Request.Context(), id, m.cfg.lockWait, m.cfg.lockLease)
		done(err)
		if err != nil {
			s.state = failed
			kind := ErrStore // the store could not be asked
			if errors.Is(err, ErrLocked) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				kind = ErrLocked // another request holds it
			}
			s.err = fmt.Errorf("%w: lock session %s: %w", kind, logID(id), err)
			return
		}
		s.unlock = unlock
	}
	ctx, cancel := m.storeContext(s.c, false)
	done := m.track(ctx, "load")
	var data []byte
	var exp time.Time
	var found bool
	var err error
	if m.memstore != nil {
		data, exp, found, err = m.memstore.LoadAt(ctx, id, now)
	} else {
		data, exp, found, err = m.store.Load(ctx, id)
	}
	done(err)
	cancel()
	switch {
	case err != nil:
		s.state = failed
		s.err = fmt.Errorf("%w: load session %s: %w", ErrStore, logID(id), err)
		return
	case !found || (!exp.IsZero() && !exp.After(now)):
		m.debugSession(s.c, "session ID not in store, starting a fresh session", id)
		m.event(s.c.Request.Context(), EventUnknown, id, "", 0)
		s.fresh()
		return
	}
	rec, err := parseRecord(data)
	if err != nil {
		// Never overwrite what we cannot read: the fresh session gets a new
		// ID, and the stored bytes stay for whoever can inspect them.
		m.cfg.logger.LogAttrs(s.c.Request.Context(), slog.LevelWarn, "stored session is unreadable, starting a fresh session",
			slog.String("session", logID(id)), slog.String("error", err.Error()))
		s.fresh()
		return
	}
	created := time.Unix(0, rec.created)
	if !created.Add(m.cfg.lifetime).After(now) {
		m.debugSession(s.c, "session lifetime over, starting a fresh session", id)
		m.event(s.c.Request.Context(), EventExpired, id, "", now.Sub(created))
		ctx, cancel := m.storeContext(s.c, true)
		done := m.track(ctx, "delete")
		err := m.store.Delete(ctx, id)
		done(err)
		if err != nil {
			m.cfg.logger.LogAttrs(s.c.Request.Context(), slog.LevelWarn, "could not delete expired session",
				slog.String("session", logID(id)), slog.String("error", err.Error()))
		}
		cancel()
		s.fresh()
		return
	}
	s.id, s.raw, s.rec, s.created = id, data, rec, rec.created
	// Decided once: both commits of a read-only request would ask.
	s.touchDue = m.cfg.idleTimeout > 0 && s.expiry(now).Sub(exp) >= m.cfg.touchInterval
	s.user, s.linkedUser, s.linkedID = rec.user, rec.user, id
	s.stored, s.reissue = true, old
}

// fresh makes s a new, empty, unsaved session. Its ID is minted when it is
// first needed, so a fresh session that is never written costs nothing.
func (s *Session) fresh() {
	s.id, s.isNew, s.stored = "", true, false
	s.raw, s.rec = nil, record{}
	s.user, s.linkedUser, s.linkedID = "", "", ""
	s.created = s.loadedAt
	s.changes, s.arena = nil, s.arena[:0]
	s.cleared, s.dirty = false, false
}

// ID returns the session's ID. For a new session it mints one; the session
// is still only stored, and the cookie only sent, if it is written to.
// An inert or failed session returns "". Never show the ID to third parties:
// it is the visitor's credential.
func (s *Session) ID() string {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return ""
	}
	if s.id == "" {
		s.id = s.m.mintID()
		s.needCookie = true
	}
	return s.id
}

// IsNew reports whether the session was created during this request: the
// request carried no cookie naming a live session. It is false for an inert
// or failed session.
func (s *Session) IsNew() bool {
	s.lock()
	defer s.mu.Unlock()
	return s.usable() && s.isNew
}

// encoded returns the encoded value stored under key, looking at this
// request's changes first. The caller holds the lock.
func (s *Session) encoded(key string) ([]byte, bool) {
	for i := len(s.changes) - 1; i >= 0; i-- {
		if ch := &s.changes[i]; ch.key == key {
			return ch.val, !ch.del
		}
	}
	if s.cleared {
		return nil, false
	}
	return s.rec.lookup(key)
}

// Get returns a fresh copy of the value stored under key, or nil if there is
// none. A stored value that cannot be decoded is logged at warn level and
// reads as nil; the stored bytes are left untouched.
func (s *Session) Get(key string) any {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return nil
	}
	return s.get(key)
}

func (s *Session) get(key string) any {
	b, ok := s.encoded(key)
	if !ok {
		return nil
	}
	v, err := s.m.cfg.codec.Decode(b)
	if err != nil {
		s.m.cfg.logger.LogAttrs(s.c.Request.Context(), slog.LevelWarn, "session value unreadable",
			slog.String("session", logID(s.id)), slog.String("key", key), slog.String("error", err.Error()))
		return nil
	}
	return v
}

// GetAs returns the value stored under key as a T, and whether there was a
// value of exactly that type.
func GetAs[T any](s *Session, key string) (T, bool) {
	v, ok := s.Get(key).(T)
	return v, ok
}

// Set stores v under key. The value is encoded at once (a later change to v
// is not seen). If v cannot be encoded (see Register), the whole request's
// changes are not saved: Save returns the error, which wraps ErrEncode, and
// the automatic save reports it to the error handler. Set on an inert or
// failed session does nothing.
func (s *Session) Set(key string, v any) {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return
	}
	s.set(key, v)
}

func (s *Session) set(key string, v any) {
	if s.done {
		s.setErr = ErrRequestDone
		return
	}
	if s.arena == nil {
		s.arena = s.arenaBuf[:0]
	}
	start := len(s.arena)
	arena, err := s.m.cfg.codec.Append(s.arena, v)
	if err != nil {
		if s.setErr == nil {
			s.setErr = fmt.Errorf("set %q: %w", key, err)
		}
		return
	}
	s.arena = arena
	s.putChange(change{key: key, val: arena[start:len(arena):len(arena)]})
}

func (s *Session) putChange(ch change) {
	s.dirty = true
	if s.changes == nil {
		s.changes = s.changeBuf[:0]
	}
	for i := range s.changes {
		if s.changes[i].key == ch.key {
			s.changes[i] = ch
			return
		}
	}
	s.changes = append(s.changes, ch)
}

// Delete removes key from the session. Deleting a missing key changes
// nothing.
func (s *Session) Delete(key string) {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return
	}
	s.delete(key)
}

func (s *Session) delete(key string) {
	if _, ok := s.encoded(key); !ok {
		return
	}
	if s.done {
		s.setErr = ErrRequestDone
		return
	}
	s.putChange(change{key: key, del: true})
}

// Clear removes every key, flashes included. The session itself (its ID
// and cookie) stays; use Destroy to end it.
func (s *Session) Clear() {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return
	}
	if len(s.keys(true)) == 0 {
		return
	}
	if s.done {
		s.setErr = ErrRequestDone
		return
	}
	s.cleared, s.changes, s.dirty = true, nil, true
}

// Keys returns the session's keys in sorted order.
func (s *Session) Keys() []string {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return nil
	}
	return s.keys(false)
}

func (s *Session) keys(reserved bool) []string {
	var out []string
	if !s.cleared {
		it := s.rec.iter()
		for k, _, ok := it.next(); ok; k, _, ok = it.next() {
			out = append(out, string(k))
		}
	}
	for _, ch := range s.changes {
		if i := slices.Index(out, ch.key); i >= 0 {
			if ch.del {
				out = slices.Delete(out, i, i+1)
			}
		} else if !ch.del {
			out = append(out, ch.key)
		}
	}
	if !reserved {
		out = slices.DeleteFunc(out, func(k string) bool { return len(k) > 0 && k[0] == 0 })
	}
	slices.Sort(out)
	return out
}

// AddFlash queues a one-time message, read (and removed) by Flashes on a
// later request, typically after a redirect.
func (s *Session) AddFlash(v any) {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return
	}
	flashes, _ := s.get(flashKey).([]any)
	s.set(flashKey, append(flashes, v))
}

// Flashes returns the queued flash messages in the order they were added,
// and removes them from the session.
func (s *Session) Flashes() []any {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return nil
	}
	flashes, _ := s.get(flashKey).([]any)
	if len(flashes) > 0 {
		s.delete(flashKey)
	}
	return flashes
}

// Save stores the session now, and adds the cookie to the response if the
// client needs it. It is optional: the middleware saves automatically. An
// unchanged session is not written. Save returns ErrHeadersWritten when a
// cookie is needed but the response headers are already out, ErrTooLarge,
// an error wrapping ErrEncode or ErrStore, ErrSkipped for a skipped request,
// ErrRequestDone after the request, and the load error of a failed session.
// After an error the changes stay pending, and the automatic save tries
// again.
func (s *Session) Save() error {
	s.lock()
	defer s.mu.Unlock()
	if s.inert != nil {
		return s.inert
	}
	if s.done {
		return ErrRequestDone
	}
	return s.commit(s.w.sent())
}

// changeable returns why the session cannot be changed now: it is inert,
// its load failed, or its request is over. The caller holds the lock.
func (s *Session) changeable() error {
	switch {
	case s.inert != nil:
		return s.inert
	case s.state != loaded:
		return s.err
	case s.done:
		return ErrRequestDone
	}
	return nil
}

// Regenerate gives the session a new ID and keeps its data and creation
// time; the old ID is deleted from the store when the session is saved, and
// the new cookie is sent. Call it whenever privileges change, above all at
// login, so an ID planted before login (session fixation) is worthless.
// It returns ErrHeadersWritten, changing nothing, when the new cookie could
// no longer be sent.
func (s *Session) Regenerate() error {
	s.lock()
	defer s.mu.Unlock()
	if err := s.changeable(); err != nil {
		return err
	}
	if s.w.sent() {
		return ErrHeadersWritten
	}
	if s.stored && s.oldID == "" {
		s.oldID = s.id
	}
	s.id, s.needCookie, s.dirty = s.m.mintID(), true, true
	s.m.debugSession(s.c, "session regenerated", s.id)
	return nil
}

// Destroy ends the session: its data is deleted from the store at once and
// the client's cookie is expired. The Session then behaves as a new, empty
// one, so a handler may still set a flash message (a new session with a new
// ID is then created). A store error is returned wrapping ErrStore, and the
// session is left as it was.
func (s *Session) Destroy() error {
	s.lock()
	defer s.mu.Unlock()
	if err := s.changeable(); err != nil {
		return err
	}
	ctx, cancel := s.m.storeContext(s.c, true)
	defer cancel()
	for _, id := range []string{s.oldID, s.id} {
		if id == "" || (id == s.id && !s.stored) {
			continue
		}
		done := s.m.track(ctx, "delete")
		err := s.m.store.Delete(ctx, id)
		done(err)
		if err != nil {
			return fmt.Errorf("%w: destroy session %s: %w", ErrStore, logID(id), err)
		}
	}
	if ui := s.m.userIndex; ui != nil && s.linkedUser != "" {
		done := s.m.track(ctx, "unlink_user")
		err := ui.UnlinkUser(ctx, s.linkedUser, s.linkedID)
		done(err)
		if err != nil {
			return fmt.Errorf("%w: unlink session %s: %w", ErrStore, logID(s.linkedID), err)
		}
	}
	s.m.debugSession(s.c, "session destroyed", s.id)
	if s.stored {
		s.m.event(s.c.Request.Context(), EventDestroyed, s.id, "", time.Since(s.createdTime()))
	}
	s.oldID, s.needCookie, s.reissue = "", false, false
	s.fresh()
	s.expireCookie = s.hadCookie
	s.setErr = nil
	return nil
}

// SetUser links the session to a user, by an ID of the app's choosing (""
// unlinks it). Stores that implement UserIndexer then list the session among
// the user's (see Manager.UserSessions and Manager.DestroyUser, "log out
// everywhere"). Call it at login, together with Regenerate.
func (s *Session) SetUser(user string) {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() || s.user == user {
		return
	}
	if s.done {
		s.setErr = ErrRequestDone
		return
	}
	s.user, s.dirty = user, true
}

// User returns the user set with SetUser, or "".
func (s *Session) User() string {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() {
		return ""
	}
	return s.user
}

// Ref returns a reference to the session that is safe to show: a short hash
// of its ID, the same that Manager.UserSessions reports, so a "your devices"
// page can mark the current one. It is "" for a session not yet stored.
func (s *Session) Ref() string {
	s.lock()
	defer s.mu.Unlock()
	if !s.usable() || !s.stored {
		return ""
	}
	return logID(s.id)
}

// Err reports why the session is unusable: the error of a failed load
// (wrapping ErrStore), ErrSkipped for a skipped request, ErrNoMiddleware, or ErrCopiedContext.
// It is nil for a working session. Errors of saves are returned by Save and
// reported to the error handler.
func (s *Session) Err() error {
	s.lock()
	defer s.mu.Unlock()
	if s.inert != nil {
		return s.inert
	}
	return s.err
}

// expiry is when a session saved or touched now expires: the idle timeout
// from now, capped by the lifetime from creation.
func (s *Session) expiry(now time.Time) time.Time {
	end := s.createdTime().Add(s.m.cfg.lifetime)
	if idle := s.m.cfg.idleTimeout; idle > 0 {
		if e := now.Add(idle); e.Before(end) {
			return e
		}
	}
	return end
}

// createdTime is when the session was created, or the zero Time for a new
// session not saved yet.
func (s *Session) createdTime() time.Time {
	if s.created == 0 {
		return time.Time{}
	}
	return time.Unix(0, s.created)
}

// encode builds the record of the session with its changes applied.
func (s *Session) encode() []byte { return s.encodeTo(nil) }

// encodeTo is encode, appending the record to dst.
func (s *Session) encodeTo(dst []byte) []byte {
	return build(dst, s.created, s.user, s.rec, s.unchanged, s.changes)
}

// checkSize returns an error wrapping ErrTooLarge if the record buf is
// over the configured limit.
func (s *Session) checkSize(buf []byte) error {
	if len(buf) > s.m.cfg.maxSize {
		return fmt.Errorf("%w: %d bytes encoded, the limit is %d", ErrTooLarge, len(buf), s.m.cfg.maxSize)
	}
	return nil
}

// unchanged reports whether a stored key survives this request's changes.
func (s *Session) unchanged(key []byte) bool { return !s.cleared && !s.changed(key) }

func (s *Session) changed(key []byte) bool {
	for i := range s.changes {
		if s.changes[i].key == string(key) {
			return true
		}
	}
	return false
}

// commit saves what needs saving and sets the cookie if the headers are not
// out yet. The caller holds the lock.
func (s *Session) commit(headersSent bool) error {
	if s.inert != nil {
		return s.inert
	}
	if s.state != loaded {
		return s.err
	}
	if s.setErr != nil {
		return s.setErr
	}
	m := s.m
	h := s.w.Header()
	if !headersSent {
		s.varyCookie(h)
	}
	if s.dirty {
		// Expiries count from now, not from the load: a request may run
		// longer than a short idle timeout (a long streamed reply).
		now := time.Now()
		if s.created == 0 {
			s.created = now.UnixNano()
		}
		if (s.id == "" || s.needCookie) && headersSent {
			return fmt.Errorf("%w: the session's cookie cannot be sent, so its changes are not stored", ErrHeadersWritten)
		}
		var line string // the Set-Cookie value, if made with the ID
		if s.id == "" {
			s.id, line = m.mintIDCookie(now)
			s.needCookie = true
		}
		var buf []byte
		if !s.updates() && m.memstore == nil {
			// Save and SaveDelta: check the size on this request's view.
			// (An Updater's fn checks it on what is stored now, and the
			// memory store's SaveAppend on what it builds.)
			buf = s.encode()
			if err := s.checkSize(buf); err != nil {
				return err
			}
		}
		exp := s.expiry(now)
		ctx, cancel := m.storeContext(s.c, true)
		defer cancel()
		found, err := s.persist(ctx, buf, now, exp)
		if err != nil {
			return err
		}
		if !found {
			s.vanished(headersSent)
			return nil
		}
		switch {
		case s.isNew && !s.stored:
			m.debugSession(s.c, "session created", s.id)
			m.event(s.c.Request.Context(), EventCreated, s.id, "", 0)
		case s.oldID != "":
			m.event(s.c.Request.Context(), EventRegenerated, s.id, "", now.Sub(s.createdTime()))
		}
		s.stored, s.refreshed = true, true
		s.rec = trusted(s.raw)
		// The saved record now holds the values: drop the changes, without
		// reusing the arena, whose bytes the new record may still share.
		s.changes, s.arena, s.cleared, s.dirty = nil, nil, false, false
		if s.oldID != "" {
			done := m.track(ctx, "delete")
			err := m.store.Delete(ctx, s.oldID)
			done(err)
			if err != nil {
				return fmt.Errorf("%w: delete replaced session %s: %w", ErrStore, logID(s.oldID), err)
			}
			s.oldID = ""
		}
		if err := s.syncUserIndex(ctx); err != nil {
			return err
		}
		if !headersSent && (s.needCookie || s.reissue || m.cfg.maxAge > 0) {
			if line == "" {
				line = m.cookie.line(s.id, now)
			}
			s.setCookie(h, line)
		}
		s.expireCookie = false
		return nil
	}
	if s.expireCookie && !headersSent {
		s.setCookie(h, m.cookie.gone)
		s.expireCookie = false
	}
	if !s.stored {
		return nil
	}
	if s.touchDue && !s.refreshed {
		now := time.Now()
		if err := s.touch(s.expiry(now)); err != nil {
			return err
		}
		if m.cfg.maxAge > 0 && !headersSent {
			s.setCookie(h, m.cookie.line(s.id, now))
		}
	}
	if s.reissue && !headersSent {
		s.setCookie(h, m.cookie.line(s.id, time.Unix(0, s.loadedAt)))
	}
	return nil
}

// touch extends the stored session's expiry without changing its data.
func (s *Session) touch(exp time.Time) error {
	m := s.m
	ctx, cancel := m.storeContext(s.c, true)
	defer cancel()
	var err error
	done := m.track(ctx, "touch")
	defer func() { done(err) }()
	switch {
	case m.toucher != nil:
		err = m.toucher.Touch(ctx, s.id, exp)
	case m.updater != nil:
		// Rewrite what is stored now, not what this request loaded, so a
		// concurrent change is not undone.
		_, err = m.updater.Update(ctx, s.id, exp, func(cur []byte) ([]byte, error) { return cur, nil })
	default:
		// Re-save the bytes exactly as loaded.
		err = m.store.Save(ctx, s.id, s.raw, exp)
	}
	if err != nil {
		return fmt.Errorf("%w: extend session %s: %w", ErrStore, logID(s.id), err)
	}
	s.refreshed = true
	return nil
}

// setCookie adds line, the session's Set-Cookie value from the cookie
// codec (or its expiry, cookie.gone), to the response headers h, replacing
// one for the same cookie, and keeps shared caches from reusing it. Every
// Set-Cookie of the session goes through here.
func (s *Session) setCookie(h map[string][]string, line string) {
	if len(h["Set-Cookie"]) == 0 {
		s.putSlot(h, "Set-Cookie", hdrCookie, line)
	} else {
		s.m.cookie.put(h, line)
	}
	s.noCacheSetCookie(h)
	s.needCookie, s.reissue = false, false
}

// commitBeforeHeaders runs when the handler is about to send the headers.
// It reports the error, if any, to the error handler.
func (s *Session) commitBeforeHeaders() {
	s.mu.Lock()
	if s.state != loaded || s.done {
		s.mu.Unlock()
		return
	}
	err := s.commit(false)
	if err != nil {
		// Reported once, here: the end of the request does not try again.
		s.reported = true
	}
	s.mu.Unlock()
	if err != nil {
		s.m.fail(s, err)
	}
}

// finish runs when the handler chain has returned: the last save.
func (s *Session) finish() {
	s.mu.Lock()
	var err error
	if s.state == loaded && !s.reported {
		err = s.commit(s.w.sent())
	}
	s.done = true
	unlock := s.unlock
	s.mu.Unlock()
	if unlock != nil {
		unlock()
	}
	if err != nil {
		s.m.fail(s, err)
	}
}
