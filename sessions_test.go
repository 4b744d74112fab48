package sessions_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCookieCarriesOnlyASignedRandomID(t *testing.T) {
	r, _ := newEngine(t)
	secret := "a value that must never reach the browser"
	seen := map[string]bool{}
	var ids []string
	r.GET("/id", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("secret", secret)
		ids = append(ids, s.ID())
		c.Status(http.StatusNoContent)
	})
	for i := 0; i < 20; i++ {
		res := do(t, r, "/id")
		ck := res.cookie("sid")
		require.NotNil(t, ck, "a written session sends its cookie")
		raw, err := base64.URLEncoding.DecodeString(ck.Value)
		require.NoError(t, err, "the cookie value is base64url")
		assert.NotContains(t, string(raw), secret, "session data must never be in the cookie")
		assert.NotContains(t, ck.Value, secret)
		require.Len(t, raw, len(raw))
		// date|base64(id)|mac: the middle part is the ID, 43 characters.
		parts := strings.SplitN(string(raw), "|", 3)
		require.Len(t, parts, 3)
		id, err := base64.URLEncoding.DecodeString(parts[1])
		require.NoError(t, err)
		assert.Len(t, id, 43)
		assert.Equal(t, ids[len(ids)-1], string(id), "the cookie carries the session ID")
		assert.Len(t, parts[2], 32, "HMAC-SHA256 tag")
		seen[string(id)] = true
	}
	assert.Len(t, seen, 20, "every new session gets a distinct ID")
	for id := range seen {
		b, err := base64.RawURLEncoding.DecodeString(id)
		require.NoError(t, err)
		assert.Len(t, b, 32, "256-bit IDs")
	}
}

func TestUntouchedSessionCostsNothing(t *testing.T) {
	logger, logs := debugLogger()
	r, st := newEngine(t, sessions.WithLogger(logger))
	ck := login(t, r, "k", "v")
	before := st.calls()
	for _, cookie := range []*http.Cookie{nil, ck, {Name: "sid", Value: "garbage!"}} {
		res := do(t, r, "/untouched", cookie)
		assert.Equal(t, http.StatusOK, res.code)
		assert.Nil(t, res.cookie("sid"), "no Set-Cookie for an untouched session")
	}
	assert.Equal(t, before, st.calls(), "an untouched session never reaches the store")
	assert.NotContains(t, logs.String(), "rejected", "an untouched session's cookie is not even checked")
}

func TestUnwrittenNewSessionsAreNeverStored(t *testing.T) {
	r, st := newEngine(t)
	for i := 0; i < 500; i++ {
		res := do(t, r, "/get?k=anything")
		require.Equal(t, http.StatusOK, res.code)
		require.Nil(t, res.cookie("sid"), "a read-only new session gets no cookie")
	}
	assert.Zero(t, st.saves.Load(), "a flood of cookie-less reads stores nothing")
	assert.Zero(t, st.Len(), "the store stays empty")
}

func TestValidButUnknownIDIsNeverReused(t *testing.T) {
	r, st := newEngine(t)
	ck := login(t, r, "k", "v")
	// The session disappears from the store (expired, destroyed elsewhere).
	r2, _ := newEngine(t) // a second app with the same key but an empty store
	res := do(t, r2, "/set?k=k&v=new", ck)
	fresh := res.cookie("sid")
	require.NotNil(t, fresh)
	assert.NotEqual(t, ck.Value, fresh.Value, "a new ID is minted, the presented one is not adopted")
	assert.NotEqual(t, idOf(t, ck), idOf(t, fresh))
	_ = st
}

// idOf extracts the session ID from a cookie value (date|id|mac).
func idOf(t *testing.T, c *http.Cookie) string {
	t.Helper()
	raw, err := base64.URLEncoding.DecodeString(c.Value)
	require.NoError(t, err)
	parts := strings.SplitN(string(raw), "|", 3)
	require.Len(t, parts, 3)
	id, err := base64.URLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	return string(id)
}

