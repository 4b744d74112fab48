// Package storetest checks that a session store keeps the contract of
// sessions.Store (and of the optional interfaces it implements), against the
// real store.
//
// Call Run from a test of the store's package:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) sessions.Store {
//			s := mystore.New(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// newStore is called once per subtest; the store it returns may be shared
// with other runs (a real server), since every subtest uses fresh random IDs.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/gin-gonic/gin"
)

// Precision is how far a store may round the expiry it reports, and how
// long past expiresAt it may take to stop returning an entry: stores with
// one-second resolution need it.
const precision = 1100 * time.Millisecond

// Run runs the whole contract against the store that newStore returns.
func Run(t *testing.T, newStore func(t *testing.T) sessions.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, sessions.Store)
	}{
		{"a missing ID is not found and is no error", testMissing},
		{"saved data loads back byte for byte", testSaveLoad},
		{"the expiry reported is the one saved", testExpiryReported},
		{"a save replaces the previous data", testOverwrite},
		{"sessions under different IDs stay apart", testIsolation},
		{"delete removes and deleting a missing ID is fine", testDelete},
		{"expired sessions are never returned", testExpiry},
		{"large values round-trip", testLarge},
		{"a cancelled context is an error wrapping context.Canceled", testCancelled},
		{"concurrent use loses nothing", testConcurrent},
		{"touch moves the expiry without touching the data", testTouch},
		{"values keep their Go type through the middleware", testTypeFidelity},
	}
	tests = append(tests, optionalTests...)
	tests = append(tests, middlewareTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// Unreachable reports that the server a store test needs cannot be reached.
// The test is skipped with a message that says how to start the server;
// when the CI environment variable is set it fails instead, so a CI run
// proves that every store really ran.
func Unreachable(t testing.TB, server, howToStart string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s unreachable (%v); start it with: %s", server, err, howToStart)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: a store test may not skip)")
	}
	t.Skip(msg)
}

// NewID returns a random ID of the shape the middleware uses.
func NewID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustSave(t *testing.T, s sessions.Store, id string, data []byte, exp time.Time) {
	t.Helper()
	if err := s.Save(ctx(t), id, data, exp); err != nil {
		t.Fatalf("Save(%s): %v", id[:6], err)
	}
}

func mustLoad(t *testing.T, s sessions.Store, id string) ([]byte, time.Time, bool) {
	t.Helper()
	data, exp, found, err := s.Load(ctx(t), id)
	if err != nil {
		t.Fatalf("Load(%s): %v", id[:6], err)
	}
	if !found && data != nil {
		t.Fatalf("Load(%s): found is false but data is %d bytes", id[:6], len(data))
	}
	return data, exp, found
}

func later() time.Time { return time.Now().Add(time.Hour) }

func testMissing(t *testing.T, s sessions.Store) {
	if _, _, found := mustLoad(t, s, NewID()); found {
		t.Fatal("Load of an ID never saved: found is true")
	}
}

func testSaveLoad(t *testing.T, s sessions.Store) {
	id := NewID()
	data := make([]byte, 256)
	for i := range data {
		data[i] = byte(i) // every byte value, NUL included
	}
	mustSave(t, s, id, data, later())
	got, _, found := mustLoad(t, s, id)
	if !found {
		t.Fatal("Load after Save: not found")
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("Load after Save: got %d bytes %x..., want %x...", len(got), head(got), head(data))
	}
}

func testExpiryReported(t *testing.T, s sessions.Store) {
	id := NewID()
	exp := time.Now().Add(90 * time.Minute)
	mustSave(t, s, id, []byte("x"), exp)
	_, got, found := mustLoad(t, s, id)
	if !found {
		t.Fatal("not found after Save")
	}
	if got.IsZero() {
		return // the store does not know expiries; allowed
	}
	if got.Before(exp.Add(-time.Millisecond)) || got.After(exp.Add(precision)) {
		t.Fatalf("expiry reported %v, saved %v: must not be earlier, nor later by more than %v", got, exp, precision)
	}
}

