package sessions

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
)

// maxCookieLen is the longest cookie value worth checking. A real one is
// about 150 bytes; browsers cap a cookie at 4096.
const maxCookieLen = 512

// maxCandidates bounds how many cookies of the session's name are tried in
// one request, so a flood of them costs no more than a few MAC checks.
const maxCandidates = 3

// Reasons a cookie is rejected, for the debug log. They never hold the value.
var (
	errCookieTooLong = errors.New("cookie value too long")
	errCookieID      = errors.New("cookie carries a malformed session ID")
)

// cookieCodec signs session IDs into cookie values and back, and writes the
// Set-Cookie header.
type cookieCodec struct {
	name   string
	codecs []*securecookie.SecureCookie // current key first
	attrs  string                       // "; Path=/; HttpOnly; ..." without Max-Age
	maxAge time.Duration
}

// deriveKey turns the application's secret into the HMAC key used for
// cookies, so the secret itself never keys anything directly and the same
// secret can serve other purposes without cross-use.
func deriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("fastsession cookie signing v1"))
	return m.Sum(nil)
}

func newCookieCodec(cfg *config, secret []byte) *cookieCodec {
	keys := append([][]byte{secret}, cfg.previousKeys...)
	cc := &cookieCodec{name: cfg.cookieName, maxAge: cfg.maxAge}
	// A cookie is issued when its session is created or regenerated, so a
	// cookie older than the lifetime cannot name a live session.
	maxAgeSecs := int(cfg.lifetime/time.Second) + 1
	for _, k := range keys {
		sc := securecookie.New(deriveKey(k), nil)
		sc.SetSerializer(securecookie.NopEncoder{})
		sc.MaxAge(maxAgeSecs)
		sc.MaxLength(maxCookieLen)
		cc.codecs = append(cc.codecs, sc)
	}
	var b strings.Builder
	if cfg.path != "" {
		b.WriteString("; Path=")
		b.WriteString(cfg.path)
	}
	if cfg.domain != "" {
		b.WriteString("; Domain=")
		b.WriteString(strings.TrimPrefix(cfg.domain, "."))
	}
	if cfg.httpOnly {
		b.WriteString("; HttpOnly")
	}
	if cfg.secure {
		b.WriteString("; Secure")
	}
	switch cfg.sameSite {
	case http.SameSiteLaxMode:
		b.WriteString("; SameSite=Lax")
	case http.SameSiteStrictMode:
		b.WriteString("; SameSite=Strict")
	case http.SameSiteNoneMode:
		b.WriteString("; SameSite=None")
	}
	if cfg.partitioned {
		b.WriteString("; Partitioned")
	}
	cc.attrs = b.String()
	return cc
}

// decode checks a cookie value and returns the session ID it carries, and
// whether it was signed with a previous key (it should then be re-issued).
func (cc *cookieCodec) decode(value string) (id string, old bool, err error) {
	if len(value) > maxCookieLen {
		return "", false, errCookieTooLong
	}
	var b []byte
	for i, sc := range cc.codecs {
		if err = sc.Decode(cc.name, value, &b); err == nil {
			if !validID(b) {
				return "", false, errCookieID
			}
			return string(b), i > 0, nil
		}
	}
	return "", false, err
}

// encode signs id under the current key.
func (cc *cookieCodec) encode(id string) (string, error) {
	return cc.codecs[0].Encode(cc.name, []byte(id))
}

// find returns up to maxCandidates values of cookies named cc.name in the
// request's Cookie headers, without allocating for the other cookies.
func (cc *cookieCodec) find(h http.Header, out *[maxCandidates]string) int {
	n := 0
	for _, line := range h["Cookie"] {
		for len(line) > 0 && n < maxCandidates {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			name, val, ok := strings.Cut(part, "=")
			if !ok || name != cc.name {
				continue
			}
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			out[n] = val
			n++
		}
	}
	return n
}

// set adds a Set-Cookie header carrying value. With a Max-Age configured it
// also sends Max-Age and Expires.
func (cc *cookieCodec) set(h http.Header, value string, now time.Time) {
	var b strings.Builder
	b.Grow(len(cc.name) + 1 + len(value) + len(cc.attrs) + 64)
	b.WriteString(cc.name)
	b.WriteByte('=')
	b.WriteString(value)
	if cc.maxAge > 0 {
		secs := int64((cc.maxAge + time.Second - 1) / time.Second)
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(secs, 10))
		b.WriteString("; Expires=")
		b.WriteString(now.Add(time.Duration(secs) * time.Second).UTC().Format(http.TimeFormat))
	}
	b.WriteString(cc.attrs)
	cc.put(h, b.String())
}

// put adds line as this cookie's Set-Cookie header, replacing one that an
// earlier save in the same response added.
func (cc *cookieCodec) put(h http.Header, line string) {
	lines := h["Set-Cookie"]
	for i, l := range lines {
		if len(l) > len(cc.name) && l[len(cc.name)] == '=' && strings.HasPrefix(l, cc.name) {
			lines[i] = line
			return
		}
	}
	h["Set-Cookie"] = append(lines, line)
}

// expire adds a Set-Cookie header that makes the browser drop the cookie.
func (cc *cookieCodec) expire(h http.Header) {
	cc.put(h, cc.name+"=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"+cc.attrs)
}
