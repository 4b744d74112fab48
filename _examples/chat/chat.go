package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fastsession/sessions"
	"github.com/gin-gonic/gin"
)

// Session keys. Both hold values the default codec stores natively
// ([]map[string]any of strings and ints), so nothing needs
// sessions.Register.
const (
	// keyChats lists the visitor's conversations, most recently used
	// first: {"id": string, "title": string, "turns": int}.
	keyChats = "chats"
	// keyChatPrefix + a conversation's ID holds its messages, oldest
	// first: {"role": "user" or "bot", "text": string}.
	keyChatPrefix = "chat:"
)

const (
	roleUser = "user"
	roleBot  = "bot"

	// maxInput is the longest message accepted, in bytes.
	maxInput = 1000
	// maxTitle is the length of a conversation's title, in runes: the
	// start of its first message.
	maxTitle = 40
)

// Defaults of the config, also the defaults of the command-line flags.
const (
	DefaultMaxMessages = 50
	DefaultMaxChats    = 8
	DefaultTokenDelay  = 40 * time.Millisecond
)

//go:embed web
var web embed.FS

var pageTemplate = template.Must(template.ParseFS(web, "web/index.html"))

// config is what newServer needs. Zero fields take their defaults.
type config struct {
	Secret []byte         // signs the session cookie: 32 bytes or more
	Store  sessions.Store // nil: a memory store private to this server

	MaxMessages int           // messages kept per conversation; the oldest turns are dropped
	MaxChats    int           // conversations kept per session; the least recently used is dropped
	TokenDelay  time.Duration // pause between two streamed tokens; negative: none

	// SessionOptions are added after the server's own session options.
	SessionOptions []sessions.Option

	// pause runs before each token of a streamed reply and ends the stream
	// when it returns an error. nil: wait TokenDelay, or until the visitor
	// has gone.
	pause func(ctx context.Context, token int) error
}

// message is one line of a conversation.
type message struct {
	Role string
	Text string
}

// chatInfo is one entry of the conversation list.
type chatInfo struct {
	ID    string
	Title string
	Turns int // turns so far, including those the cap has dropped
}

// server answers the chat's routes.
type server struct {
	cfg config
}

