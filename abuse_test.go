package sessions_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFloodsLeaveNoTrace sends a million cookie-less requests and a hundred
// thousand forged cookies to a handler that reads the session, the traffic
// of a bot that never keeps cookies or that guesses them. The store gets no
// entry, forged cookies never reach it at all, and the heap returns to where
// it was.
func TestFloodsLeaveNoTrace(t *testing.T) {
	r, st := newEngine(t)
	ck := login(t, r, "k", "v")
	loads := st.loads.Load()
	entries := st.Len()

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()

	run := func(total int, req func(i int) *http.Request) {
		workers := runtime.GOMAXPROCS(0)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := httptest.NewRecorder()
				for i := w; i < total; i += workers {
					rec.Body.Reset()
					clear(rec.Header())
					r.ServeHTTP(rec, req(i))
					if rec.Code != http.StatusOK {
						t.Errorf("request %d: %d", i, rec.Code)
						return
					}
				}
			}()
		}
		wg.Wait()
	}

	plain := httptest.NewRequest(http.MethodGet, "/get?k=k", nil)
	run(1_000_000, func(int) *http.Request { return plain })
	assert.Equal(t, loads, st.loads.Load(), "cookie-less requests never reach the store")
	assert.Equal(t, entries, st.Len(), "cookie-less requests store nothing")

	// Forged cookies: well-formed values, each with a random ID, signed
	// with a wrong key, or the genuine cookie with its signature broken.
	forged := make([]*http.Request, 1000)
	for i := range forged {
		req := httptest.NewRequest(http.MethodGet, "/get?k=k", nil)
		raw := make([]byte, 105)
		_, _ = rand.Read(raw)
		v := base64.URLEncoding.EncodeToString(raw)
		if i%2 == 0 {
			b := []byte(ck.Value)
			b[len(b)-3] ^= 1
			v = string(b)
		}
		req.Header.Set("Cookie", "sid="+v)
		forged[i] = req
	}
	run(100_000, func(i int) *http.Request { return forged[i%len(forged)] })
	assert.Equal(t, loads, st.loads.Load(), "forged cookies are rejected before any store access")
	assert.Equal(t, entries, st.Len(), "forged cookies store nothing")

	after := heap()
	require.Less(t, int64(after)-int64(before), int64(8<<20),
		"the heap grew by %d bytes over the floods", int64(after)-int64(before))
	assert.Equal(t, "v", do(t, r, "/get?k=k", ck).body, "the genuine session is untouched")
}
