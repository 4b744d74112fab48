package sessions

import (
	"net/http"
	"strings"
)

// A response built from a session belongs to one visitor, and one that
// carries a session cookie hands that visitor's session to whoever receives
// it. Shared caches (a CDN, a company proxy) must therefore neither serve
// the first to another visitor nor replay the second: every response of a
// request that used its session says "Vary: Cookie", and every response that
// sets or expires the session cookie says `Cache-Control: no-cache="Set-Cookie"`
// unless its Cache-Control already forbids storing it.

// The slots of Session.hdrs: per-request backing for the header values the
// session sets, so that the usual response allocates no slice for them.
const (
	hdrCookie = iota // Set-Cookie
	hdrVary          // Vary
	hdrCache         // Cache-Control
	hdrSlots
)

const noCacheCookie = `no-cache="Set-Cookie"`

// putSlot makes v the only value of h under key (canonical), backed by the
// session's slot: no slice to allocate.
func (s *Session) putSlot(h http.Header, key string, slot int, v string) {
	s.hdrs[slot] = v
	h[key] = s.hdrs[slot : slot+1 : slot+1]
}

// addHeader adds v to vs, the values h holds under key (canonical), using
// the session's slot when there are none yet.
func (s *Session) addHeader(h http.Header, key string, vs []string, slot int, v string) {
	if len(vs) == 0 {
		s.putSlot(h, key, slot, v)
		return
	}
	h[key] = append(vs, v)
}

// varyCookie makes the response say "Vary: Cookie", unless its Vary already
// names Cookie or is "*".
func (s *Session) varyCookie(h http.Header) {
	vs := h["Vary"]
	for _, v := range vs {
		if listHas(v, func(tok string) bool { return tok == "*" || strings.EqualFold(tok, "Cookie") }) {
			return
		}
	}
	s.addHeader(h, "Vary", vs, hdrVary, "Cookie")
}

// noCacheSetCookie makes a response that carries the session cookie say
// `Cache-Control: no-cache="Set-Cookie"`, unless its Cache-Control already
// has no-store, an unqualified no-cache, or a no-cache naming Set-Cookie.
func (s *Session) noCacheSetCookie(h http.Header) {
	vs := h["Cache-Control"]
	for _, v := range vs {
		if forbidsCookieReuse(v) {
			return
		}
	}
	s.addHeader(h, "Cache-Control", vs, hdrCache, noCacheCookie)
}

// forbidsCookieReuse reports whether the Cache-Control value v keeps a
// cache from handing a stored Set-Cookie to another request.
func forbidsCookieReuse(v string) bool {
	for len(v) > 0 {
		var dir string
		dir, v = nextDirective(v)
		name, arg, qualified := strings.Cut(dir, "=")
		name = strings.TrimSpace(name)
		switch {
		case strings.EqualFold(name, "no-store"):
			return true
		case strings.EqualFold(name, "no-cache"):
			if !qualified {
				return true
			}
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			if listHas(arg, func(tok string) bool { return strings.EqualFold(tok, "Set-Cookie") }) {
				return true
			}
		}
	}
	return false
}

// nextDirective splits the first directive off a Cache-Control value: up
// to the first comma outside a quoted string.
func nextDirective(v string) (dir, rest string) {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				return v[:i], v[i+1:]
			}
		}
	}
	return v, ""
}

// listHas reports whether a comma-separated list has an element, trimmed of
// spaces, for which match is true.
func listHas(list string, match func(string) bool) bool {
	for len(list) > 0 {
		var tok string
		tok, list, _ = strings.Cut(list, ",")
		if match(strings.TrimSpace(tok)) {
			return true
		}
	}
	return false
}
