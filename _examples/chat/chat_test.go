package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/sqlitestore"
	"github.com/fastsession/sessions/store/storetest"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

var testSecret = bytes.Repeat([]byte("k"), 32)

// TestMain fails the run if a goroutine of this package, of the session
// library or of chromedp outlives the tests.
func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(storetest.CheckGoroutines(m, "fastsession/sessions", "chromedp"))
}

// startServer serves newServer(cfg) on 127.0.0.1 until the test ends.
// Tokens stream without delay unless cfg says otherwise.
func startServer(t *testing.T, cfg config) *httptest.Server {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.TokenDelay == 0 {
		cfg.TokenDelay = -1
	}
	ts := httptest.NewServer(newServer(cfg))
	t.Cleanup(ts.Close)
	return ts
}

// visitor is one browser: it keeps the session cookie by hand, as Go's
// cookie jar does not send a Secure cookie to http://127.0.0.1. The same
// browser can be driven from parallel subtests, each with its own t (see in).
type visitor struct {
	t *testing.T
	*browser
}

type browser struct {
	base   string
	client *http.Client
	mu     sync.Mutex
	cookie *http.Cookie
}

func newVisitor(t *testing.T, base string) *visitor {
	return &visitor{t, &browser{base: base, client: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}}
}

// in returns the same browser driven by the test t.
func (v *visitor) in(t *testing.T) *visitor { return &visitor{t, v.browser} }

func (v *visitor) sid() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cookie == nil {
		return ""
	}
	return v.cookie.Value
}

// do sends req with the visitor's cookie and keeps the cookie it gets back.
func (v *visitor) do(req *http.Request) *http.Response {
	v.t.Helper()
	v.mu.Lock()
	if v.cookie != nil {
		req.AddCookie(v.cookie)
	}
	v.mu.Unlock()
	resp, err := v.client.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == sessions.DefaultCookieName {
			v.mu.Lock()
			v.cookie = ck
			v.mu.Unlock()
		}
	}
	return resp
}

func (v *visitor) post(path string, form url.Values, accept string) *http.Response {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return v.do(req)
}

type sseEvent struct {
	Event string
	Data  map[string]any
}

// readEvent reads the next event of an event stream; ok is false at its end.
func readEvent(t *testing.T, br *bufio.Reader) (ev sseEvent, ok bool) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return ev, false
		}
		if err != nil && err != io.EOF {
			t.Fatalf("reading the event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.Event != "" || ev.Data != nil {
				return ev, true
			}
		case strings.HasPrefix(line, "event:"):
			ev.Event = strings.TrimPrefix(line, "event:")
		case strings.HasPrefix(line, "data:"):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data:")), &ev.Data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		}
	}
}

// say sends text to the conversation chat ("" for a new one) the way the
// page's script does, and returns the conversation's ID, the reply put
// together from the streamed tokens, and every event.
func (v *visitor) say(chat, text string) (id, reply string, events []sseEvent) {
	v.t.Helper()
	resp := v.post("/chat/send", url.Values{"c": {chat}, "text": {text}}, "text/event-stream")
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		body, _ := io.ReadAll(resp.Body)
		v.t.Fatalf("send: %d %s: %s", resp.StatusCode, ct, body)
	}
	br := bufio.NewReader(resp.Body)
	for {
		ev, ok := readEvent(v.t, br)
		if !ok {
			break
		}
		events = append(events, ev)
		switch ev.Event {
		case "chat":
			id, _ = ev.Data["id"].(string)
		case "token":
			s, _ := ev.Data["text"].(string)
			reply += s
		}
	}
	if len(events) == 0 || events[len(events)-1].Event != "done" {
		v.t.Fatalf("the stream did not end with a done event: %v", events)
	}
	return id, reply, events
}

type pageView struct {
	Chat     string    // the conversation shown
	Messages []message // its history, as rendered
	Chats    []string  // the conversation list's titles
	HTML     string
}

var (
	msgRE   = regexp.MustCompile(`(?s)<li class="msg (user|bot)">(.*?)</li>`)
	chatRE  = regexp.MustCompile(`data-chat="([0-9a-f]*)"`)
	titleRE = regexp.MustCompile(`(?s)<li><a href="/\?c=[0-9a-f]+"[^>]*>(.*?)</a>`)
)

