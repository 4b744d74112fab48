package sessions_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWithLockingNeedsALocker(t *testing.T) {
	cs := newCountingStore(t)
	defer func() {
		p := recover()
		require.NotNil(t, p)
		assert.Contains(t, p, "Locker")
	}()
	sessions.New(testKey, sessions.WithStore(plainStore{cs}), sessions.WithLocking(time.Second))
}

func TestLockedSessionAnswers503AfterTheWait(t *testing.T) {
	r, st := newEngine(t, sessions.WithLocking(200*time.Millisecond))
	ck := login(t, r, "k", "v")
	unlock, err := st.Lock(context.Background(), idOf(t, ck), time.Second, time.Minute)
	require.NoError(t, err)
	res := do(t, r, "/get?k=k", ck)
	assert.Equal(t, http.StatusServiceUnavailable, res.code)
	assert.JSONEq(t, `{"error":"session busy, try again"}`, res.body)
	unlock()
	assert.Equal(t, "v", do(t, r, "/get?k=k", ck).body, "the lock is free again")
	assert.Equal(t, http.StatusOK, do(t, r, "/untouched", ck).code, "requests that never touch the session never wait")
}

func TestAPanickingHandlerReleasesTheLock(t *testing.T) {
	st := newCountingStore(t)
	r := gin.New()
	r.Use(gin.CustomRecovery(func(c *gin.Context, _ any) { c.AbortWithStatus(http.StatusInternalServerError) }))
	r.Use(sessions.New(testKey, sessions.WithStore(st), sessions.WithLocking(time.Second)))
	addRoutes(r)
	r.GET("/panic", func(c *gin.Context) {
		sessions.Default(c).Set("k", "never saved")
		panic("boom")
	})
	ck := login(t, r, "k", "v")
	assert.Equal(t, http.StatusInternalServerError, do(t, r, "/panic", ck).code)
	res := do(t, r, "/get?k=k", ck)
	assert.Equal(t, http.StatusOK, res.code, "the panicking request left its lock behind")
	assert.Equal(t, "v", res.body, "a panicking handler saves nothing")
}

func TestUsersAndTheManager(t *testing.T) {
	st := newCountingStore(t)
	mg := sessions.NewManager(testKey, sessions.WithStore(st))
	r := gin.New()
	r.Use(mg.Middleware())
	addRoutes(r)
	var refs []string
	r.GET("/login", func(c *gin.Context) {
		s := sessions.Default(c)
		require.NoError(t, s.Regenerate())
		s.SetUser(c.Query("user"))
		require.NoError(t, s.Save())
		refs = append(refs, s.Ref())
		c.String(http.StatusOK, s.User())
	})
	r.GET("/me", func(c *gin.Context) { c.String(http.StatusOK, sessions.Default(c).User()) })
	r.GET("/logout", func(c *gin.Context) { require.NoError(t, sessions.Default(c).Destroy()) })

	var annCookies []*http.Cookie
	for i := 0; i < 3; i++ {
		res := do(t, r, "/login?user=ann")
		require.Equal(t, "ann", res.body)
		annCookies = append(annCookies, res.cookie("sid"))
	}
	bob := do(t, r, "/login?user=bob").cookie("sid")
	ctx := context.Background()

	infos, err := mg.UserSessions(ctx, "ann")
	require.NoError(t, err)
	require.Len(t, infos, 3)
	for _, in := range infos {
		assert.Contains(t, refs, in.Ref)
		assert.Equal(t, "ann", in.User)
		assert.NotContains(t, in.Ref, idOf(t, annCookies[0])[:10], "a Ref is not the ID")
	}

	ok, err := mg.DestroyRef(ctx, "ann", refs[0])
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "", do(t, r, "/me", annCookies[0]).body, "the device was logged out")
	assert.Equal(t, "ann", do(t, r, "/me", annCookies[1]).body)
	ok, _ = mg.DestroyRef(ctx, "bob", refs[1])
	assert.False(t, ok, "a Ref only works for its own user")

	do(t, r, "/logout", annCookies[2])
	infos, _ = mg.UserSessions(ctx, "ann")
	assert.Len(t, infos, 1, "logout unlinks the session")

	seen := 0
	require.NoError(t, mg.Range(ctx, func(in sessions.SessionInfo) bool { seen++; return true }))
	assert.Equal(t, 2, seen, "ann's last session and bob's")

	n, err := mg.DestroyUser(ctx, "ann")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "bob", do(t, r, "/me", bob).body)

	plain := sessions.NewManager(testKey, sessions.WithStore(plainStore{st}))
	_, err = plain.UserSessions(ctx, "ann")
	assert.ErrorIs(t, err, sessions.ErrNotSupported)
	assert.ErrorIs(t, plain.Range(ctx, func(sessions.SessionInfo) bool { return true }), sessions.ErrNotSupported)
}

func TestASessionEndedMeanwhileIsNotBroughtBack(t *testing.T) {
	st := newCountingStore(t)
	mg := sessions.NewManager(testKey, sessions.WithStore(st))
	r := gin.New()
	r.Use(mg.Middleware())
	addRoutes(r)
	r.GET("/login", func(c *gin.Context) { sessions.Default(c).SetUser("ann") })
	r.GET("/slow", func(c *gin.Context) {
		s := sessions.Default(c)
		_ = s.Get("k") // loaded
		// Meanwhile, "log out everywhere" runs elsewhere.
		n, err := mg.DestroyUser(c, "ann")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		s.Set("k", "written after the logout")
		c.String(http.StatusOK, "done")
	})
	ck := do(t, r, "/login").cookie("sid")
	require.NotNil(t, ck)
	res := do(t, r, "/slow", ck)
	assert.Equal(t, http.StatusOK, res.code)
	gone := res.cookie("sid")
	require.NotNil(t, gone)
	assert.Equal(t, -1, gone.MaxAge, "the client's cookie is expired")
	_, _, found, err := st.Store.Load(context.Background(), idOf(t, ck))
	require.NoError(t, err)
	assert.False(t, found, "the logged-out session was not resurrected")
}
