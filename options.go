package sessions

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Option configures the middleware returned by New. Options are applied in
// order, and the result is checked once, when New runs: a value that makes no
// sense panics there with a message that says what to fix.
type Option func(*config)

// Defaults of the options, also stated in each option's doc comment.
const (
	DefaultCookieName  = "sid"
	DefaultContextKey  = "session"
	DefaultIdleTimeout = 2 * time.Hour
	DefaultLifetime    = 24 * time.Hour
	DefaultMaxSize     = 512 << 10
	DefaultLockLease   = 30 * time.Second
)

type config struct {
	store         Store
	cookieName    string
	maxAge        time.Duration
	idleTimeout   time.Duration
	lifetime      time.Duration
	touchInterval time.Duration
	touchSet      bool
	storeTimeout  time.Duration
	secure        bool
	httpOnly      bool
	sameSite      http.SameSite
	path          string
	domain        string
	partitioned   bool
	skipHeader    string
	skipValue     string
	skipper       func(*gin.Context) bool
	contextKey    string
	logger        *slog.Logger
	errorHandler  func(*gin.Context, error)
	previousKeys  [][]byte
	codec         Codec
	maxSize       int
	lockWait      time.Duration // 0: no locking
	lockLease     time.Duration
	observer      Observer
	problems      []string
}

func defaultConfig() config {
	return config{
		cookieName:  DefaultCookieName,
		idleTimeout: DefaultIdleTimeout,
		lifetime:    DefaultLifetime,
		secure:      true,
		httpOnly:    true,
		sameSite:    http.SameSiteLaxMode,
		path:        "/",
		contextKey:  DefaultContextKey,
		maxSize:     DefaultMaxSize,
		lockLease:   DefaultLockLease,
	}
}

func (c *config) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// WithStore sets where sessions are kept. The default is a new
// memstore.Store, private to this middleware, which lives as long as the
// process: use a shared store (Redis, PostgreSQL, ...) as soon as more than
// one instance serves the same users. A nil store panics.
func WithStore(s Store) Option {
	return func(c *config) {
		if s == nil {
			c.problem("WithStore(nil): pass a Store, or leave the option out for the memory store")
		}
		c.store = s
	}
}

// WithCookieName sets the name of the session cookie. The default is "sid".
// The name is bound into the cookie's signature, so a cookie issued under one
// name is rejected under another.
func WithCookieName(name string) Option {
	return func(c *config) { c.cookieName = name }
}

// WithMaxAge sets the Max-Age (and Expires) of the session cookie. The
// default, 0, sends neither: the browser keeps the cookie until it closes.
// When set, the cookie is re-sent whenever the session is saved or its idle
// timeout is extended, so an active visitor keeps it. The server enforces the
// idle timeout and lifetime whatever the cookie says. Negative panics.
func WithMaxAge(d time.Duration) Option {
	return func(c *config) { c.maxAge = d }
}

// WithIdleTimeout sets how long a session lives without a request that
// reads or changes it. The default is 2 hours; 0 turns the idle timeout off,
// leaving only the lifetime. The server extends a session's expiry as it is
// used (see WithTouchInterval). Negative panics.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) { c.idleTimeout = d }
}

// WithLifetime sets the absolute lifetime of a session, counted from its
// creation and never extended: after it, the session is gone however active
// it was. The default is 24 hours. It must be positive. Regenerate keeps the
// creation time, so a login does not extend it.
func WithLifetime(d time.Duration) Option {
	return func(c *config) { c.lifetime = d }
}

// WithTouchInterval sets how often, at most, a session that is read but not
// changed has its idle expiry extended in the store. The default is one
// minute, or half the idle timeout when that is shorter. A shorter interval
// keeps the idle timeout more exact at the cost of store writes. Only used
// with an idle timeout. Negative panics.
func WithTouchInterval(d time.Duration) Option {
	return func(c *config) { c.touchInterval, c.touchSet = d, true }
}

// WithStoreTimeout bounds every store call made for a request. The default,
// 0, adds no deadline of its own: store calls then end when the request's
// context does or when the store client's own timeouts fire. Negative panics.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *config) { c.storeTimeout = d }
}