// page loads the page of the conversation chat ("" for the default one).
func (v *visitor) page(chat string) pageView {
	v.t.Helper()
	u := v.base + "/"
	if chat != "" {
		u += "?c=" + chat
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	resp := v.do(req)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		v.t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	p := pageView{HTML: string(body)}
	if m := chatRE.FindStringSubmatch(p.HTML); m != nil {
		p.Chat = m[1]
	}
	for _, m := range msgRE.FindAllStringSubmatch(p.HTML, -1) {
		p.Messages = append(p.Messages, message{m[1], html.UnescapeString(m[2])})
	}
	for _, m := range titleRE.FindAllStringSubmatch(p.HTML, -1) {
		p.Chats = append(p.Chats, html.UnescapeString(m[1]))
	}
	return p
}

func (v *visitor) newChat() {
	v.t.Helper()
	before := v.sid()
	resp := v.post("/chat/new", url.Values{}, "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		v.t.Fatalf("new chat: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if v.sid() == "" || v.sid() == before {
		v.t.Fatal("new chat must send a cookie with a new session ID")
	}
}

func userTexts(msgs []message) []string {
	var out []string
	for _, m := range msgs {
		if m.Role == roleUser {
			out = append(out, m.Text)
		}
	}
	return out
}

func TestTurnsPersistAndTheBotRemembers(t *testing.T) {
	ts := startServer(t, config{})
	v := newVisitor(t, ts.URL)

	chat, reply, _ := v.say("", "Hello there")
	if v.sid() == "" {
		t.Fatal("the first message must create the session and send its cookie")
	}
	if want := "Turn 1. You said: “Hello there”"; reply != want {
		t.Fatalf("reply %q, want %q", reply, want)
	}
	steps := []struct{ text, want string }{
		{"I like green tea", "Turn 2. You said: “I like green tea”"},
		{"What did I say first?", "You first said: “Hello there”"},
		{"what did I just say", "Before this, you said: “What did I say first?”"},
		{"How many turns?", "This is turn 5. I remember 9 messages of this conversation, counting yours just now."},
	}
	var want []message
	want = append(want, message{roleUser, "Hello there"}, message{roleBot, reply})
	for _, s := range steps {
		id, got, _ := v.say(chat, s.text)
		if id != chat {
			t.Fatalf("the turn went to conversation %q, not %q", id, chat)
		}
		if got != s.want {
			t.Fatalf("%q: reply %q, want %q", s.text, got, s.want)
		}
		want = append(want, message{roleUser, s.text}, message{roleBot, s.want})
	}

	// A reload, with or without the conversation in the address, shows it.
	for _, c := range []string{chat, ""} {
		p := v.page(c)
		if p.Chat != chat || !slices.Equal(p.Messages, want) {
			t.Fatalf("page %q: conversation %q\n%v\nwant\n%v", c, p.Chat, p.Messages, want)
		}
		if !slices.Equal(p.Chats, []string{"Hello there"}) {
			t.Fatalf("conversation list %q", p.Chats)
		}
	}
}

func TestSeveralConversations(t *testing.T) {
	ts := startServer(t, config{MaxChats: 2})
	v := newVisitor(t, ts.URL)
	a, _, _ := v.say("", "apples")
	b, _, _ := v.say("", "bananas")
	if a == b {
		t.Fatal("an empty conversation ID must start a new conversation")
	}
	v.say(a, "more apples")
	if _, reply, _ := v.say(b, "what did I say first"); reply != "You first said: “bananas”" {
		t.Fatalf("conversation b remembers %q", reply)
	}
	if got := userTexts(v.page(a).Messages); !slices.Equal(got, []string{"apples", "more apples"}) {
		t.Fatalf("conversation a: %q", got)
	}
	if got := v.page("").Chats; !slices.Equal(got, []string{"bananas", "apples"}) {
		t.Fatalf("list, most recent first: %q", got)
	}
	// A page-chosen ID (the page's "+ Another conversation" link) is used
	// as is; past MaxChats the least recently used conversation goes.
	fresh := newChatID()
	if p := v.page(fresh); p.Chat != fresh || len(p.Messages) != 0 {
		t.Fatalf("a new conversation's page: %q %v", p.Chat, p.Messages)
	}
	if id, _, _ := v.say(fresh, "cherries"); id != fresh {
		t.Fatalf("conversation %q, want %q", id, fresh)
	}
	if got := v.page("").Chats; !slices.Equal(got, []string{"cherries", "bananas"}) {
		t.Fatalf("list after the cap: %q", got)
	}
	if p := v.page(a); len(p.Messages) != 0 {
		t.Fatalf("the dropped conversation still shows: %v", p.Messages)
	}
}

func TestVisitorsNeverSeeEachOther(t *testing.T) {
	ts := startServer(t, config{})
	ann, bob := newVisitor(t, ts.URL), newVisitor(t, ts.URL)
	words := map[*visitor][]string{
		ann: {"ann one", "ann two", "ann three", "ann four"},
		bob: {"bob one", "bob two", "bob three", "bob four"},
	}
	chats := map[*visitor]string{}
	var mu sync.Mutex
	t.Run("at the same time", func(t *testing.T) {
		for name, v := range map[string]*visitor{"ann": ann, "bob": bob} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				chat := ""
				for _, w := range words[v] {
					chat, _, _ = v.in(t).say(chat, w)
				}
				mu.Lock()
				chats[v] = chat
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	if ann.sid() == bob.sid() {
		t.Fatal("two visitors share a session")
	}
	for _, v := range []*visitor{ann, bob} {
		if got := userTexts(v.page("").Messages); !slices.Equal(got, words[v]) {
			t.Fatalf("history %q, want %q", got, words[v])
		}
		if _, reply, _ := v.say(chats[v], "What did I say first?"); reply != "You first said: “"+words[v][0]+"”" {
			t.Fatalf("recall: %q", reply)
		}
	}
	// Another visitor's conversation ID shows nothing of it.
	if p := bob.page(chats[ann]); len(p.Messages) != 0 || strings.Contains(p.HTML, "ann") {
		t.Fatalf("bob sees ann's conversation: %v", p.Messages)
	}
}

func TestNewChatClearsOnlyThatVisitor(t *testing.T) {
	ts := startServer(t, config{})
	ann, bob := newVisitor(t, ts.URL), newVisitor(t, ts.URL)
	ac, _, _ := ann.say("", "ann's secret")
	bc, _, _ := bob.say("", "bob's secret")
	ann.say(ac, "ann again")
	old := newVisitor(t, ts.URL)
	old.cookie = ann.cookie

	ann.newChat()
	if p := ann.page(""); len(p.Messages) != 0 || len(p.Chats) != 0 {
		t.Fatalf("after New chat: %v, list %q", p.Messages, p.Chats)
	}
	if p := ann.page(ac); len(p.Messages) != 0 {
		t.Fatalf("the old conversation still shows: %v", p.Messages)
	}
	// The cookie from before New chat names a session that is gone.
	if p := old.page(ac); len(p.Messages) != 0 {
		t.Fatalf("the old session ID still works: %v", p.Messages)
	}
	if got := userTexts(bob.page(bc).Messages); !slices.Equal(got, []string{"bob's secret"}) {
		t.Fatalf("bob's history after ann's New chat: %q", got)
	}
	if _, reply, _ := ann.say("", "fresh start"); reply != "Turn 1. You said: “fresh start”" {
		t.Fatalf("after New chat: %q", reply)
	}
}

func TestHistoryIsCapped(t *testing.T) {
	ts := startServer(t, config{MaxMessages: 6})
	v := newVisitor(t, ts.URL)
	chat := ""
	for i := 1; i <= 5; i++ {
		chat, _, _ = v.say(chat, fmt.Sprintf("message %d", i))
	}
	p := v.page(chat)
	if got := userTexts(p.Messages); len(p.Messages) != 6 || !slices.Equal(got, []string{"message 3", "message 4", "message 5"}) {
		t.Fatalf("capped history: %v", p.Messages)
	}
	// Turn 6 drops turn 3; the turn count still counts every turn.
	_, reply, _ := v.say(chat, "what did I say first?")
	if want := "I keep only the last 6 messages, so your first 3 turns are gone. The first thing you said that I still have: “message 4”"; reply != want {
		t.Fatalf("reply %q, want %q", reply, want)
	}
	if _, reply, _ := v.say(chat, "how many turns"); !strings.HasPrefix(reply, "This is turn 7. I remember 5 messages") {
		t.Fatalf("reply %q", reply)
	}
	if p := v.page(chat); len(p.Messages) != 6 || p.Messages[0].Text != "message 5" {
		t.Fatalf("history: %v", p.Messages)
	}
}

func TestReplyStreamsAsEvents(t *testing.T) {
	ts := startServer(t, config{})
	v := newVisitor(t, ts.URL)
	chat, reply, events := v.say("", "one two three four")
	if want := "Turn 1. You said: “one two three four”"; reply != want {
		t.Fatalf("reply %q, want %q", reply, want)
	}
	var names []string
	for _, ev := range events {
		names = append(names, ev.Event)
	}
	want := []string{"chat"}
	for range tokens(reply) {
		want = append(want, "token")
	}
	want = append(want, "done")
	if !slices.Equal(names, want) {
		t.Fatalf("events %q, want %q", names, want)
	}
	if got := v.page(chat).Messages; len(got) != 2 || got[1] != (message{roleBot, reply}) {
		t.Fatalf("history after the stream: %v", got)
	}
}

func TestReplyStoredAfterHeadersWentOut(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, config{pause: func(ctx context.Context, token int) error {
		if token == 1 { // after the first token
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}})
	v := newVisitor(t, ts.URL)

	// A new visitor: the session is created by this very request.
	resp := v.post("/chat/send", url.Values{"text": {"stream me"}}, "text/event-stream")
	defer resp.Body.Close()
	if v.sid() == "" {
		t.Fatal("the stream's headers must carry the new session's cookie")
	}
	br := bufio.NewReader(resp.Body)
	chatEv, _ := readEvent(t, br)
	first, _ := readEvent(t, br)
	if chatEv.Event != "chat" || first.Event != "token" {
		t.Fatalf("events %v, %v", chatEv, first)
	}
	chat := chatEv.Data["id"].(string)

	// Mid-stream, with the headers and a token out: the visitor's message
	// is stored, the reply is not yet.
	if got := v.page(chat).Messages; !slices.Equal(got, []message{{roleUser, "stream me"}}) {
		t.Fatalf("history mid-stream: %v", got)
	}
	close(release)
	reply := first.Data["text"].(string)
	var last sseEvent
	for {
		ev, ok := readEvent(t, br)
		if !ok {
			break
		}
		if ev.Event == "token" {
			reply += ev.Data["text"].(string)
		}
		last = ev
	}
	if last.Event != "done" {
		t.Fatalf("last event %v", last)
	}
	want := []message{{roleUser, "stream me"}, {roleBot, reply}}
	if got := v.page(chat).Messages; !slices.Equal(got, want) {
		t.Fatalf("history after the stream: %v, want %v", got, want)
	}
}

func TestReplyKeptWhenTheVisitorLeaves(t *testing.T) {
	gone := make(chan struct{})
	ts := startServer(t, config{pause: func(ctx context.Context, token int) error {
		if token == 1 {
			<-ctx.Done() // the visitor closes the tab mid-stream
			close(gone)
			return ctx.Err()
		}
		return nil
	}})
	v := newVisitor(t, ts.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/chat/send", strings.NewReader("text=bye"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/event-stream")
	resp := v.do(req)
	br := bufio.NewReader(resp.Body)
	chatEv, _ := readEvent(t, br)
	readEvent(t, br)
	cancel()
	resp.Body.Close()
	<-gone
	chat := chatEv.Data["id"].(string)
	want := []message{{roleUser, "bye"}, {roleBot, "Turn 1. You said: “bye”"}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := v.page(chat).Messages
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two tabs of one visitor sending at the same time: every turn is kept.
func TestConcurrentTabsOfOneVisitor(t *testing.T) {
	ts := startServer(t, config{TokenDelay: time.Millisecond})
	v := newVisitor(t, ts.URL)
	a, _, _ := v.say("", "tab a")
	b, _, _ := v.say("", "tab b")
	const n = 5
	t.Run("at the same time", func(t *testing.T) {
		for _, chat := range []string{a, b} {
			t.Run(chat, func(t *testing.T) {
				t.Parallel()
				for i := range n {
					v.in(t).say(chat, fmt.Sprintf("%s %d", chat, i))
				}
			})
		}
	})
	for _, chat := range []string{a, b} {
		if got := v.page(chat).Messages; len(got) != 2*(n+1) {
			t.Fatalf("conversation %s has %d messages, want %d: %v", chat, len(got), 2*(n+1), got)
		}
	}
}

func TestEverythingTypedIsEscaped(t *testing.T) {
	ts := startServer(t, config{})
	v := newVisitor(t, ts.URL)
	evil := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	chat, _, _ := v.say("", evil)
	p := v.page(chat)
	if strings.Contains(p.HTML, "<script>alert") || strings.Contains(p.HTML, "<img src=x") {
		t.Fatal("the visitor's text reached the page unescaped")
	}
	if len(p.Messages) != 2 || p.Messages[0].Text != evil || p.Chats[0] != title(p.Messages) {
		t.Fatalf("history %v, list %q", p.Messages, p.Chats)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/", nil)
	resp := v.do(req)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}
}

// The page works without its script: the form posts, the reply is stored
// whole, and the browser is sent back to the conversation.
func TestFormPostWithoutScript(t *testing.T) {
	ts := startServer(t, config{})
	v := newVisitor(t, ts.URL)
	resp := v.post("/chat/send", url.Values{"text": {"no script here"}}, "text/html")
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/?c=") {
		t.Fatalf("%d to %q", resp.StatusCode, loc)
	}
	want := []message{{roleUser, "no script here"}, {roleBot, "Turn 1. You said: “no script here”"}}
	if got := v.page(strings.TrimPrefix(loc, "/?c=")).Messages; !slices.Equal(got, want) {
		t.Fatalf("history %v", got)
	}
	for _, text := range []string{"", "   ", strings.Repeat("x", maxInput+1)} {
		resp := v.post("/chat/send", url.Values{"text": {text}}, "text/event-stream")
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("message of %d bytes accepted: %d", len(text), resp.StatusCode)
		}
	}
}

// restartable stores: each opens a store that outlives a restart of the
// app, and closes it.
var restartable = map[string]func(t *testing.T) func() (sessions.Store, func()){
	"sqlite": func(t *testing.T) func() (sessions.Store, func()) {
		path := filepath.Join(t.TempDir(), "chat.db")
		return func() (sessions.Store, func()) {
			st, err := sqlitestore.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return st, func() {
				if err := st.Close(); err != nil {
					t.Error(err)
				}
			}
		}
	},
	"redis": func(t *testing.T) func() (sessions.Store, func()) {
		addr := envOr("FASTSESSION_REDIS_ADDR", "127.0.0.1:6379")
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			_ = rdb.Close()
			storetest.Unreachable(t, "Redis at "+addr, "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''", err)
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		prefix := "fastsession-chat-test-" + hex.EncodeToString(b[:]) + ":"
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			keys, err := rdb.Keys(ctx, prefix+"*").Result()
			if err == nil && len(keys) > 0 {
				err = rdb.Del(ctx, keys...).Err()
			}
			if err != nil {
				t.Errorf("cleanup: %v", err)
			}
			_ = rdb.Close()
		})
		return func() (sessions.Store, func()) {
			return redisstore.New(rdb, redisstore.WithKeyPrefix(prefix)), func() {}
		}
	},
}

// The history survives a restart of the app: the server and its store are
// closed, then opened again on the same data with the same secret.
func TestHistorySurvivesRestart(t *testing.T) {
	for name, setup := range restartable {
		t.Run(name, func(t *testing.T) {
			open := setup(t)

			st, closeStore := open()
			ts := httptest.NewServer(newServer(config{Secret: testSecret, Store: st, TokenDelay: -1}))
			v := newVisitor(t, ts.URL)
			chat, _, _ := v.say("", "remember me")
			v.say(chat, "and this")
			ts.Close()
			closeStore()

			st, closeStore = open()
			defer closeStore()
			ts = httptest.NewServer(newServer(config{Secret: testSecret, Store: st, TokenDelay: -1}))
			defer ts.Close()
			v.base = ts.URL
			if got := userTexts(v.page("").Messages); !slices.Equal(got, []string{"remember me", "and this"}) {
				t.Fatalf("history after the restart: %q", got)
			}
			if _, reply, _ := v.say(chat, "what did I say first?"); reply != "You first said: “remember me”" {
				t.Fatalf("reply after the restart: %q", reply)
			}
		})
	}
}
