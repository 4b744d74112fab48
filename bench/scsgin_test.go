package bench

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gin-gonic/gin"
)

// scsMiddleware runs an scs.SessionManager as Gin middleware, doing what
// scs's LoadAndSave does for net/http: load the session into the request's
// context, then commit it and add its cookie before the headers go out.
//
// Gin handlers write to c.Writer, so the request scs loads goes into
// c.Request and c.Writer is wrapped: the commit runs ahead of each call that
// sends the headers (WriteHeaderNow, Write, WriteString, Flush, Hijack) and,
// for a response without a body, after the chain, before Gin sends the
// headers itself.
func scsMiddleware(sm *scs.SessionManager) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Writer.Header().Add("Vary", "Cookie")
		var token string
		if ck, err := c.Request.Cookie(sm.Cookie.Name); err == nil {
			token = ck.Value
		}
		ctx, err := sm.Load(c.Request.Context(), token)
		if err != nil {
			// scs answers and never calls the inner handler: stop the chain.
			sm.ErrorFunc(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Request = c.Request.WithContext(ctx)
		w := &scsWriter{ResponseWriter: c.Writer, sm: sm, c: c, ctx: ctx}
		c.Writer = w
		c.Next()
		w.commit()
	}
}

// scsWriter commits the session before the headers are sent.
type scsWriter struct {
	gin.ResponseWriter
	sm      *scs.SessionManager
	c       *gin.Context
	ctx     context.Context
	done    bool // committed, or too late to
	discard bool // the commit failed and answered the request
}

// commit saves a modified session and sets its cookie, once, if the
// headers are still unsent. It reports whether the caller may go on
// writing.
func (w *scsWriter) commit() bool {
	if w.discard {
		return false
	}
	if w.done || w.ResponseWriter.Written() {
		w.done = true
		return true
	}
	w.done = true
	switch w.sm.Status(w.ctx) {
	case scs.Modified:
		token, expiry, err := w.sm.Commit(w.ctx)
		if err != nil {
			w.sm.ErrorFunc(w.ResponseWriter, w.c.Request, err)
			w.c.Abort()
			w.discard = true
			return false
		}
		w.sm.WriteSessionCookie(w.ctx, w.ResponseWriter, token, expiry)
	case scs.Destroyed:
		w.sm.WriteSessionCookie(w.ctx, w.ResponseWriter, "", time.Time{})
	}
	return true
}

func (w *scsWriter) WriteHeaderNow() {
	if w.commit() {
		w.ResponseWriter.WriteHeaderNow()
	}
}

func (w *scsWriter) Write(b []byte) (int, error) {
	if !w.commit() {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *scsWriter) WriteString(s string) (int, error) {
	if !w.commit() {
		return len(s), nil
	}
	return w.ResponseWriter.WriteString(s)
}

func (w *scsWriter) Flush() {
	if w.commit() {
		w.ResponseWriter.Flush()
	}
}

func (w *scsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.commit()
	return w.ResponseWriter.Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *scsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
