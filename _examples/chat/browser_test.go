package main

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/fastsession/sessions"
)

// chromiumPath finds Debian's Chromium, or skips the test (fails it when
// CI is set).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "Chromium not found at /usr/bin/chromium or on PATH; install it with: apt-get install -y chromium"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: the browser test may not skip)")
	}
	t.Skip(msg)
	return ""
}

// chromium is one headless browser, with its own profile: one visitor.
type chromium struct {
	name string
	tab  context.Context
}

// startChromium starts a browser that lives until the test ends or ctx
// does.
func startChromium(t *testing.T, ctx context.Context, bin, name string) *chromium {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	tab, cancelTab := chromedp.NewContext(alloc)
	// Cleanups run last in, first out: the browser is gone before its
	// profile directory is removed.
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser and waits for it to exit
	})
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1100, 720)); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	return &chromium{name: name, tab: tab}
}

func (b *chromium) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.tab, steps...); err != nil {
		t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// send types text, sends it, and waits until the reply has streamed in full.
func (b *chromium) send(t *testing.T, text string, replies int) {
	t.Helper()
	b.do(t, "send "+text,
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("send-button")),
	)
	ready := `document.getElementById("log").getAttribute("aria-busy") === "false"` +
		` && !document.querySelector("#log .streaming")` +
		` && document.querySelectorAll("#log li.msg.bot").length === ` + strconv.Itoa(replies)
	if _, err := chromedp.Run(b.tab, chromedp.Poll[bool](ready)); err != nil {
		t.Fatalf("%s: waiting for reply %d: %v", b.name, replies, err)
	}
}

// messages returns the conversation on the page, one "role: text" each.
func (b *chromium) messages(t *testing.T) []string {
	t.Helper()
	msgs, err := chromedp.Run(b.tab, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#log li.msg"), li => (li.classList.contains("user") ? "user: " : "bot: ") + li.textContent)`))
	if err != nil {
		t.Fatalf("%s: reading the conversation: %v", b.name, err)
	}
	return msgs
}

// sessionCookie returns the session cookie as the browser keeps it.
func (b *chromium) sessionCookie(t *testing.T, url string) *network.Cookie {
	t.Helper()
	r, err := chromedp.Call(b.tab, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		t.Fatalf("%s: reading cookies: %v", b.name, err)
	}
	for _, c := range r.Cookies {
		if c.Name == sessions.DefaultCookieName {
			return c
		}
	}
	return nil
}

func (b *chromium) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(b.tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%s: screenshot: %v", b.name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s: %s", b.name, path)
}

// expected is the conversation the page must show after texts, as the bot
// answers them.
func expected(texts []string) []string {
	var msgs []message
	var out []string
	for i, text := range texts {
		msgs = append(msgs, message{roleUser, text})
		reply := botReply(msgs, i+1, DefaultMaxMessages)
		msgs = append(msgs, message{roleBot, reply})
		out = append(out, "user: "+text, "bot: "+reply)
	}
	return out
}

// Two visitors from the same IP, each in their own Chromium, chat at the
// same time: each sees only their own conversation, also after a reload,
// and New chat empties one of them only.
//
// The server keeps the default Secure cookie: Chromium treats
// http://127.0.0.1 as a secure context and stores Secure cookies from it,
// which the test checks.
func TestTwoBrowsers(t *testing.T) {
	bin := chromiumPath(t)
	ts := httptest.NewServer(newServer(config{Secret: testSecret, TokenDelay: 5 * time.Millisecond}))
	t.Cleanup(ts.Close)
	shots, err := os.MkdirTemp("", "fastsession-chat-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", shots)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	browsers := []*chromium{startChromium(t, ctx, bin, "ann"), startChromium(t, ctx, bin, "bob")}
	ann, bob := browsers[0], browsers[1]
	texts := map[*chromium][]string{
		ann: {"Hi, I'm Ann and I like apples", "My cat is called <b>Pixel</b>", "I live in Lyon", "What did I say first?"},
		bob: {"Hello, Bob here: bananas please", "My dog is called Rex", "I live in Oslo", "What did I say first?"},
	}

	t.Run("chat at the same time", func(t *testing.T) {
		for _, b := range browsers {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				b.do(t, "open the page", chromedp.Navigate(ts.URL+"/"))
				for i, text := range texts[b] {
					b.send(t, text, i+1)
				}
				want := expected(texts[b])
				if got := b.messages(t); !slices.Equal(got, want) {
					t.Fatalf("conversation:\n%q\nwant\n%q", got, want)
				}
				url, err := chromedp.Run(b.tab, chromedp.Location())
				if err != nil || !strings.Contains(url, "/?c=") {
					t.Fatalf("the address should name the conversation: %q %v", url, err)
				}
				// The reload is rendered by the server, from the session.
				b.do(t, "reload", chromedp.Reload())
				if got := b.messages(t); !slices.Equal(got, want) {
					t.Fatalf("after a reload:\n%q\nwant\n%q", got, want)
				}
			})
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	for _, b := range browsers {
		other := ann
		if b == ann {
			other = bob
		}
		got := strings.Join(b.messages(t), "\n")
		for _, text := range texts[other][:3] {
			if strings.Contains(got, text) {
				t.Fatalf("%s sees %s's %q", b.name, other.name, text)
			}
		}
		b.screenshot(t, shots, b.name+".png")
	}

	// The session cookie is stored, Secure and HttpOnly: page scripts
	// cannot see it.
	cookies := map[*chromium]string{}
	for _, b := range browsers {
		c := b.sessionCookie(t, ts.URL)
		if c == nil {
			t.Fatalf("%s: Chromium kept no session cookie from %s", b.name, ts.URL)
		}
		if !c.Secure || !c.HTTPOnly {
			t.Fatalf("%s: cookie Secure=%v HttpOnly=%v", b.name, c.Secure, c.HTTPOnly)
		}
		cookies[b] = c.Value
		js, err := chromedp.Run(b.tab, chromedp.Evaluate[string](`document.cookie`))
		if err != nil || strings.Contains(js, sessions.DefaultCookieName+"=") {
			t.Fatalf("%s: document.cookie shows %q (%v)", b.name, js, err)
		}
	}
	if cookies[ann] == cookies[bob] {
		t.Fatal("the two browsers share a session")
	}

	// New chat empties Ann's history, with a new session ID, and leaves
	// Bob's alone.
	if _, err := chromedp.Run(ann.tab, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.ID("new-chat")))); err != nil {
		t.Fatalf("ann: New chat: %v", err)
	}
	if got := ann.messages(t); len(got) != 0 {
		t.Fatalf("ann after New chat: %q", got)
	}
	if c := ann.sessionCookie(t, ts.URL); c == nil || c.Value == cookies[ann] {
		t.Fatal("ann: New chat must give the session a new ID")
	}
	ann.send(t, "What did I say first?", 1)
	if got, want := ann.messages(t), expected([]string{"What did I say first?"}); !slices.Equal(got, want) {
		t.Fatalf("ann after New chat:\n%q\nwant\n%q", got, want)
	}
	ann.screenshot(t, shots, "ann-after-new-chat.png")

	bob.do(t, "reload", chromedp.Reload())
	if got, want := bob.messages(t), expected(texts[bob]); !slices.Equal(got, want) {
		t.Fatalf("bob after ann's New chat:\n%q\nwant\n%q", got, want)
	}
}