// WithSecure sets the cookie's Secure attribute. The default is true: the
// browser sends the cookie over HTTPS only (browsers also accept it from
// http://localhost). Turn it off only for plain-HTTP development on another
// host name.
func WithSecure(secure bool) Option {
	return func(c *config) { c.secure = secure }
}

// WithHTTPOnly sets the cookie's HttpOnly attribute. The default is true:
// page scripts cannot read the cookie, so an XSS bug cannot steal it.
func WithHTTPOnly(httpOnly bool) Option {
	return func(c *config) { c.httpOnly = httpOnly }
}

// WithSameSite sets the cookie's SameSite attribute. The default is
// http.SameSiteLaxMode: the browser leaves the cookie off cross-site
// subrequests and cross-site POSTs, the main CSRF vectors.
// http.SameSiteNoneMode requires Secure. http.SameSiteDefaultMode sends no
// attribute.
func WithSameSite(mode http.SameSite) Option {
	return func(c *config) { c.sameSite = mode }
}

// WithPath sets the cookie's Path. The default is "/".
func WithPath(path string) Option {
	return func(c *config) { c.path = path }
}

// WithDomain sets the cookie's Domain. The default, "", sends no Domain: the
// cookie goes back to the exact host that set it, which is the safest choice.
func WithDomain(domain string) Option {
	return func(c *config) { c.domain = domain }
}

// WithPartitioned sets the cookie's Partitioned attribute (CHIPS), for an app
// embedded in other sites' pages. The default is false. It requires Secure.
func WithPartitioned(partitioned bool) Option {
	return func(c *config) { c.partitioned = partitioned }
}

// WithSkipHeader makes requests whose header name carries exactly value
// bypass sessions: no cookie is read or set and the store is not touched.
// Default then returns an inert session (see ErrSkipped). Use it for health
// checks and other internal probes. The header grants nothing: it only turns
// sessions off for that request. Both name and value must be non-empty.
func WithSkipHeader(name, value string) Option {
	return func(c *config) {
		if name == "" || value == "" {
			c.problem("WithSkipHeader(%q, %q): both the header name and the value must be non-empty", name, value)
		}
		c.skipHeader = textproto.CanonicalMIMEHeaderKey(name)
		c.skipValue = value
	}
}

// WithSkipper makes requests for which skip returns true bypass sessions,
// exactly like WithSkipHeader. It may be combined with WithSkipHeader: a
// request is skipped if either says so.
func WithSkipper(skip func(*gin.Context) bool) Option {
	return func(c *config) { c.skipper = skip }
}

// WithContextKey sets the name by which handlers find this middleware's
// session. The default is "session", which Default reads. Mount a second
// middleware with another key (and another cookie name) to carry a second,
// independent session, and read it with FromContext.
func WithContextKey(key string) Option {
	return func(c *config) { c.contextKey = key }
}

// WithLogger sets the logger. The default is slog.Default(). Rejected cookies
// are logged at debug level, store failures and lost changes at error level.
// Session IDs and cookie values are never logged; a short hash of the ID
// stands in for it.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithErrorHandler sets what answers a request whose session could not be
// loaded or saved. The middleware has already logged err; the handler decides
// the response. The default answers, if nothing was written yet, 503 with
// {"error":"session store unavailable"} for store errors (errors.Is(err,
// ErrStore)) and 500 with {"error":"session could not be saved"} for the
// rest, and aborts the chain. When the handler writes a response in the
// middle of a request handler, what that request handler writes afterwards
// is discarded.
func WithErrorHandler(h func(*gin.Context, error)) Option {
	return func(c *config) { c.errorHandler = h }
}

// WithPreviousKeys lists former secret keys, for key rotation. Cookies signed
// with one of them are still accepted, and are re-issued under the current
// key when the response can still carry a cookie. Each key must be 32 bytes
// or longer.
func WithPreviousKeys(keys ...[]byte) Option {
	return func(c *config) { c.previousKeys = append(c.previousKeys, keys...) }
}

// WithCodec sets how session values are turned into bytes. The default is
// BinaryCodec(): a compact format for the common Go types with encoding/gob
// for the rest (see Register). Changing the codec makes sessions stored under
// the previous one unreadable.
func WithCodec(codec Codec) Option {
	return func(c *config) { c.codec = codec }
}

