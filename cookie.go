package sessions

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
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
	errCookieFormat  = errors.New("cookie value malformed")
	errCookieMAC     = errors.New("cookie signature invalid")
	errCookieExpired = errors.New("cookie older than the session lifetime")
	errCookieID      = errors.New("cookie carries a malformed session ID")
)

// cookieCodec signs session IDs into cookie values and back, and writes the
// Set-Cookie header.
//
// The value format is gorilla/securecookie's with its NopEncoder and no
// encryption: base64url("timestamp|base64url(id)|mac"), where mac is
// HMAC-SHA256 over "name|timestamp|base64url(id)". Cookies are therefore
// interchangeable with securecookie's (the tests check it both ways); this
// implementation does the same work without allocating.
type cookieCodec struct {
	name   string
	prefix []byte    // name + "|", the start of every signed message
	pool   sync.Pool // of *macState
	attrs  string    // "; Path=/; HttpOnly; ..." without Max-Age
	gone   string    // the Set-Cookie value that makes the browser drop the cookie
	maxAge time.Duration
	window int64 // seconds a cookie is accepted after it was issued
	seen   verifiedCookies
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
	// A cookie is issued when its session is created or regenerated, so a
	// cookie older than the lifetime cannot name a live session.
	cc := &cookieCodec{name: cfg.cookieName, prefix: []byte(cfg.cookieName + "|"), maxAge: cfg.maxAge, window: int64(cfg.lifetime/time.Second) + 1}
	cc.seen.init()
	cc.pool.New = func() any {
		st := &macState{}
		st.rndOff = len(st.rnd)
		for _, k := range keys {
			st.h = append(st.h, hmac.New(sha256.New, deriveKey(k)))
		}
		return st
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
	cc.gone = cc.name + "=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT" + cc.attrs
	return cc
}

// macState is the scratch space of one encode or decode: keyed HMACs and
// buffers, pooled so that checking a cookie allocates nothing.
type macState struct {
	h        []hash.Hash // one per key, current first
	src, raw [maxCookieLen]byte
	sum      [sha256.Size]byte
	id       [64]byte
	line     [idBytes*2 + maxCookieLen + 256]byte

	// rnd is a block of bytes from crypto/rand, handed out idBytes at a
	// time for new IDs, so that minting costs one read of the system's
	// random source per 16 IDs; bytes are wiped as they are taken, and
	// rnd[rndOff:] are those not taken yet.
	rnd    [idBytes * 16]byte
	rndOff int

	// stamp holds the decimal digits of the Unix second stampSec, the
	// timestamp of the cookies signed in that second (stampLen 0: none yet).
	stamp    [20]byte
	stampLen int
	stampSec int64
}

// random fills raw with the next unused bytes of st.rnd, reading a new
// block from crypto/rand when it is used up, and wipes them from st.rnd.
func (st *macState) random(raw *[idBytes]byte) {
	if st.rndOff == len(st.rnd) {
		// crypto/rand.Read never returns an error; it crashes the program
		// irrecoverably if the system's random source fails.
		_, _ = rand.Read(st.rnd[:])
		st.rndOff = 0
	}
	chunk := st.rnd[st.rndOff : st.rndOff+idBytes]
	copy(raw[:], chunk)
	clear(chunk)
	st.rndOff += idBytes
}

// timestamp returns the decimal digits of the Unix second sec.
func (st *macState) timestamp(sec int64) []byte {
	if st.stampLen == 0 || st.stampSec != sec {
		st.stampLen = len(strconv.AppendInt(st.stamp[:0], sec, 10))
		st.stampSec = sec
	}
	return st.stamp[:st.stampLen]
}

// sign computes the MAC of "name|msg" with key number k into st.sum.
func (cc *cookieCodec) sign(st *macState, k int, msg []byte) []byte {
	h := st.h[k]
	h.Reset()
	h.Write(cc.prefix)
	h.Write(msg)
	return h.Sum(st.sum[:0])
}

// decode checks a cookie value and returns the session ID it carries, and
// whether it was signed with a previous key (it should then be re-issued).
// now is the current Unix time. A value that passed the check before is
// found in cc.seen and only its age is checked again.
func (cc *cookieCodec) decode(value string, now int64) (id string, old bool, err error) {
	if len(value) > maxCookieLen {
		return "", false, errCookieTooLong
	}
	if e := cc.seen.lookup(value); e != nil {
		if e.issued < now-cc.window {
			return "", false, errCookieExpired
		}
		return e.id, e.old, nil
	}
	id, old, issued, err := cc.verify(value, now)
	if err == nil {
		cc.seen.remember(&verifiedEntry{value: strings.Clone(value), id: id, issued: issued, old: old})
	}
	return id, old, err
}

// verify does the full check of decode. Everything is checked before
// anything is allocated: only the returned ID is.
func (cc *cookieCodec) verify(value string, now int64) (id string, old bool, issued int64, err error) {
	st := cc.pool.Get().(*macState)
	defer cc.pool.Put(st)
	n, err := base64.URLEncoding.Decode(st.raw[:], st.src[:copy(st.src[:], value)])
	if err != nil {
		return "", false, 0, errCookieFormat
	}
	b := st.raw[:n]
	// "timestamp|value|mac", the mac being the last 32 bytes.
	if len(b) < sha256.Size+4 || b[len(b)-sha256.Size-1] != '|' {
		return "", false, 0, errCookieFormat
	}
	msg, mac := b[:len(b)-sha256.Size-1], b[len(b)-sha256.Size:]
	bar := bytes.IndexByte(msg, '|')
	if bar <= 0 || bar > 19 {
		return "", false, 0, errCookieFormat
	}
	ts, val := msg[:bar], msg[bar+1:]
	k, ok := -1, false
	for i := range st.h {
		if hmac.Equal(cc.sign(st, i, msg), mac) {
			k, ok = i, true
			break
		}
	}
	if !ok {
		return "", false, 0, errCookieMAC
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return "", false, 0, errCookieFormat
		}
		issued = issued*10 + int64(c-'0')
	}
	if issued < now-cc.window {
		return "", false, 0, errCookieExpired
	}
	m, err := base64.URLEncoding.Decode(st.id[:], val)
	if err != nil || !validID(st.id[:m]) {
		return "", false, 0, errCookieID
	}
	return string(st.id[:m]), k > 0, issued, nil
}