func TestAutoCommitBeforeHeadersForEveryWayOfResponding(t *testing.T) {
	handlers := map[string]gin.HandlerFunc{
		"JSON":              func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"ok": true}) },
		"String":            func(c *gin.Context) { c.String(http.StatusOK, "ok") },
		"Data":              func(c *gin.Context) { c.Data(http.StatusOK, "text/plain", []byte("ok")) },
		"Redirect GET":      func(c *gin.Context) { c.Redirect(http.StatusFound, "/elsewhere") },
		"Redirect 303":      func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/elsewhere") },
		"Status only":       func(c *gin.Context) { c.Status(http.StatusNoContent) },
		"Status + WriteNow": func(c *gin.Context) { c.Status(http.StatusAccepted); c.Writer.WriteHeaderNow() },
		"Writer.Write":      func(c *gin.Context) { _, _ = c.Writer.Write([]byte("ok")) },
		"WriteString":       func(c *gin.Context) { _, _ = c.Writer.WriteString("ok") },
		"Flush":             func(c *gin.Context) { c.Writer.Flush() },
		"Stream": func(c *gin.Context) {
			n := 0
			c.Stream(func(w io.Writer) bool { n++; _, _ = w.Write([]byte("x")); return n < 3 })
		},
		"SSE":            func(c *gin.Context) { c.SSEvent("message", "hello"); c.Writer.Flush() },
		"nothing at all": func(c *gin.Context) {},
		"ResponseController": func(c *gin.Context) {
			_ = http.NewResponseController(c.Writer).Flush()
		},
		"AbortWithStatus": func(c *gin.Context) { c.AbortWithStatus(http.StatusUnauthorized) },
	}
	for name, respond := range handlers {
		t.Run(name, func(t *testing.T) {
			r, _ := newEngine(t)
			r.GET("/h", func(c *gin.Context) {
				sessions.Default(c).Set("via", name)
				respond(c)
			})
			res := do(t, r, "/h")
			ck := res.cookie("sid")
			require.NotNil(t, ck, "the cookie reached the client (status %d)", res.code)
			assert.Equal(t, name, do(t, r, "/get?k=via", ck).body, "the change was stored")
		})
	}
}

func TestChangesAfterHeadersAreStoredForAnExistingSession(t *testing.T) {
	r, st := newEngine(t)
	r.GET("/stream", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("question", "q")
		c.Stream(func(w io.Writer) bool { _, _ = w.Write([]byte("token ")); return false })
		// The reply is appended after the stream, as a chat handler does.
		s.Set("answer", "the full reply")
	})
	ck := login(t, r, "k", "v")
	res := do(t, r, "/stream", ck)
	assert.Equal(t, http.StatusOK, res.code)
	assert.Equal(t, "the full reply", do(t, r, "/get?k=answer", ck).body)
	assert.Equal(t, "q", do(t, r, "/get?k=question", ck).body)

	// A new session first written after the headers cannot get its cookie:
	// Save says so, the log says so, and nothing orphaned is stored.
	logger, logs := debugLogger()
	r2, st2 := newEngine(t, sessions.WithLogger(logger))
	var saveErr error
	r2.GET("/late", func(c *gin.Context) {
		c.String(http.StatusOK, "headers out")
		s := sessions.Default(c)
		s.Set("k", "v")
		saveErr = s.Save()
	})
	res = do(t, r2, "/late")
	assert.Nil(t, res.cookie("sid"))
	assert.ErrorIs(t, saveErr, sessions.ErrHeadersWritten)
	assert.Zero(t, st2.saves.Load())
	assert.Contains(t, logs.String(), "session change lost")
	_ = st
}

func TestOnlyChangedSessionsAreWritten(t *testing.T) {
	r, st := newEngine(t, sessions.WithTouchInterval(time.Hour))
	ck := login(t, r, "k", "v")
	saves := st.saves.Load()
	for i := 0; i < 10; i++ {
		assert.Equal(t, "v", do(t, r, "/get?k=k", ck).body)
	}
	assert.Equal(t, saves, st.saves.Load(), "reads write nothing")
	assert.Zero(t, st.touches.Load(), "no idle refresh inside the touch interval")
	do(t, r, "/set?k=k&v=v", ck) // same key: still a change request
	assert.Equal(t, saves+1, st.saves.Load())
}

func TestIdleRefreshTouchesWithoutRewriting(t *testing.T) {
	// Refresh on every request: the touch interval is tiny.
	r, st := newEngine(t, sessions.WithTouchInterval(time.Nanosecond))
	ck := login(t, r, "k", "v")
	saves := st.saves.Load()
	do(t, r, "/get?k=k", ck)
	assert.Equal(t, saves, st.saves.Load(), "a store with Touch is not rewritten")
	assert.Equal(t, int64(1), st.touches.Load())

	// A store without Touch gets one full save instead.
	cs := newCountingStore(t)
	r2 := gin.New()
	r2.Use(sessions.New(testKey, sessions.WithStore(plainStore{cs}), sessions.WithTouchInterval(time.Nanosecond)))
	addRoutes(r2)
	ck2 := login(t, r2, "k", "v")
	saves = cs.saves.Load()
	assert.Equal(t, "v", do(t, r2, "/get?k=k", ck2).body)
	assert.Equal(t, saves+1, cs.saves.Load())
	assert.Equal(t, "v", do(t, r2, "/get?k=k", ck2).body, "the re-saved data is intact")
}

