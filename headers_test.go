package sessions_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fastsession/sessions"
)

// A shared cache must neither serve one visitor's page to another nor
// replay a session cookie: responses built from a session vary on Cookie,
// and responses carrying the session cookie forbid reusing it.
func TestResponsesAreSafeBehindSharedCaches(t *testing.T) {
	r, _ := newEngine(t)
	r.GET("/logout", func(c *gin.Context) {
		require.NoError(t, sessions.Default(c).Destroy())
		c.String(http.StatusOK, "bye")
	})
	r.GET("/stream", func(c *gin.Context) {
		sessions.Default(c).Set("turn", 1)
		c.Writer.WriteHeaderNow()
		c.Writer.Flush()
		_, _ = c.Writer.WriteString("data: hi\n\n")
	})

	varies := func(res result) bool { return slices.Contains(res.header.Values("Vary"), "Cookie") }
	noCache := func(res result) []string { return res.header.Values("Cache-Control") }

	untouched := do(t, r, "/untouched")
	assert.Empty(t, untouched.header.Values("Vary"), "a response that never used its session may be shared")
	assert.Empty(t, noCache(untouched))

	created := do(t, r, "/set?k=a&v=1")
	c := created.cookie("sid")
	require.NotNil(t, c)
	assert.True(t, varies(created), "Vary: %q", created.header.Values("Vary"))
	assert.Equal(t, []string{`no-cache="Set-Cookie"`}, noCache(created))

	read := do(t, r, "/get?k=a", c)
	assert.Equal(t, "1", read.body)
	assert.Nil(t, read.cookie("sid"), "a read sends no cookie")
	assert.Equal(t, []string{"Cookie"}, read.header.Values("Vary"), "a page read from the session varies on Cookie")
	assert.Empty(t, noCache(read), "no cookie, nothing to protect")

	streamed := do(t, r, "/stream")
	require.NotNil(t, streamed.cookie("sid"))
	assert.True(t, varies(streamed), "a streamed reply gets the headers before it starts")
	assert.Equal(t, []string{`no-cache="Set-Cookie"`}, noCache(streamed))

	out := do(t, r, "/logout", c)
	require.NotNil(t, out.cookie("sid"))
	assert.Equal(t, -1, out.cookie("sid").MaxAge)
	assert.Equal(t, []string{`no-cache="Set-Cookie"`}, noCache(out), "the expiring cookie is protected too")
}

// The handler's own Vary and Cache-Control are kept, extended only where
// they do not already protect the session.
func TestHandlerCacheHeadersAreRespected(t *testing.T) {
	r, _ := newEngine(t)
	with := func(vary, cacheControl string) gin.HandlerFunc {
		return func(c *gin.Context) {
			if vary != "" {
				c.Header("Vary", vary)
			}
			if cacheControl != "" {
				c.Header("Cache-Control", cacheControl)
			}
			sessions.Default(c).Set("k", "v")
			c.String(http.StatusOK, "ok")
		}
	}
	cases := []struct {
		name, vary, cacheControl string
		wantVary, wantCache      []string
	}{
		{"other vary", "Accept-Encoding", "", []string{"Accept-Encoding", "Cookie"}, []string{`no-cache="Set-Cookie"`}},
		{"vary cookie already", "Accept-Encoding, cookie", "", []string{"Accept-Encoding, cookie"}, []string{`no-cache="Set-Cookie"`}},
		{"vary star", "*", "", []string{"*"}, []string{`no-cache="Set-Cookie"`}},
		{"no-store", "", "no-store", []string{"Cookie"}, []string{"no-store"}},
		{"private, no-store", "", "private, No-Store", []string{"Cookie"}, []string{"private, No-Store"}},
		{"plain no-cache", "", "no-cache", []string{"Cookie"}, []string{"no-cache"}},
		{"no-cache naming set-cookie", "", `no-cache="Set-Cookie2, set-cookie"`, []string{"Cookie"}, []string{`no-cache="Set-Cookie2, set-cookie"`}},
		{"no-cache naming another field", "", `no-cache="X-Token", max-age=60`, []string{"Cookie"}, []string{`no-cache="X-Token", max-age=60`, `no-cache="Set-Cookie"`}},
		{"public max-age", "", "public, max-age=3600", []string{"Cookie"}, []string{"public, max-age=3600", `no-cache="Set-Cookie"`}},
		{"private naming a field", "", `private="X-No-Store"`, []string{"Cookie"}, []string{`private="X-No-Store"`, `no-cache="Set-Cookie"`}},
	}
	for i, tc := range cases {
		path := "/h" + string(rune('a'+i))
		r.GET(path, with(tc.vary, tc.cacheControl))
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, r, path)
			require.NotNil(t, res.cookie("sid"))
			assert.Equal(t, tc.wantVary, res.header.Values("Vary"))
			assert.Equal(t, tc.wantCache, res.header.Values("Cache-Control"))
		})
	}
}
