package sessions_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recordingObserver struct {
	mu     sync.Mutex
	events []sessions.Event
	calls  map[string]int
	errs   map[string]int
}

func (o *recordingObserver) SessionEvent(_ context.Context, e sessions.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
}

func (o *recordingObserver) StoreCall(_ context.Context, op string, d time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.calls == nil {
		o.calls, o.errs = map[string]int{}, map[string]int{}
	}
	o.calls[op]++
	if err != nil {
		o.errs[op]++
	}
}

func (o *recordingObserver) kinds() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, e := range o.events {
		out = append(out, e.Kind.String())
	}
	return out
}

func TestObserverSeesEventsAndStoreCalls(t *testing.T) {
	obs := &recordingObserver{}
	r, st := newEngine(t, sessions.WithObserver(obs), sessions.WithLifetime(time.Hour))
	r.GET("/login", func(c *gin.Context) { require.NoError(t, sessions.Default(c).Regenerate()) })
	r.GET("/logout", func(c *gin.Context) { require.NoError(t, sessions.Default(c).Destroy()) })

	ck := login(t, r, "k", "v")                                      // created
	ck2 := do(t, r, "/login", ck).cookie("sid")                      // regenerated
	do(t, r, "/get?k=k", &http.Cookie{Name: "sid", Value: "forged"}) // rejected
	do(t, r, "/get?k=k", ck)                                         // unknown: the old ID is gone
	do(t, r, "/logout", ck2)                                         // destroyed
	st.down.Store(true)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, r, "/set?k=a&v=b").code)
	st.down.Store(false)
	assert.Equal(t, []string{"created", "regenerated", "rejected", "unknown", "destroyed", "store_error"}, obs.kinds())
	for _, e := range obs.events {
		assert.NotContains(t, e.Reason, idOf(t, ck)[:12], "events never carry an ID")
		if e.Kind == sessions.EventRejected {
			assert.NotEmpty(t, e.Reason)
			assert.Empty(t, e.Ref)
		}
		if e.Kind == sessions.EventDestroyed || e.Kind == sessions.EventRegenerated {
			assert.Positive(t, int64(e.Age))
		}
	}
	assert.Positive(t, obs.calls["load"])
	assert.Positive(t, obs.calls["save"])
	assert.Positive(t, obs.calls["delete"])
	assert.Equal(t, 1, obs.errs["save"], "the failed save is reported with its error")
	assert.Equal(t, "store_error", sessions.EventStoreError.String())
	assert.True(t, strings.HasPrefix(sessions.EventKind(99).String(), "invalid"))
}

func TestExpiredEventCarriesTheAge(t *testing.T) {
	obs := &recordingObserver{}
	cs := newCountingStore(t)
	r := gin.New()
	r.Use(sessions.New(testKey, sessions.WithStore(foreverStore{cs}), sessions.WithObserver(obs),
		sessions.WithLifetime(time.Second), sessions.WithIdleTimeout(0)))
	addRoutes(r)
	ck := login(t, r, "k", "v")
	time.Sleep(1100 * time.Millisecond)
	do(t, r, "/get?k=k", ck)
	require.Contains(t, obs.kinds(), "expired")
	for _, e := range obs.events {
		if e.Kind == sessions.EventExpired {
			assert.GreaterOrEqual(t, e.Age, time.Second)
		}
	}
}