// encode signs id under the current key and returns the cookie value.
func (cc *cookieCodec) encode(id string, now time.Time) string {
	st := cc.pool.Get().(*macState)
	defer cc.pool.Put(st)
	return string(cc.appendValue(st, st.line[:0], st.id[:copy(st.id[:], id)], now))
}

// appendValue appends the signed cookie value for id to dst.
func (cc *cookieCodec) appendValue(st *macState, dst, id []byte, now time.Time) []byte {
	b := append(st.raw[:0], st.timestamp(now.Unix())...)
	b = append(b, '|')
	b = appendBase64URL(b, id, true)
	sum := cc.sign(st, 0, b)
	b = append(b, '|')
	b = append(b, sum...)
	return appendBase64URL(dst, b, true)
}

// line returns the whole Set-Cookie header value for id, in a single
// allocation.
func (cc *cookieCodec) line(id string, now time.Time) string {
	st := cc.pool.Get().(*macState)
	defer cc.pool.Put(st)
	return string(cc.appendLine(st, st.line[:0], st.id[:copy(st.id[:], id)], now))
}

// newID returns a fresh session ID: 32 bytes from crypto/rand in unpadded
// base64url, 43 characters.
func (cc *cookieCodec) newID() string {
	st := cc.pool.Get().(*macState)
	defer cc.pool.Put(st)
	var raw [idBytes]byte
	st.random(&raw)
	return encodeID(raw[:])
}

// mint returns a fresh session ID, as newID does, and the Set-Cookie
// header value that carries it, issued at now, in a single allocation: a
// new session needs both.
func (cc *cookieCodec) mint(now time.Time) (id, line string) {
	st := cc.pool.Get().(*macState)
	defer cc.pool.Put(st)
	var raw [idBytes]byte
	st.random(&raw)
	b := appendBase64URL(st.line[:0], raw[:], false)
	n := len(b)
	b = cc.appendLine(st, b, b[:n], now)
	both := string(b)
	return both[:n], both[n:]
}

// appendLine appends the Set-Cookie header value for id to dst. With a
// Max-Age configured it also sends Max-Age and Expires.
func (cc *cookieCodec) appendLine(st *macState, dst, id []byte, now time.Time) []byte {
	b := append(dst, cc.name...)
	b = append(b, '=')
	b = cc.appendValue(st, b, id, now)
	if cc.maxAge > 0 {
		secs := int64((cc.maxAge + time.Second - 1) / time.Second)
		b = append(b, "; Max-Age="...)
		b = strconv.AppendInt(b, secs, 10)
		b = append(b, "; Expires="...)
		b = now.Add(time.Duration(secs)*time.Second).UTC().AppendFormat(b, http.TimeFormat)
	}
	return append(b, cc.attrs...)
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
