package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

type client struct {
	t      *testing.T
	r      http.Handler
	cookie *http.Cookie
}

func (c *client) do(method, path string, form url.Values) *httptest.ResponseRecorder {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	w := httptest.NewRecorder()
	c.r.ServeHTTP(w, req)
	for _, ck := range w.Result().Cookies() {
		if ck.MaxAge < 0 {
			c.cookie = nil
		} else {
			c.cookie = ck
		}
	}
	return w
}

func (c *client) home() (user string, flashes []any) {
	w := c.do(http.MethodGet, "/", nil)
	var v struct {
		User    string `json:"user"`
		Flashes []any  `json:"flashes"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		c.t.Fatalf("home: %v: %s", err, w.Body.String())
	}
	return v.User, v.Flashes
}

func TestLoginRegeneratesAndLogoutDestroys(t *testing.T) {
	gin.SetMode(gin.TestMode)
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	c := &client{t: t, r: newRouter(bytes.Repeat([]byte("k"), 32), sessions.WithStore(st))}

	c.do(http.MethodPost, "/login", url.Values{"user": {"ann"}, "password": {"nope"}})
	if user, flashes := c.home(); user != "" || len(flashes) != 1 || flashes[0] != "wrong user name or password" {
		t.Fatalf("bad login: user %q flashes %v", user, flashes)
	}
	before := c.cookie
	if before == nil {
		t.Fatal("the failed login's flash should have created a session")
	}
	w := c.do(http.MethodPost, "/login", url.Values{"user": {"ann"}, "password": {"correct horse"}})
	if w.Code != http.StatusSeeOther || c.cookie == nil || c.cookie.Value == before.Value {
		t.Fatalf("login must redirect and issue a new cookie: %d %v", w.Code, c.cookie)
	}
	if user, flashes := c.home(); user != "ann" || len(flashes) != 1 || flashes[0] != "welcome, ann" {
		t.Fatalf("after login: user %q flashes %v", user, flashes)
	}
	if _, flashes := c.home(); len(flashes) != 0 {
		t.Fatalf("flashes are shown once: %v", flashes)
	}
	// The pre-login cookie (which an attacker might have planted) is dead.
	attacker := &client{t: t, r: c.r, cookie: before}
	if user, _ := attacker.home(); user != "" {
		t.Fatalf("the pre-login session ID still works: user %q", user)
	}
	loggedIn := c.cookie
	c.do(http.MethodPost, "/logout", nil)
	if user, flashes := c.home(); user != "" || len(flashes) != 1 || flashes[0] != "logged out" {
		t.Fatalf("after logout: user %q flashes %v", user, flashes)
	}
	replay := &client{t: t, r: c.r, cookie: loggedIn}
	if user, _ := replay.home(); user != "" {
		t.Fatalf("the logged-out cookie still works: user %q", user)
	}
}