// WithMaxSize sets the largest encoded session, in bytes, that Save stores;
// a larger one fails with ErrTooLarge and the stored session is left as it
// was. The default is 512 KiB. It must be positive.
func WithMaxSize(n int) Option {
	return func(c *config) { c.maxSize = n }
}

// WithLocking makes the requests of one session run one at a time: a
// request that uses its session takes the session's lock before loading it
// and holds it until the request ends, so read-modify-write handlers (a
// counter, a list that two tabs append to) lose nothing. A request waits at
// most wait for the lock; then the error handler answers it (503 by
// default, with ErrLocked). Off by default: without it, requests of one
// session run concurrently, and only changes to the same key can be lost
// (the last save of a key wins; see the README's concurrency section).
//
// The store must implement Locker; New panics otherwise. wait must be
// positive.
func WithLocking(wait time.Duration) Option {
	return func(c *config) {
		if wait <= 0 {
			c.problem("WithLocking(%v): the wait must be positive", wait)
		}
		c.lockWait = wait
	}
}

// WithLockLease sets how long a store that keeps locks outside the process
// (Redis) keeps the lock of a process that died without releasing it. A
// live holder renews its lock, so the lease does not bound a request's
// length. The default is 30 seconds. Only used with WithLocking.
func WithLockLease(lease time.Duration) Option {
	return func(c *config) {
		if lease <= 0 {
			c.problem("WithLockLease(%v): the lease must be positive", lease)
		}
		c.lockLease = lease
	}
}

// validate checks the whole configuration and fills in derived defaults.
func (c *config) validate(secretKey []byte) {
	if len(secretKey) < 32 {
		c.problem("secret key is %d bytes: use 32 or more random bytes (for example from crypto/rand), kept out of the source code", len(secretKey))
	}
	for i, k := range c.previousKeys {
		if len(k) < 32 {
			c.problem("WithPreviousKeys: key %d is %d bytes: every key must be 32 bytes or more", i, len(k))
		}
	}
	if c.cookieName == "" || strings.ContainsAny(c.cookieName, "=;, \t\r\n\"") {
		c.problem("WithCookieName(%q): use a non-empty name without spaces, quotes, '=', ';' or ','", c.cookieName)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"WithMaxAge", c.maxAge}, {"WithIdleTimeout", c.idleTimeout}, {"WithTouchInterval", c.touchInterval}, {"WithStoreTimeout", c.storeTimeout}} {
		if d.v < 0 {
			c.problem("%s(%v): the duration must not be negative", d.name, d.v)
		}
	}
	if c.lifetime <= 0 {
		c.problem("WithLifetime(%v): the lifetime must be positive", c.lifetime)
	}
	if c.maxSize <= 0 {
		c.problem("WithMaxSize(%d): the limit must be positive", c.maxSize)
	}
	if c.sameSite == http.SameSiteNoneMode && !c.secure {
		c.problem("WithSameSite(http.SameSiteNoneMode) with WithSecure(false): browsers reject SameSite=None cookies that are not Secure")
	}
	if c.partitioned && !c.secure {
		c.problem("WithPartitioned(true) with WithSecure(false): Partitioned cookies must be Secure")
	}
	if c.contextKey == "" {
		c.problem("WithContextKey(\"\"): the key must not be empty")
	}
	if strings.ContainsAny(c.path, ";\r\n\x00") {
		c.problem("WithPath(%q): not a valid cookie path", c.path)
	}
	if c.domain != "" && (&http.Cookie{Name: "x", Value: "x", Domain: c.domain}).Valid() != nil {
		c.problem("WithDomain(%q): not a valid cookie domain", c.domain)
	}
	if !c.touchSet {
		c.touchInterval = time.Minute
		if c.idleTimeout > 0 && c.idleTimeout/2 < c.touchInterval {
			c.touchInterval = c.idleTimeout / 2
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.codec == nil {
		c.codec = BinaryCodec()
	}
	if c.errorHandler == nil {
		c.errorHandler = DefaultErrorHandler
	}
}