func TestRegenerateAndDestroy(t *testing.T) {
	r, st := newEngine(t)
	r.GET("/login", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("user", "ann")
		require.NoError(t, s.Regenerate())
		c.String(http.StatusOK, "welcome")
	})
	r.GET("/logout", func(c *gin.Context) {
		require.NoError(t, sessions.Default(c).Destroy())
		c.String(http.StatusOK, "bye")
	})
	before := login(t, r, "cart", "3 apples")
	oldID := idOf(t, before)
	res := do(t, r, "/login", before)
	after := res.cookie("sid")
	require.NotNil(t, after, "login sends the new cookie")
	newID := idOf(t, after)
	assert.NotEqual(t, oldID, newID)
	assert.Equal(t, "3 apples", do(t, r, "/get?k=cart", after).body, "data survives Regenerate")
	assert.Equal(t, "ann", do(t, r, "/get?k=user", after).body)
	_, _, found, err := st.Store.Load(t.Context(), oldID)
	require.NoError(t, err)
	assert.False(t, found, "the old ID is deleted from the store")
	assert.Equal(t, "", do(t, r, "/get?k=cart", before).body, "the old cookie is worthless")

	res = do(t, r, "/logout", after)
	gone := res.cookie("sid")
	require.NotNil(t, gone, "logout expires the cookie")
	assert.Equal(t, -1, gone.MaxAge, "Max-Age=0 on the wire")
	_, _, found, err = st.Store.Load(t.Context(), newID)
	require.NoError(t, err)
	assert.False(t, found, "Destroy deletes the data")
	assert.Equal(t, "", do(t, r, "/get?k=user", after).body)
}

func TestIdleTimeoutAndLifetimeAreEnforcedByTheServer(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		r, _ := newEngine(t, sessions.WithIdleTimeout(time.Second))
		ck := login(t, r, "k", "v")
		time.Sleep(1500 * time.Millisecond)
		assert.Equal(t, "", do(t, r, "/get?k=k", ck).body, "idle too long: the session is gone though the cookie is still sent")
	})
	t.Run("lifetime, even when active and when the store keeps the data", func(t *testing.T) {
		t.Parallel()
		cs := newCountingStore(t)
		r := gin.New()
		r.Use(sessions.New(testKey, sessions.WithStore(foreverStore{cs}),
			sessions.WithLifetime(2*time.Second), sessions.WithIdleTimeout(0)))
		addRoutes(r)
		ck := login(t, r, "k", "v")
		deadline := time.Now().Add(2500 * time.Millisecond)
		for time.Now().Before(deadline) {
			do(t, r, "/count", ck) // keep it busy
			time.Sleep(200 * time.Millisecond)
		}
		assert.Equal(t, "", do(t, r, "/get?k=k", ck).body, "past the lifetime the session is over")
	})
	t.Run("MaxAge 0 sends no expiry, MaxAge sends both", func(t *testing.T) {
		t.Parallel()
		r, _ := newEngine(t)
		res := do(t, r, "/set?k=a&v=b")
		line := res.header.Get("Set-Cookie")
		assert.NotContains(t, line, "Max-Age")
		assert.NotContains(t, line, "Expires")
		r2, _ := newEngine(t, sessions.WithMaxAge(time.Hour))
		res = do(t, r2, "/set?k=a&v=b")
		assert.Equal(t, 3600, res.cookie("sid").MaxAge)
		assert.Contains(t, res.header.Get("Set-Cookie"), "Expires=")
	})
}

// foreverStore stores everything with a far expiry, so only the
// middleware's own lifetime check can end a session.
type foreverStore struct{ *countingStore }

func (f foreverStore) Save(ctx context.Context, id string, d []byte, _ time.Time) error {
	return f.countingStore.Save(ctx, id, d, time.Now().Add(24*time.Hour))
}

