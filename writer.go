package sessions

import (
	"bufio"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

// responseWriter wraps the gin.ResponseWriter of a request so the session is
// saved, and its cookie set, before the headers go out. In gin the calls that
// send the headers are WriteHeaderNow, Write, WriteString and Flush (and
// Hijack hands the connection over); WriteHeader only records the status.
type responseWriter struct {
	gin.ResponseWriter
	s *Session
	// committing is set while the session's own commit or error handler
	// runs, so their writes pass straight through.
	committing bool
	// discard is set when the error handler has answered the request in
	// the middle of a handler: what the handler writes afterwards is dropped.
	discard bool
}

// sent reports whether the headers are already out.
func (w *responseWriter) sent() bool { return w.ResponseWriter.Written() }

// before runs ahead of every call that sends the headers, and reports
// whether the write should go through.
func (w *responseWriter) before() bool {
	if w.discard {
		return false
	}
	if !w.committing && !w.ResponseWriter.Written() {
		w.s.commitBeforeHeaders()
	}
	return !w.discard
}

// WriteHeader records the status code, as gin's does; it sends nothing.
func (w *responseWriter) WriteHeader(code int) {
	if !w.discard {
		w.ResponseWriter.WriteHeader(code)
	}
}

// WriteHeaderNow saves the session, sets its cookie and sends the headers.
func (w *responseWriter) WriteHeaderNow() {
	if w.before() {
		w.ResponseWriter.WriteHeaderNow()
	}
}

// Write saves the session and sets its cookie before the first byte.
func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.before() {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// WriteString saves the session and sets its cookie before the first byte.
func (w *responseWriter) WriteString(str string) (int, error) {
	if !w.before() {
		return len(str), nil
	}
	return w.ResponseWriter.WriteString(str)
}

// Flush saves the session and sets its cookie before the headers are
// flushed, which is what lets a streamed (SSE) reply carry the cookie.
func (w *responseWriter) Flush() {
	if w.before() {
		w.ResponseWriter.Flush()
	}
}

// Hijack saves the session before the connection is handed over. A cookie
// that a new session still needs cannot be sent after that.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.before()
	return w.ResponseWriter.Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
