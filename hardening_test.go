package sessions_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowStore blocks every Load until its context ends, as a store that has
// stopped answering would.
type slowStore struct {
	*countingStore
	sawDeadline atomic.Bool
}

func (s *slowStore) Load(ctx context.Context, id string) ([]byte, time.Time, bool, error) {
	if _, ok := ctx.Deadline(); ok {
		s.sawDeadline.Store(true)
	}
	select {
	case <-ctx.Done():
		return nil, time.Time{}, false, ctx.Err()
	case <-time.After(time.Hour):
		return s.countingStore.Load(ctx, id)
	}
}

func TestASlowStoreNeverHangsARequest(t *testing.T) {
	cs := newCountingStore(t)
	st := &slowStore{countingStore: cs}
	r := gin.New()
	r.Use(sessions.New(testKey, sessions.WithStore(cs)))
	addRoutes(r)
	ck := login(t, r, "k", "v") // stored through the fast path

	slow := gin.New()
	slow.Use(sessions.New(testKey, sessions.WithStore(st), sessions.WithStoreTimeout(50*time.Millisecond)))
	addRoutes(slow)
	// If the timeout did not bound the load, this request would wait for an
	// hour and the test would time out: completing at all is the proof.
	res := do(t, slow, "/get?k=k", ck)
	assert.Equal(t, http.StatusServiceUnavailable, res.code)
	assert.True(t, st.sawDeadline.Load(), "the store call carried the deadline")
	assert.Equal(t, http.StatusOK, do(t, slow, "/untouched", ck).code, "requests that never touch the session are not held up")
}

func TestHostileCookieHeadersAreRejectedBeforeTheStore(t *testing.T) {
	r, st := newEngine(t)
	ck := login(t, r, "k", "v")
	loads := st.loads.Load()
	cases := map[string]string{
		"64 KiB of cookies":                  strings.Repeat("junk=0123456789abcdef; ", 3000),
		"a thousand cookies with its name":   strings.Repeat("sid=AAAA; ", 1000),
		"a huge value under its name":        "sid=" + strings.Repeat("A", 100_000),
		"control bytes and quotes":           "sid=\"\x01\x02\xff\"; sid=%00",
		"an ID of the right shape, unsigned": "sid=" + strings.Repeat("A", 43),
	}
	for name, header := range cases {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/get?k=k", nil)
			req.Header.Set("Cookie", header)
			res := doReq(t, r, req)
			assert.Equal(t, http.StatusOK, res.code)
			assert.Equal(t, "", res.body, "a fresh session")
		})
	}
	assert.Equal(t, loads, st.loads.Load(), "none of them reached the store")
	// The genuine cookie still wins when it comes after junk with its name.
	req := httptest.NewRequest(http.MethodGet, "/get?k=k", nil)
	req.Header.Set("Cookie", "sid=junk; sid="+ck.Value)
	require.Equal(t, "v", doReq(t, r, req).body)
}