func TestSkipHeaderBypassesSessions(t *testing.T) {
	r, st := newEngine(t, sessions.WithSkipHeader("X-FastSession-Skip", "skip"))
	var errs []error
	r.GET("/probe", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("k", "v")
		errs = []error{s.Save(), s.Err(), s.Regenerate(), s.Destroy()}
		assert.Nil(t, s.Get("k"), "an inert session reads empty, even its own writes")
		assert.Empty(t, s.Keys())
		assert.Equal(t, "", s.ID())
		c.String(http.StatusOK, "healthy")
	})
	ck := login(t, r, "k", "real")
	calls := st.calls()
	req := httptest.NewRequest(http.MethodGet, "/probe", nil)
	req.Header.Set("x-fastsession-skip", "skip")
	res := doReq(t, r, req, ck)
	assert.Equal(t, http.StatusOK, res.code)
	assert.Nil(t, res.cookie("sid"))
	assert.Equal(t, calls, st.calls(), "no store access")
	for _, err := range errs {
		assert.ErrorIs(t, err, sessions.ErrSkipped)
	}
	assert.Equal(t, "real", do(t, r, "/get?k=k", ck).body, "the real session is untouched")

	// Only the exact value skips.
	for _, v := range []string{"Skip", "skip ", "", "yes"} {
		want := "changed-" + strings.TrimSpace(v)
		req := httptest.NewRequest(http.MethodGet, "/set?k=k&v="+url.QueryEscape(want), nil)
		req.Header.Set("X-FastSession-Skip", v)
		res := doReq(t, r, req, ck)
		assert.Equal(t, http.StatusOK, res.code)
		assert.Equal(t, want, do(t, r, "/get?k=k", ck).body, "value %q does not skip", v)
	}

	r2, st2 := newEngine(t, sessions.WithSkipper(func(c *gin.Context) bool { return c.Request.URL.Path == "/untouched" || c.Query("skip") == "1" }))
	res = do(t, r2, "/set?k=a&v=b&skip=1")
	assert.Nil(t, res.cookie("sid"))
	assert.Zero(t, st2.calls())
}

func TestPreviousKeysAreAcceptedAndReissued(t *testing.T) {
	st := newCountingStore(t)
	oldApp := gin.New()
	oldApp.Use(sessions.New(otherKey, sessions.WithStore(st)))
	addRoutes(oldApp)
	ck := login(t, oldApp, "k", "from the old key")

	newApp := gin.New()
	newApp.Use(sessions.New(testKey, sessions.WithStore(st), sessions.WithPreviousKeys(otherKey)))
	addRoutes(newApp)
	res := do(t, newApp, "/get?k=k", ck)
	assert.Equal(t, "from the old key", res.body)
	reissued := res.cookie("sid")
	require.NotNil(t, reissued, "a cookie under a previous key is re-issued")
	assert.Equal(t, idOf(t, ck), idOf(t, reissued), "same session")

	onlyNew := gin.New()
	onlyNew.Use(sessions.New(testKey, sessions.WithStore(st)))
	addRoutes(onlyNew)
	assert.Equal(t, "from the old key", do(t, onlyNew, "/get?k=k", reissued).body, "the re-issued cookie is signed with the current key")
	assert.Equal(t, "", do(t, onlyNew, "/get?k=k", ck).body, "without WithPreviousKeys the old cookie is rejected")
}

func TestStoreErrors(t *testing.T) {
	t.Run("a failed load answers 503, runs nothing after, and saves nothing", func(t *testing.T) {
		var handlerErr []error
		r, st := newEngine(t, sessions.WithErrorHandler(func(c *gin.Context, err error) {
			handlerErr = append(handlerErr, err)
			sessions.DefaultErrorHandler(c, err)
		}))
		r.GET("/work", func(c *gin.Context) {
			s := sessions.Default(c)
			s.Set("k", "overwrite from a partial view")
			assert.ErrorIs(t, s.Err(), sessions.ErrStore)
			assert.ErrorIs(t, s.Save(), sessions.ErrStore)
			c.String(http.StatusOK, "handler's own body")
		})
		ck := login(t, r, "k", "precious")
		saves := st.saves.Load()
		st.down.Store(true)
		res := do(t, r, "/work", ck)
		st.down.Store(false)
		assert.Equal(t, http.StatusServiceUnavailable, res.code)
		assert.JSONEq(t, `{"error":"session store unavailable"}`, res.body, "the handler's later writes are dropped")
		require.Len(t, handlerErr, 1)
		assert.ErrorIs(t, handlerErr[0], sessions.ErrStore)
		assert.ErrorIs(t, handlerErr[0], errDown)
		assert.Equal(t, saves, st.saves.Load())
		assert.Equal(t, "precious", do(t, r, "/get?k=k", ck).body, "stored data intact after the outage")
	})
	t.Run("a failed save before the headers answers 503", func(t *testing.T) {
		r, st := newEngine(t)
		ck := login(t, r, "k", "v")
		r.GET("/save-fails", func(c *gin.Context) {
			sessions.Default(c).Set("k", "new")
			st.down.Store(true)
			c.JSON(http.StatusOK, gin.H{"saved": true})
		})
		res := do(t, r, "/save-fails", ck)
		st.down.Store(false)
		assert.Equal(t, http.StatusServiceUnavailable, res.code)
		assert.NotContains(t, res.body, "saved")
		assert.Equal(t, "v", do(t, r, "/get?k=k", ck).body)
	})
	t.Run("a failed save after streaming is logged, not a panic", func(t *testing.T) {
		logger, logs := debugLogger()
		r, st := newEngine(t, sessions.WithLogger(logger))
		ck := login(t, r, "k", "v")
		r.GET("/late-fail", func(c *gin.Context) {
			s := sessions.Default(c)
			_ = s.Get("k")
			c.String(http.StatusOK, "streamed")
			st.down.Store(true)
			s.Set("k", "lost")
		})
		res := do(t, r, "/late-fail", ck)
		st.down.Store(false)
		assert.Equal(t, http.StatusOK, res.code)
		assert.Contains(t, logs.String(), "session could not be saved")
		assert.NotContains(t, logs.String(), idOf(t, ck), "the log never holds the ID")
	})
}