func testOverwrite(t *testing.T, s sessions.Store) {
	id := NewID()
	mustSave(t, s, id, []byte("first value, longer than the second"), later())
	mustSave(t, s, id, []byte("second"), later())
	got, _, found := mustLoad(t, s, id)
	if !found || string(got) != "second" {
		t.Fatalf("after two saves: found=%v data=%q, want the second", found, got)
	}
}

func testIsolation(t *testing.T, s sessions.Store) {
	ids := []string{NewID(), NewID(), NewID()}
	for i, id := range ids {
		mustSave(t, s, id, []byte(fmt.Sprintf("data of %d", i)), later())
	}
	for i, id := range ids {
		got, _, found := mustLoad(t, s, id)
		if want := fmt.Sprintf("data of %d", i); !found || string(got) != want {
			t.Fatalf("session %d: found=%v data=%q, want %q", i, found, got, want)
		}
	}
}

func testDelete(t *testing.T, s sessions.Store) {
	id, other := NewID(), NewID()
	mustSave(t, s, id, []byte("a"), later())
	mustSave(t, s, other, []byte("b"), later())
	if err := s.Delete(ctx(t), id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, found := mustLoad(t, s, id); found {
		t.Fatal("found after Delete")
	}
	if got, _, found := mustLoad(t, s, other); !found || string(got) != "b" {
		t.Fatalf("Delete removed another session: found=%v data=%q", found, got)
	}
	if err := s.Delete(ctx(t), NewID()); err != nil {
		t.Fatalf("Delete of a missing ID: %v", err)
	}
	if err := s.Delete(ctx(t), id); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func testExpiry(t *testing.T, s sessions.Store) {
	id, keep := NewID(), NewID()
	exp := time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, id, []byte("short-lived"), exp)
	mustSave(t, s, keep, []byte("long-lived"), later())
	if _, _, found := mustLoad(t, s, id); !found {
		t.Fatal("not found before its expiry")
	}
	// Wait until the expiry has certainly passed, with the store's
	// precision, then check; nothing here measures speed.
	time.Sleep(time.Until(exp.Add(precision)))
	if _, _, found := mustLoad(t, s, id); found {
		t.Fatal("an expired session was returned")
	}
	if _, _, found := mustLoad(t, s, keep); !found {
		t.Fatal("a live session disappeared with an expired one")
	}
}

func testLarge(t *testing.T, s sessions.Store) {
	id := NewID()
	data := make([]byte, 400<<10)
	_, _ = rand.Read(data)
	mustSave(t, s, id, data, later())
	got, _, found := mustLoad(t, s, id)
	if !found || !bytes.Equal(got, data) {
		t.Fatalf("400 KiB value: found=%v, %d bytes back, equal=%v", found, len(got), bytes.Equal(got, data))
	}
}

func testCancelled(t *testing.T, s sessions.Store) {
	id := NewID()
	mustSave(t, s, id, []byte("kept"), later())
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, _, err := s.Load(c, id); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
	if err := s.Save(c, id, []byte("overwritten"), later()); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
	if err := s.Delete(c, id); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
	if got, _, found := mustLoad(t, s, id); !found || string(got) != "kept" {
		t.Errorf("after cancelled calls: found=%v data=%q, want the data untouched", found, got)
	}
}

func testConcurrent(t *testing.T, s sessions.Store) {
	const workers, rounds = 8, 25
	shared := NewID()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := NewID()
			for i := 0; i < rounds; i++ {
				want := fmt.Sprintf("worker %d round %d", w, i)
				if err := s.Save(context.Background(), own, []byte(want), later()); err != nil {
					errs <- err
					return
				}
				got, _, found, err := s.Load(context.Background(), own)
				if err != nil || !found || string(got) != want {
					errs <- fmt.Errorf("worker %d round %d: found=%v data=%q err=%v", w, i, found, got, err)
					return
				}
				if err := s.Save(context.Background(), shared, []byte(want), later()); err != nil {
					errs <- err
					return
				}
			}
			if err := s.Delete(context.Background(), own); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _, found := mustLoad(t, s, shared)
	if !found || !bytes.HasPrefix(got, []byte("worker ")) {
		t.Fatalf("shared session after concurrent saves: found=%v data=%q", found, got)
	}
}

func testTouch(t *testing.T, s sessions.Store) {
	tc, ok := s.(sessions.Toucher)
	if !ok {
		t.Skip("the store does not implement sessions.Toucher")
	}
	id := NewID()
	mustSave(t, s, id, []byte("data"), time.Now().Add(1500*time.Millisecond))
	newExp := time.Now().Add(time.Hour)
	if err := tc.Touch(ctx(t), id, newExp); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	time.Sleep(1500*time.Millisecond + precision)
	got, exp, found := mustLoad(t, s, id)
	if !found || string(got) != "data" {
		t.Fatalf("after Touch past the old expiry: found=%v data=%q", found, got)
	}
	if !exp.IsZero() && exp.Before(newExp.Add(-time.Millisecond)) {
		t.Fatalf("expiry after Touch is %v, want %v", exp, newExp)
	}
	missing := NewID()
	if err := tc.Touch(ctx(t), missing, newExp); err != nil {
		t.Fatalf("Touch of a missing ID: %v", err)
	}
	if _, _, found := mustLoad(t, s, missing); found {
		t.Fatal("Touch of a missing ID created it")
	}
}

// Fidelity is a user struct stored through the gob fallback.
type Fidelity struct {
	Name  string
	Turns []string
	At    time.Time
}

var registerOnce sync.Once

func testTypeFidelity(t *testing.T, s sessions.Store) {
	registerOnce.Do(func() { sessions.Register(Fidelity{}) })
	at := time.Date(2026, 11, 22, 10, 30, 0, 123456789, time.FixedZone("X", 3600))
	values := map[string]any{
		"bool":    true,
		"string":  "héllo\x00world",
		"int":     -42,
		"int64":   int64(1) << 62,
		"float64": 3.25,
		"bytes":   []byte{0, 1, 2, 255},
		"time":    at,
		"strings": []string{"a", "", "c"},
		"map":     map[string]any{"n": 1, "s": "x", "nested": []any{true, 2.5, "y"}},
		"slice":   []any{"a", 1, int64(2), false, nil, map[string]any{"k": "v"}},
		"struct":  Fidelity{Name: "ann", Turns: []string{"hi", "there"}, At: at.UTC()},
		"big":     string(bytes.Repeat([]byte("z"), 100<<10)),
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(sessions.New(bytes.Repeat([]byte("k"), 32), sessions.WithStore(s), sessions.WithSecure(false)))
	r.GET("/set", func(c *gin.Context) {
		for k, v := range values {
			sessions.Default(c).Set(k, v)
		}
		c.Status(http.StatusNoContent)
	})
	got := map[string]any{}
	r.GET("/get", func(c *gin.Context) {
		for k := range values {
			got[k] = sessions.Default(c).Get(k)
		}
		c.Status(http.StatusNoContent)
	})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/set", nil))
	cookies := w.Result().Cookies()
	if w.Code != http.StatusNoContent || len(cookies) != 1 {
		t.Fatalf("set: status %d, %d cookies, body %q", w.Code, len(cookies), w.Body.String())
	}
	req := httptest.NewRequest(http.MethodGet, "/get", nil)
	req.AddCookie(cookies[0])
	w = httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusNoContent {
		t.Fatalf("get: status %d, body %q", w.Code, w.Body.String())
	}
	for k, want := range values {
		g := got[k]
		if reflect.TypeOf(g) != reflect.TypeOf(want) {
			t.Errorf("%s: came back as %T, stored as %T", k, g, want)
			continue
		}
		if wt, ok := want.(time.Time); ok {
			if !wt.Equal(g.(time.Time)) {
				t.Errorf("%s: %v, want %v", k, g, want)
			}
			continue
		}
		if wf, ok := want.(Fidelity); ok {
			gf := g.(Fidelity)
			if gf.Name != wf.Name || !reflect.DeepEqual(gf.Turns, wf.Turns) || !gf.At.Equal(wf.At) {
				t.Errorf("%s: %+v, want %+v", k, gf, wf)
			}
			continue
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s: %#v, want %#v", k, short(g), short(want))
		}
	}
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

func short(v any) any {
	if s, ok := v.(string); ok && len(s) > 40 {
		return s[:40] + "..."
	}
	return v
}
