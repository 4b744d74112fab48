package sessions

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var cookieTestKey = []byte("cookie-test-secret-0123456789abcdef")

// craft builds a cookie value in the signed format by hand: name|date|value
// MAC'd with HMAC-SHA256 under the derived key, the whole base64url-encoded.
func craft(name string, secret []byte, ts int64, id string) string {
	val := base64.URLEncoding.EncodeToString([]byte(id))
	msg := fmt.Sprintf("%s|%d|%s", name, ts, val)
	m := hmac.New(sha256.New, deriveKey(secret))
	m.Write([]byte(msg))
	b := append([]byte(fmt.Sprintf("%d|%s|", ts, val)), m.Sum(nil)...)
	return base64.URLEncoding.EncodeToString(b)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestBadCookiesGiveAFreshSession(t *testing.T) {
	gin.SetMode(gin.TestMode)
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := gin.New()
	r.Use(New(cookieTestKey, WithStore(st), WithLifetime(time.Hour), WithLogger(logger)))
	r.GET("/visit", func(c *gin.Context) {
		s := Default(c)
		n, _ := GetAs[int](s, "n")
		s.Set("n", n+1)
		c.String(http.StatusOK, "%v %d", s.IsNew(), n+1)
	})
	visit := func(value string) (string, *http.Cookie) {
		req := httptest.NewRequest(http.MethodGet, "/visit", nil)
		if value != "" {
			req.Header.Set("Cookie", "sid="+value)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		res := w.Result()
		var ck *http.Cookie
		for _, c := range res.Cookies() {
			ck = c
		}
		return w.Body.String(), ck
	}
	body, good := visit("")
	require.Equal(t, "true 1", body)
	require.NotNil(t, good)
	body, _ = visit(good.Value)
	require.Equal(t, "false 2", body, "the genuine cookie works")

	now := time.Now().Unix()
	// The forged cookies name the genuine, stored session: accepting any of
	// them would show as "false N" instead of a fresh session.
	realID, _, err := newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, cookieTestKey).decode(good.Value, time.Now().Unix())
	require.NoError(t, err)
	require.Equal(t, "false 3", func() string { b, _ := visit(craft("sid", cookieTestKey, now, realID)); return b }(),
		"a correctly crafted cookie for the stored ID is accepted")
	flipped := []byte(good.Value)
	flipped[len(flipped)/2] ^= 0x01
	cases := map[string]string{
		"tampered":              string(flipped),
		"truncated":             good.Value[:len(good.Value)-5],
		"garbage":               "not-a-cookie-at-all",
		"oversized":             strings.Repeat("A", 5000),
		"odd bytes":             "%00%ff\x7f\x01",
		"wrongly signed":        craft("sid", []byte("some-other-secret-0123456789abcdef"), now, realID),
		"expired":               craft("sid", cookieTestKey, now-7200, realID),
		"signed for other name": craft("other", cookieTestKey, now, realID),
		"ID too short":          craft("sid", cookieTestKey, now, realID[:20]),
		"ID too long":           craft("sid", cookieTestKey, now, realID+"AAAA"),
		"ID with bad chars":     craft("sid", cookieTestKey, now, strings.Repeat("!", 43)),
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			body, ck := visit(value)
			assert.Equal(t, "true 1", body, "treated as no session")
			require.NotNil(t, ck)
			assert.NotEqual(t, good.Value, ck.Value)
			if len(value) > 8 {
				assert.NotContains(t, logs.String(), value, "the log never holds the cookie value")
			}
		})
	}
	assert.Contains(t, logs.String(), "session cookie rejected")
	assert.Contains(t, logs.String(), "level=DEBUG")
	body, _ = visit(good.Value)
	assert.Equal(t, "false 4", body, "the genuine session was never disturbed")

	// A validly signed ID that is not stored is never adopted.
	realID = newID()
	unknown := craft("sid", cookieTestKey, now, realID)
	body, ck := visit(unknown)
	assert.Equal(t, "true 1", body)
	require.NotNil(t, ck)
	id, _, err := newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, cookieTestKey).decode(ck.Value, time.Now().Unix())
	require.NoError(t, err)
	assert.NotEqual(t, realID, id, "session fixation: a new ID is minted")
	_, _, found, _ := st.Load(t.Context(), realID)
	assert.False(t, found)
}