func TestTooLargeKeepsTheStoredSession(t *testing.T) {
	r, _ := newEngine(t, sessions.WithMaxSize(1000))
	ck := login(t, r, "k", "small")
	var saveErr error
	r.GET("/big", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("k", strings.Repeat("x", 2000))
		saveErr = s.Save()
		c.String(http.StatusOK, "done")
	})
	res := do(t, r, "/big", ck)
	assert.ErrorIs(t, saveErr, sessions.ErrTooLarge)
	assert.Equal(t, http.StatusInternalServerError, res.code, "the automatic save reports it too")
	assert.Equal(t, "small", do(t, r, "/get?k=k", ck).body)
}

// A new session over the size limit is not stored and gets no cookie, on
// the memory store itself (which builds the record in place) and on any
// other store.
func TestTooLargeNewSessionIsNotStored(t *testing.T) {
	direct := memstore.New()
	t.Cleanup(func() { _ = direct.Close() })
	for name, store := range map[string]sessions.Store{"memstore": direct, "wrapped": newCountingStore(t)} {
		t.Run(name, func(t *testing.T) {
			r := gin.New()
			r.Use(sessions.New(testKey, sessions.WithStore(store), sessions.WithMaxSize(1000)))
			addRoutes(r)
			var saveErr error
			var id string
			r.GET("/big", func(c *gin.Context) {
				s := sessions.Default(c)
				s.Set("k", strings.Repeat("x", 2000))
				saveErr = s.Save()
				id = s.ID()
				c.String(http.StatusOK, "done")
			})
			res := do(t, r, "/big")
			assert.ErrorIs(t, saveErr, sessions.ErrTooLarge)
			assert.NotErrorIs(t, saveErr, sessions.ErrStore, "the store did not fail")
			assert.Equal(t, http.StatusInternalServerError, res.code)
			assert.Nil(t, res.cookie("sid"), "no cookie for a session that was not stored")
			require.NotEmpty(t, id)
			_, _, found, err := store.Load(t.Context(), id)
			require.NoError(t, err)
			assert.False(t, found)
		})
	}
}

func TestUnencodableValueSavesNothing(t *testing.T) {
	type unregistered struct{ C chan int }
	r, _ := newEngine(t)
	ck := login(t, r, "k", "v")
	var saveErr error
	r.GET("/bad", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("k", "changed")
		s.Set("bad", unregistered{})
		saveErr = s.Save()
		c.String(http.StatusOK, "x")
	})
	res := do(t, r, "/bad", ck)
	assert.ErrorIs(t, saveErr, sessions.ErrEncode)
	assert.Equal(t, http.StatusInternalServerError, res.code)
	assert.Equal(t, "v", do(t, r, "/get?k=k", ck).body, "all or nothing")
}

