// Package sessions gives Gin apps server-side sessions: the browser holds
// only a signed, random session ID in a cookie, and the session's data stays
// on the server, in a Store.
//
// # Set-up
//
//	r := gin.New()
//	r.Use(sessions.New(secretKey)) // memory store; see WithStore for Redis, PostgreSQL, ...
//	r.GET("/count", func(c *gin.Context) {
//		s := sessions.Default(c)
//		n, _ := sessions.GetAs[int](s, "count")
//		s.Set("count", n+1) // saved automatically
//		c.JSON(200, gin.H{"count": n + 1})
//	})
//
// # The life of a request
//
//  1. The middleware notes that it serves the request. It allocates and
//     reads nothing yet: the *Session is made, and the response writer
//     wrapped, when a handler first calls Default.
//  2. The first Session method a handler calls loads the session: the
//     cookie's signature is checked and the store is read once. A missing,
//     forged or expired cookie, or an ID the store does not know, gives a
//     fresh, empty session with a new ID (never the presented one). A request
//     that never touches its session costs no store access and no signature
//     check, and a session that is never written is never stored and gets no
//     cookie.
//  3. Set encodes a value at once; Get decodes a fresh copy.
//  4. Just before the headers go out (c.JSON, c.String, Flush, a streamed
//     reply, ...), a changed session is saved and its cookie is added. When
//     the handler chain returns, anything changed since is saved too: a
//     streamed chat reply appended to the history after the stream is kept.
//     A change that would need a new cookie after the headers are out cannot
//     be kept; Save reports ErrHeadersWritten and the logger says so.
//  5. An unchanged session is not rewritten. With an idle timeout, its
//     expiry is extended at most once per touch interval, through
//     Toucher.Touch where the store has it.
//
// # Concurrency
//
// Requests of one session may overlap. A save writes only the keys the
// request changed, applied atomically to what is stored now (through the
// store's DeltaSaver or Updater), so changes to different keys never undo
// each other. WithLocking runs the requests of one session one at a time,
// for handlers that read-modify-write the same key.
//
// Within one request, a *Session may be handed to goroutines: its methods
// are safe for concurrent use until the handler chain returns. A copy of
// the gin.Context (c.Copy()) shares the session once the handler has called
// Default(c); before that, Default on the copy gives an inert session whose
// Err is ErrCopiedContext, because only the request itself can put the
// session's cookie on its response.
//
// # Users and the Manager
//
// Session.SetUser links a session to a user. A Manager (NewManager) lists a
// user's sessions, ends one or all of them ("log out everywhere"), and walks
// every session, outside any request, on stores that support it.
//
// # Security
//
// Cookies are HttpOnly, Secure and SameSite=Lax by default; IDs carry 256
// bits from crypto/rand and are signed with HMAC-SHA256; sessions end after
// an idle timeout (2 hours) and an absolute lifetime (24 hours), both
// enforced on the server. Call Regenerate at login and Destroy at logout.
//
// # Errors
//
// A store that fails never causes a panic: the error goes to the error
// handler (by default a 503 if the response has not started), Err reports
// it, and nothing is saved over the stored data. Errors wrap the sentinel
// values of this package; match them with errors.Is.
package sessions
