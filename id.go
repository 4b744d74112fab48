package sessions

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"
)

// idBytes is the entropy of a session ID: 256 bits.
const idBytes = 32

// idLen is the length of a session ID in its text form (unpadded base64url).
var idLen = base64.RawURLEncoding.EncodedLen(idBytes)

func encodeID(b []byte) string {
	var out [64]byte
	return string(appendBase64URL(out[:0], b, false))
}

// mintID returns a fresh session ID (see cookieCodec.newID).
func (m *manager) mintID() string { return m.cookie.newID() }

// mintIDCookie returns a fresh session ID, as mintID does, together with
// the Set-Cookie header value that carries it, issued at now.
func (m *manager) mintIDCookie(now time.Time) (id, line string) { return m.cookie.mint(now) }

// validID reports whether s has the exact shape of an ID the middleware
// makes (cookieCodec.newID), so that nothing else ever reaches a store.
func validID(s []byte) bool {
	if len(s) != idLen {
		return false
	}
	for _, ch := range s {
		switch {
		case ch >= 'A' && ch <= 'Z', ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9', ch == '-', ch == '_':
		default:
			return false
		}
	}
	return true
}

// logID is what logs show instead of a session ID: the first 8 bytes of its
// SHA-256 in hex. It lets an operator correlate log lines of one session
// without ever writing a usable ID.
func logID(id string) string {
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}