func TestSessionAPI(t *testing.T) {
	r, _ := newEngine(t)
	r.GET("/api1", func(c *gin.Context) {
		s := sessions.Default(c)
		assert.True(t, s.IsNew())
		s.Set("a", 1)
		s.Set("b", "two")
		s.Set("c", []string{"x"})
		s.Delete("c")
		s.Delete("never there")
		s.AddFlash("saved!")
		s.AddFlash(map[string]any{"level": "info"})
		assert.Equal(t, []string{"a", "b"}, s.Keys(), "flashes are hidden from Keys")
		v, ok := sessions.GetAs[int](s, "a")
		assert.True(t, ok)
		assert.Equal(t, 1, v)
		_, ok = sessions.GetAs[string](s, "a")
		assert.False(t, ok, "GetAs checks the type")
		assert.NoError(t, s.Err())
		c.Status(http.StatusNoContent)
	})
	r.GET("/api2", func(c *gin.Context) {
		s := sessions.Default(c)
		assert.False(t, s.IsNew())
		assert.Equal(t, []any{"saved!", map[string]any{"level": "info"}}, s.Flashes())
		assert.Empty(t, s.Flashes(), "read once")
		m := s.Get("b")
		assert.Equal(t, "two", m)
		s.Clear()
		assert.Empty(t, s.Keys())
		assert.Nil(t, s.Get("a"))
		s.Set("after", true)
		c.Status(http.StatusNoContent)
	})
	r.GET("/api3", func(c *gin.Context) {
		s := sessions.Default(c)
		assert.Equal(t, []string{"after"}, s.Keys())
		assert.Empty(t, s.Flashes(), "flashes are gone for good")
		c.Status(http.StatusNoContent)
	})
	ck := do(t, r, "/api1").cookie("sid")
	require.NotNil(t, ck)
	do(t, r, "/api2", ck)
	do(t, r, "/api3", ck)
}

func TestValuesAreCopiedInAndOut(t *testing.T) {
	r, _ := newEngine(t)
	r.GET("/copy", func(c *gin.Context) {
		s := sessions.Default(c)
		list := []string{"a"}
		s.Set("list", list)
		list[0] = "changed after Set"
		got, _ := sessions.GetAs[[]string](s, "list")
		assert.Equal(t, []string{"a"}, got)
		got[0] = "changed after Get"
		again, _ := sessions.GetAs[[]string](s, "list")
		assert.Equal(t, []string{"a"}, again)
		c.Status(http.StatusNoContent)
	})
	do(t, r, "/copy")
}

func TestNamedSessionsAreIndependent(t *testing.T) {
	st := newCountingStore(t)
	r := gin.New()
	r.Use(sessions.New(testKey, sessions.WithStore(st)))
	r.Use(sessions.New(otherKey, sessions.WithStore(st), sessions.WithCookieName("admin_sid"), sessions.WithContextKey("admin")))
	r.GET("/both", func(c *gin.Context) {
		sessions.Default(c).Set("who", "visitor")
		sessions.FromContext(c, "admin").Set("who", "admin")
		c.Status(http.StatusNoContent)
	})
	r.GET("/read", func(c *gin.Context) {
		a, _ := sessions.GetAs[string](sessions.Default(c), "who")
		b, _ := sessions.GetAs[string](sessions.FromContext(c, "admin"), "who")
		c.String(http.StatusOK, a+","+b)
	})
	res := do(t, r, "/both")
	require.NotNil(t, res.cookie("sid"))
	require.NotNil(t, res.cookie("admin_sid"))
	assert.Equal(t, "visitor,admin", do(t, r, "/read", res.cookie("sid"), res.cookie("admin_sid")).body)
	// A cookie of one name is not accepted under the other.
	swapped := &http.Cookie{Name: "admin_sid", Value: res.cookie("sid").Value}
	assert.Equal(t, "visitor,", do(t, r, "/read", res.cookie("sid"), swapped).body)
}

func TestDefaultWithoutMiddlewareIsInert(t *testing.T) {
	r := gin.New()
	r.GET("/", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("k", "v")
		assert.Nil(t, s.Get("k"))
		assert.ErrorIs(t, s.Err(), sessions.ErrNoMiddleware)
		assert.ErrorIs(t, s.Save(), sessions.ErrNoMiddleware)
		assert.ErrorIs(t, sessions.FromContext(c, "other").Err(), sessions.ErrNoMiddleware)
		c.Status(http.StatusNoContent)
	})
	assert.Equal(t, http.StatusNoContent, do(t, r, "/").code)
}