func TestManyCookiesWithTheSessionName(t *testing.T) {
	cc := newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, cookieTestKey)
	good := cc.encode(newID(), time.Now())
	h := http.Header{}
	h.Add("Cookie", "a=1; sid=junk1; b=2; sid="+good)
	var vals [maxCandidates]string
	n := cc.find(h, &vals)
	assert.Equal(t, 2, n)
	assert.Equal(t, good, vals[1], "a valid cookie after a junk one is still found")
	h.Set("Cookie", strings.Repeat("sid=x; ", 1000)+"sid="+good)
	assert.Equal(t, maxCandidates, cc.find(h, &vals), "at most a few candidates are examined")
}

func TestCraftMatchesTheRealEncoding(t *testing.T) {
	// The hand-made format above must be the one the codec accepts, or the
	// bad-cookie cases would prove nothing.
	cc := newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, cookieTestKey)
	id := newID()
	got, old, err := cc.decode(craft("sid", cookieTestKey, time.Now().Unix(), id), time.Now().Unix())
	require.NoError(t, err)
	assert.False(t, old)
	assert.Equal(t, id, got)
}

func TestCookieFormatInteroperatesWithSecurecookie(t *testing.T) {
	cc := newCookieCodec(&config{cookieName: "sid", lifetime: time.Hour}, cookieTestKey)
	ref := securecookie.New(deriveKey(cookieTestKey), nil)
	ref.SetSerializer(securecookie.NopEncoder{})
	for i := 0; i < 50; i++ {
		id := newID()
		// ours -> securecookie
		var got []byte
		require.NoError(t, ref.Decode("sid", cc.encode(id, time.Now()), &got))
		assert.Equal(t, id, string(got))
		// securecookie -> ours
		v, err := ref.Encode("sid", []byte(id))
		require.NoError(t, err)
		back, old, err := cc.decode(v, time.Now().Unix())
		require.NoError(t, err)
		assert.False(t, old)
		assert.Equal(t, id, back)
	}
	// A cookie securecookie rejects, ours rejects too.
	other := securecookie.New(deriveKey([]byte("another-secret-0123456789abcdef!!")), nil)
	other.SetSerializer(securecookie.NopEncoder{})
	v, err := other.Encode("sid", []byte(newID()))
	require.NoError(t, err)
	_, _, err = cc.decode(v, time.Now().Unix())
	assert.ErrorIs(t, err, errCookieMAC)
}

func TestMintGivesTheIDAndItsCookieLine(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, maxAge := range []time.Duration{0, time.Hour} {
		cfg := config{cookieName: "sid", lifetime: time.Hour, maxAge: maxAge, path: "/", httpOnly: true}
		cc := newCookieCodec(&cfg, cookieTestKey)
		id, line := cc.mint(now)
		assert.True(t, validID([]byte(id)), "mint makes a well-formed ID: %q", id)
		assert.Equal(t, cc.line(id, now), line, "the line mint makes is the one line makes for its ID")
		value, _, _ := strings.Cut(strings.TrimPrefix(line, "sid="), ";")
		got, _, err := cc.decode(value, now.Unix())
		require.NoError(t, err)
		assert.Equal(t, id, got)
	}
}

// TestCookieTimestampFollowsTheClock: the timestamp a cookie is signed with
// is the second it is issued in, also when cookies of different seconds
// alternate (the digits of the last second are kept for reuse).
func TestCookieTimestampFollowsTheClock(t *testing.T) {
	cfg := config{cookieName: "sid", lifetime: time.Hour, path: "/"}
	cc := newCookieCodec(&cfg, cookieTestKey)
	id := newID()
	base := time.Unix(1_800_000_000, 0)
	for _, d := range []time.Duration{0, 0, time.Second, 999 * time.Millisecond, -5 * time.Second, time.Hour, 0} {
		at := base.Add(d)
		raw, err := base64.URLEncoding.DecodeString(cc.encode(id, at))
		require.NoError(t, err)
		stamp, _, _ := strings.Cut(string(raw), "|")
		assert.Equal(t, strconv.FormatInt(at.Unix(), 10), stamp, "a cookie issued at %v", at)
	}
}

// newID returns a fresh session ID, as the middleware makes them: 32 bytes
// from crypto/rand in unpadded base64url, 43 characters.
func newID() string {
	var b [idBytes]byte
	_, _ = rand.Read(b[:])
	return encodeID(b[:])
}