// newServer returns the chat app: the page, its assets and the chat routes,
// behind the session middleware.
func newServer(cfg config) *gin.Engine {
	if cfg.MaxMessages == 0 {
		cfg.MaxMessages = DefaultMaxMessages
	}
	if cfg.MaxChats == 0 {
		cfg.MaxChats = DefaultMaxChats
	}
	if cfg.TokenDelay == 0 {
		cfg.TokenDelay = DefaultTokenDelay
	}
	if cfg.MaxMessages < 2 || cfg.MaxChats < 1 {
		panic("chat: MaxMessages must be at least 2 and MaxChats at least 1")
	}
	if cfg.pause == nil {
		delay := max(cfg.TokenDelay, 0)
		cfg.pause = func(ctx context.Context, _ int) error {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	srv := &server{cfg: cfg}

	opts := []sessions.Option{
		// Room for the largest session the caps allow: every conversation
		// full of the longest messages.
		sessions.WithMaxSize(max(sessions.DefaultMaxSize, cfg.MaxChats*(cfg.MaxMessages*(maxInput+200)+200)+4096)),
		sessions.WithStoreTimeout(3 * time.Second),
		// One request at a time per visitor: two tabs sending at once
		// would otherwise each append to the history they loaded, and the
		// last save would drop the other's turn. With Redis the lock holds
		// across every instance of the app.
		sessions.WithLocking(30 * time.Second),
	}
	if cfg.Store != nil {
		opts = append(opts, sessions.WithStore(cfg.Store))
	}
	opts = append(opts, cfg.SessionOptions...)

	r := gin.New()
	r.Use(gin.Recovery())
	r.Use(sessions.New(cfg.Secret, opts...))

	assets, _ := fs.Sub(web, "web")
	r.StaticFileFS("/static/chat.js", "chat.js", http.FS(assets))
	r.StaticFileFS("/static/chat.css", "chat.css", http.FS(assets))
	r.GET("/", srv.index)
	r.POST("/chat/send", srv.send)
	r.POST("/chat/new", srv.newChat)
	return r
}

// index renders the page with the conversation ?c=ID (the most recent
// one without c) from the session.
func (srv *server) index(c *gin.Context) {
	s := sessions.Default(c)
	if s.Err() != nil {
		return // the session middleware has answered
	}
	chats := loadChats(s)
	current := c.Query("c")
	switch {
	case current == "" && len(chats) > 0:
		current = chats[0].ID
	case !validChatID(current):
		current = newChatID()
	}
	data := struct {
		Chats       []chatInfo
		Current     string
		Messages    []message
		NewID       string
		MaxMessages int
	}{chats, current, loadMessages(s, current), newChatID(), srv.cfg.MaxMessages}

	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		_ = c.Error(err)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	securityHeaders(c)
	c.Header("Cache-Control", "no-store") // the history is private
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}

// send takes the visitor's message and answers it. A page with scripts asks
// for text/event-stream and gets the reply token by token; a plain form
// post gets the whole reply stored and a redirect back to the page.
func (srv *server) send(c *gin.Context) {
	text := strings.TrimSpace(strings.ReplaceAll(c.PostForm("text"), "\r\n", "\n"))
	switch {
	case text == "":
		c.String(http.StatusBadRequest, "empty message")
		return
	case len(text) > maxInput || !utf8.ValidString(text):
		c.String(http.StatusRequestEntityTooLarge, "messages are limited to %d bytes of UTF-8", maxInput)
		return
	}
	s := sessions.Default(c)
	if s.Err() != nil {
		return // the session middleware has answered
	}
	id, msgs, turn := srv.addTurn(s, c.PostForm("c"), text)
	reply := botReply(msgs, turn, srv.cfg.MaxMessages)

	if !strings.Contains(c.GetHeader("Accept"), "text/event-stream") {
		srv.addReply(s, id, reply)
		c.Redirect(http.StatusSeeOther, "/?c="+id) // saved on the way out
		return
	}

	// Store the visitor's message before the stream starts. This Save also
	// adds the cookie of a session created by this request: once the
	// headers are out, a new cookie could no longer be sent, and the reply
	// stored after the stream would be lost. Calling Save here (the first
	// write would save too) lets a failing store get a plain error answer.
	if err := s.Save(); err != nil {
		log.Printf("chat: message not stored: %v", err)
		status := http.StatusInternalServerError
		if errors.Is(err, sessions.ErrStore) {
			status = http.StatusServiceUnavailable
		}
		c.String(status, "your message could not be stored, try again")
		return
	}

	c.Header("Cache-Control", "no-store")
	c.Header("X-Accel-Buffering", "no") // no buffering proxy in between
	c.SSEvent("chat", gin.H{"id": id, "title": title(msgs), "turn": turn})
	c.Writer.Flush() // the headers go out here
	ctx := c.Request.Context()
	for i, tok := range tokens(reply) {
		if srv.cfg.pause(ctx, i) != nil {
			break // the visitor has gone; the reply is still kept
		}
		c.SSEvent("token", gin.H{"text": tok})
		c.Writer.Flush()
	}

	// The stream is over and the headers went out long ago: the whole reply
	// joins the history now. The session already has its cookie, so the
	// middleware would store this change when the handler returns; saving
	// here tells the page whether that worked.
	srv.addReply(s, id, reply)
	if err := s.Save(); err != nil {
		log.Printf("chat: reply not stored: %v", err)
		c.SSEvent("error", gin.H{"error": "the reply could not be stored"})
		return
	}
	c.SSEvent("done", gin.H{"turn": turn})
}

// newChat forgets every conversation and gives the session a new ID, then
// shows the empty page.
func (srv *server) newChat(c *gin.Context) {
	s := sessions.Default(c)
	if s.Err() != nil {
		return // the session middleware has answered
	}
	s.Clear()
	if err := s.Regenerate(); err != nil {
		c.String(http.StatusInternalServerError, "could not start a new chat")
		return
	}
	c.Redirect(http.StatusSeeOther, "/")
}

// addTurn appends the visitor's message to the conversation id (a new one
// if id is unknown) and moves that conversation to the top of the list. It
// returns the conversation's ID, its messages and the number of this turn.
func (srv *server) addTurn(s *sessions.Session, id, text string) (string, []message, int) {
	chats := loadChats(s)
	if !validChatID(id) {
		id = newChatID()
	}
	info := chatInfo{ID: id}
	if i := indexOf(chats, id); i >= 0 {
		info = chats[i]
		chats = append(chats[:i], chats[i+1:]...)
	}
	for len(chats) >= srv.cfg.MaxChats {
		s.Delete(keyChatPrefix + chats[len(chats)-1].ID)
		chats = chats[:len(chats)-1]
	}
	msgs := trim(append(loadMessages(s, id), message{roleUser, text}), srv.cfg.MaxMessages)
	info.Turns++
	if info.Title == "" {
		info.Title = title(msgs)
	}
	s.Set(keyChatPrefix+id, messagesValue(msgs))
	s.Set(keyChats, append([]map[string]any{chatValue(info)}, chatsValue(chats)...))
	return id, msgs, info.Turns
}

// addReply appends the bot's reply to the conversation id.
func (srv *server) addReply(s *sessions.Session, id, reply string) {
	msgs := trim(append(loadMessages(s, id), message{roleBot, reply}), srv.cfg.MaxMessages)
	s.Set(keyChatPrefix+id, messagesValue(msgs))
}

// trim drops the oldest turns until at most limit messages are left, so
// that the history starts with a message of the visitor.
func trim(msgs []message, limit int) []message {
	if len(msgs) <= limit {
		return msgs
	}
	msgs = msgs[len(msgs)-limit:]
	for len(msgs) > 0 && msgs[0].Role != roleUser {
		msgs = msgs[1:]
	}
	return msgs
}

func loadChats(s *sessions.Session) []chatInfo {
	v, _ := sessions.GetAs[[]map[string]any](s, keyChats)
	out := make([]chatInfo, 0, len(v))
	for _, m := range v {
		id, _ := m["id"].(string)
		t, _ := m["title"].(string)
		n, _ := m["turns"].(int)
		if validChatID(id) {
			out = append(out, chatInfo{ID: id, Title: t, Turns: n})
		}
	}
	return out
}

func loadMessages(s *sessions.Session, id string) []message {
	v, _ := sessions.GetAs[[]map[string]any](s, keyChatPrefix+id)
	out := make([]message, 0, len(v)+2)
	for _, m := range v {
		role, _ := m["role"].(string)
		text, _ := m["text"].(string)
		out = append(out, message{role, text})
	}
	return out
}

func chatValue(c chatInfo) map[string]any {
	return map[string]any{"id": c.ID, "title": c.Title, "turns": c.Turns}
}

func chatsValue(chats []chatInfo) []map[string]any {
	out := make([]map[string]any, len(chats))
	for i, c := range chats {
		out[i] = chatValue(c)
	}
	return out
}

func messagesValue(msgs []message) []map[string]any {
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		out[i] = map[string]any{"role": m.Role, "text": m.Text}
	}
	return out
}

func indexOf(chats []chatInfo, id string) int {
	for i, c := range chats {
		if c.ID == id {
			return i
		}
	}
	return -1
}

// title is the start of the first message of msgs.
func title(msgs []message) string {
	for _, m := range msgs {
		if m.Role == roleUser {
			t := strings.Join(strings.Fields(m.Text), " ")
			if utf8.RuneCountInString(t) > maxTitle {
				t = string([]rune(t)[:maxTitle-1]) + "…"
			}
			return t
		}
	}
	return ""
}

// newChatID returns a random conversation ID. It is no secret: it only
// picks a conversation within the visitor's own session.
func newChatID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validChatID(id string) bool {
	if len(id) != 12 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// securityHeaders keeps the page's own script the only one that can run,
// should anything typed by a visitor ever reach the HTML unescaped.
func securityHeaders(c *gin.Context) {
	c.Header("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Referrer-Policy", "no-referrer")
}