// A goroutine given c.Copy() (gin's advice for goroutines) shares the
// request's session once the request has used it, whenever the copy was
// made; a copy used before that cannot start the session and gets an inert
// one saying why, never a panic (the copy has no response writer to put the
// cookie on).
func TestSessionThroughACopiedContext(t *testing.T) {
	r, _ := newEngine(t)
	inGoroutine := func(cp *gin.Context, fn func(s *sessions.Session)) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn(sessions.Default(cp))
		}()
		<-done
	}
	r.GET("/copy-after", func(c *gin.Context) {
		s := sessions.Default(c)
		cp := c.Copy()
		inGoroutine(cp, func(gs *sessions.Session) {
			assert.Same(t, s, gs)
			gs.Set("from", "goroutine")
		})
		c.String(http.StatusOK, "ok")
	})
	r.GET("/copy-early", func(c *gin.Context) {
		cp := c.Copy() // made before the session was used, used after
		s := sessions.Default(c)
		inGoroutine(cp, func(gs *sessions.Session) {
			assert.Same(t, s, gs)
			gs.Set("early", "yes")
		})
		c.String(http.StatusOK, "ok")
	})
	var copyErr, saveErr error
	r.GET("/copy-before", func(c *gin.Context) {
		cp := c.Copy()
		inGoroutine(cp, func(gs *sessions.Session) {
			gs.Set("k", "lost")
			copyErr, saveErr = gs.Err(), gs.Save()
		})
		v, _ := sessions.GetAs[string](sessions.Default(c), "k")
		c.String(http.StatusOK, v)
	})

	res := do(t, r, "/copy-after")
	require.Equal(t, http.StatusOK, res.code)
	ck := res.cookie("sid")
	require.NotNil(t, ck, "the session set through the copy needs its cookie")
	assert.Equal(t, "goroutine", do(t, r, "/get?k=from", ck).body)
	ck = do(t, r, "/copy-early").cookie("sid")
	require.NotNil(t, ck)
	assert.Equal(t, "yes", do(t, r, "/get?k=early", ck).body)

	ck = login(t, r, "k", "kept")
	res = do(t, r, "/copy-before", ck)
	assert.Equal(t, http.StatusOK, res.code)
	assert.Equal(t, "kept", res.body, "the request's own session is unaffected")
	assert.ErrorIs(t, copyErr, sessions.ErrCopiedContext)
	assert.ErrorIs(t, saveErr, sessions.ErrCopiedContext)
	assert.Equal(t, "kept", do(t, r, "/get?k=k", ck).body)
}

func TestUseAfterTheRequestIsRefused(t *testing.T) {
	r, _ := newEngine(t)
	var kept *sessions.Session
	r.GET("/keep", func(c *gin.Context) {
		kept = sessions.Default(c)
		kept.Set("k", "v")
		c.Status(http.StatusNoContent)
	})
	ck := do(t, r, "/keep").cookie("sid")
	kept.Set("k", "too late")
	assert.ErrorIs(t, kept.Save(), sessions.ErrRequestDone)
	assert.Equal(t, "v", do(t, r, "/get?k=k", ck).body)
}

func TestNewPanicsOnMisconfiguration(t *testing.T) {
	cases := map[string]struct {
		key  []byte
		opts []sessions.Option
		want string
	}{
		"short key":                {[]byte("short"), nil, "32 or more"},
		"short previous key":       {testKey, []sessions.Option{sessions.WithPreviousKeys([]byte("x"))}, "WithPreviousKeys"},
		"bad cookie name":          {testKey, []sessions.Option{sessions.WithCookieName("a b")}, "WithCookieName"},
		"SameSite None, insecure":  {testKey, []sessions.Option{sessions.WithSameSite(http.SameSiteNoneMode), sessions.WithSecure(false)}, "SameSite=None"},
		"Partitioned, insecure":    {testKey, []sessions.Option{sessions.WithPartitioned(true), sessions.WithSecure(false)}, "Partitioned"},
		"negative idle":            {testKey, []sessions.Option{sessions.WithIdleTimeout(-time.Second)}, "WithIdleTimeout"},
		"zero lifetime":            {testKey, []sessions.Option{sessions.WithLifetime(0)}, "WithLifetime"},
		"nil store":                {testKey, []sessions.Option{sessions.WithStore(nil)}, "WithStore"},
		"empty skip header value":  {testKey, []sessions.Option{sessions.WithSkipHeader("X-Skip", "")}, "WithSkipHeader"},
		"zero max size":            {testKey, []sessions.Option{sessions.WithMaxSize(0)}, "WithMaxSize"},
		"empty context key":        {testKey, []sessions.Option{sessions.WithContextKey("")}, "WithContextKey"},
		"bad domain":               {testKey, []sessions.Option{sessions.WithDomain("bad domain;")}, "WithDomain"},
		"negative store timeout":   {testKey, []sessions.Option{sessions.WithStoreTimeout(-1)}, "WithStoreTimeout"},
		"negative touch interval":  {testKey, []sessions.Option{sessions.WithTouchInterval(-1)}, "WithTouchInterval"},
		"negative max age":         {testKey, []sessions.Option{sessions.WithMaxAge(-time.Hour)}, "WithMaxAge"},
		"path with a semicolon":    {testKey, []sessions.Option{sessions.WithPath("/a;b")}, "WithPath"},
		"two problems, both named": {[]byte("short"), []sessions.Option{sessions.WithLifetime(-1)}, "WithLifetime"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				p := recover()
				require.NotNil(t, p, "New must panic")
				assert.Contains(t, fmt.Sprint(p), tc.want)
			}()
			sessions.New(tc.key, tc.opts...)
		})
	}
}

func TestCookieAttributes(t *testing.T) {
	r, _ := newEngine(t)
	line := do(t, r, "/set?k=a&v=b").header.Get("Set-Cookie")
	for _, want := range []string{"sid=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		assert.Contains(t, line, want, "secure defaults")
	}
	assert.NotContains(t, line, "Domain")
	r2, _ := newEngine(t, sessions.WithCookieName("app"), sessions.WithPath("/app"), sessions.WithDomain("example.test"),
		sessions.WithSameSite(http.SameSiteStrictMode), sessions.WithPartitioned(true), sessions.WithHTTPOnly(false))
	r2.GET("/app/set", func(c *gin.Context) { sessions.Default(c).Set("a", 1); c.Status(http.StatusNoContent) })
	line = do(t, r2, "/app/set").header.Get("Set-Cookie")
	for _, want := range []string{"app=", "Path=/app", "Domain=example.test", "SameSite=Strict", "Partitioned", "Secure"} {
		assert.Contains(t, line, want)
	}
	assert.NotContains(t, line, "HttpOnly")
}

func TestParallelRequestsStayApart(t *testing.T) {
	r, _ := newEngine(t)
	const clients, rounds = 16, 30
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("visitor-%d", i)
			ck := login(t, r, "who", want)
			for j := 0; j < rounds; j++ {
				if got := do(t, r, "/get?k=who", ck).body; got != want {
					t.Errorf("visitor %d saw %q", i, got)
					return
				}
				if got := do(t, r, "/count", ck).body; got != fmt.Sprint(j+1) {
					t.Errorf("visitor %d count %q, want %d", i, got, j+1)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestWriterKeepsGinsResponseWriterWorking(t *testing.T) {
	r, _ := newEngine(t)
	r.GET("/w", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("k", "v")
		w := c.Writer
		assert.False(t, w.Written())
		assert.Equal(t, -1, w.Size())
		c.Status(http.StatusCreated)
		assert.Equal(t, http.StatusCreated, w.Status())
		w.WriteHeaderNow()
		assert.True(t, w.Written())
		assert.Equal(t, 0, w.Size())
		n, err := w.WriteString("abc")
		assert.NoError(t, err)
		assert.Equal(t, 3, n)
		_, _ = w.Write([]byte("de"))
		assert.Equal(t, 5, w.Size())
		assert.Nil(t, w.Pusher(), "HTTP/1 has no pusher")
		_, ok := w.(interface{ Unwrap() http.ResponseWriter })
		assert.True(t, ok, "Unwrap for http.ResponseController")
		w.Flush()
	})
	res := do(t, r, "/w")
	assert.Equal(t, http.StatusCreated, res.code)
	assert.Equal(t, "abcde", res.body)
	assert.NotNil(t, res.cookie("sid"))
}

func TestHijackAndCloseNotifyOnARealServer(t *testing.T) {
	r, _ := newEngine(t, sessions.WithSecure(false))
	r.GET("/notify", func(c *gin.Context) {
		sessions.Default(c).Set("k", "notify")
		assert.NotNil(t, c.Writer.CloseNotify())
		c.String(http.StatusOK, "ok")
	})
	r.GET("/hijack", func(c *gin.Context) {
		sessions.Default(c).Set("k", "hijacked")
		conn, buf, err := c.Writer.Hijack()
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = buf.Flush()
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	jar := newJar()
	client := &http.Client{Jar: jar}
	resp, err := client.Get(srv.URL + "/notify")
	require.NoError(t, err)
	resp.Body.Close()
	require.NotNil(t, jar.cookie, "the cookie set through the wrapper")

	// Hijack: the session (existing, so no new cookie is needed) is saved
	// before the connection is handed over.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "GET /hijack HTTP/1.1\r\nHost: x\r\nCookie: sid=%s\r\n\r\n", jar.cookie.Value)
	hresp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(hresp.Body)
	assert.Equal(t, "hi", string(body))
	resp, err = client.Get(srv.URL + "/get?k=k")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "hijacked", string(b))
}

// jar keeps the last sid cookie a server set.
type jar struct {
	mu     sync.Mutex
	cookie *http.Cookie
}

func newJar() *jar { return &jar{} }

func (j *jar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range cs {
		if c.Name == "sid" {
			j.cookie = c
		}
	}
}

func (j *jar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cookie == nil {
		return nil
	}
	return []*http.Cookie{j.cookie}
}
