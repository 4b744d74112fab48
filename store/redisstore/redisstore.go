// Package redisstore is a Redis session store for
// github.com/fastsession/sessions, built on github.com/redis/go-redis/v9.
//
// The store takes a redis.UniversalClient, so the same store serves a single
// Redis node (*redis.Client), a Sentinel-managed primary
// (redis.NewFailoverClient), a Redis Cluster (*redis.ClusterClient) and a
// *redis.Ring. The application configures and owns the client; the store
// only issues commands on it.
//
// Each session is one Redis hash under the key prefix+id, with the fields
//
//	h        "h" + the session's record header (see sessions.SplitRecord)
//	e        the session's expiry, Unix milliseconds as a decimal string
//	k:<key>  "k" + uvarint(len(key)) + key + the encoded value of each
//	         session key
//
// so that a request's changes are written field by field (SaveDelta) and two
// requests of one session that change different keys never undo each other.
// Every value says what it is by itself (its first byte, a letter for h and
// k: and a digit for e), so a load reads the values alone (HVALS): half the
// strings of HGETALL to send, parse and allocate, and no map to build. Data
// handed to Save that is not a session record is kept whole in a field r,
// "r" + the data, instead of h and k: fields. Redis expires the key at the
// same millisecond as e (PEXPIREAT), and every read also checks e, so an
// expired session is never returned even before Redis has removed the key.
//
// Next to the sessions, the store keeps a lock per locked session (a string
// under prefix+"lock:"+id, see Store.Lock) and a set of session IDs per user
// (prefix+"user:"+user, see Store.LinkUser).
//
// Every command touches a single key, so Redis Cluster needs no hash tags.
// The store needs Redis 7.0 or later.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/fastsession/sessions"
	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix is the key prefix used when WithKeyPrefix is not given.
const DefaultKeyPrefix = "fastsession:"

// DefaultLockLease is the lease Lock uses when it is given a lease of zero
// or less.
const DefaultLockLease = 30 * time.Second

// ErrLocked is wrapped by the error Lock returns when another holder still
// had the lock once wait had passed.
var ErrLocked = errors.New("the session is locked by another holder")

// The fields of a session hash.
const (
	fieldHeader = "h"  // tagHeader + the record header
	fieldExpiry = "e"  // expiry, decimal Unix milliseconds
	fieldRaw    = "r"  // tagRaw + data that is not a session record, kept whole
	fieldKey    = "k:" // prefix of the field of each session key: tagKey, the key with its length, the value
)

// The first byte of the value of each field but e, whose value starts with
// a digit. Load reads the values without the fields (HVALS) and tells them
// apart by this byte.
const (
	tagHeader = 'h'
	tagKey    = 'k' // followed by uvarint(len(key)), the key and the value
	tagRaw    = 'r'
)

// Key infixes of the store's other keys.
const (
	lockInfix = "lock:"
	userInfix = "user:"
)

const (
	// releaseTimeout bounds the command that releases a lock.
	releaseTimeout = 2 * time.Second
	// lockBackoffMin and lockBackoffMax bound the pause between two tries
	// of a lock that is held by someone else.
	lockBackoffMin = 2 * time.Millisecond
	lockBackoffMax = 50 * time.Millisecond
	// pipelineBatch is how many commands UserSessions and Range pipeline at
	// once.
	pipelineBatch = 500
)

// Option configures a Store. Pass options to New.
type Option func(*config)

type config struct {
	prefix string
}

// WithKeyPrefix sets the prefix put before every session ID to form its
// Redis key (and before "lock:" and "user:" to form the keys of locks and
// user indexes). The default is DefaultKeyPrefix, "fastsession:". Use a
// distinct prefix per application sharing one Redis database. On Redis
// Cluster the prefix must not contain a hash tag ("{...}"), or every session
// would land in a single slot. An empty prefix is allowed and uses the bare
// ID as key.
func WithKeyPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// liveLua is the prelude of the scripts that change a stored session. live
// reports whether KEYS[1] holds a session hash whose expiry e is after now
// (Unix milliseconds, as the caller's clock sees it, like Load).
const liveLua = `
local key = KEYS[1]
local function live(now)
  if redis.call('TYPE', key).ok ~= 'hash' then return false end
  local e = tonumber(redis.call('HGET', key, 'e'))
  return e ~= nil and e > tonumber(now)
end
`

// deltaScript applies a Delta. ARGV: now, expiry (both Unix ms), clear
// ("1" or "0"), has header ("1" or "0"), header, the number n of fields to
// delete, n field names, then field/value pairs to set. Field names carry
// the "k:" prefix already. It returns 0 when no live session is stored,
// -1 when the session is stored whole (field r) and cannot take a delta,
// and 1 when the delta was applied.
var deltaScript = redis.NewScript(liveLua + `
if not live(ARGV[1]) then return 0 end
if redis.call('HEXISTS', key, 'h') == 0 then
  if redis.call('HEXISTS', key, 'r') == 1 then return -1 end
  return 0
end
local function batch(cmd, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end
if ARGV[3] == '1' then
  local ks = {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'k:' then ks[#ks + 1] = f end
  end
  batch('HDEL', ks)
end
local n = tonumber(ARGV[6])
local first = 7
if n > 0 then
  local del = {}
  for i = first, first + n - 1 do del[#del + 1] = ARGV[i] end
  batch('HDEL', del)
end
local set = {'e', ARGV[2]}
if ARGV[4] == '1' then
  set[#set + 1] = 'h'
  set[#set + 1] = ARGV[5]
end
for i = first + n, #ARGV do set[#set + 1] = ARGV[i] end
batch('HSET', set)
redis.call('PEXPIREAT', key, ARGV[2])
return 1
`)

// touchScript moves the expiry of a live session: ARGV now and the new
// expiry, Unix ms. It returns 1 when it touched the key, 0 otherwise, and
// never creates a key.
var touchScript = redis.NewScript(liveLua + `
if not live(ARGV[1]) then return 0 end
if redis.call('HEXISTS', key, 'h') == 0 and redis.call('HEXISTS', key, 'r') == 0 then return 0 end
redis.call('HSET', key, 'e', ARGV[2])
redis.call('PEXPIREAT', key, ARGV[2])
return 1
`)

// renewScript extends the lease of a lock (ARGV[2] ms) if it still holds
// the token ARGV[1]. It returns 1 when it did, 0 when the lock is lost.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript deletes a lock if it still holds the token ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// linkScript adds session ARGV[1] to the user set and moves the set's
// expiry to ARGV[2] (Unix ms) unless it already expires later.
var linkScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
return 1
`)

// Store is a Redis session store. Create it with New; the zero value is not
// usable. Its methods are safe for concurrent use, as is the go-redis client
// it wraps. It satisfies sessions.Store and the optional sessions.Toucher,
// sessions.DeltaSaver, sessions.Locker, sessions.UserIndexer and
// sessions.Iterator.
type Store struct {
	client redis.UniversalClient
	prefix string
}

// New returns a Store that keeps sessions in Redis through client, which may
// be a *redis.Client, a failover (Sentinel) client, a *redis.ClusterClient
// or a *redis.Ring. New sends no command; a client that cannot reach its
// server makes the store's methods return errors.
//
// The store honours each call's context by checking it before sending a
// command and by passing it to go-redis, which respects cancellation while
// waiting for a pooled connection. For a context deadline to also bound the
// network I/O of a command, create the client with ContextTimeoutEnabled set
// to true; otherwise the client's ReadTimeout and WriteTimeout apply.
func New(client redis.UniversalClient, opts ...Option) *Store {
	cfg := config{prefix: DefaultKeyPrefix}
	for _, o := range opts {
		o(&cfg)
	}
	return &Store{client: client, prefix: cfg.prefix}
}

func (s *Store) key(id string) string       { return s.prefix + id }
func (s *Store) lockKey(id string) string   { return s.prefix + lockInfix + id }
func (s *Store) userKey(user string) string { return s.prefix + userInfix + user }

// expiryMillis converts t to Unix milliseconds, rounding up to the next
// millisecond, and never returns less than 1 (Redis rejects PXAT values
// below 1; an instant that far in the past is expired either way).
func expiryMillis(t time.Time) int64 {
	ms := t.UnixMilli() // floor: Nanosecond() is never negative
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	if ms < 1 {
		ms = 1
	}
	return ms
}

// durationMillis converts d to milliseconds, rounding up, at least 1.
func durationMillis(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	return ms
}

// wrap prefixes err with the package and operation. When the context ended
// too, its error is wrapped as well, so errors.Is(err, context.Canceled) or
// context.DeadlineExceeded holds whatever error go-redis reported.
func wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisstore: %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// values holds the tagged values of one session hash, built in one buffer:
// what Save and SaveDelta send.
type values struct{ buf []byte }

func newValues(header []byte, fields []sessions.Field) values {
	size := 1 + len(header)
	for _, f := range fields {
		size += 1 + binary.MaxVarintLen64 + len(f.Key) + len(f.Value)
	}
	return values{buf: make([]byte, 0, size)}
}

// tagged returns tag followed by b.
func (v *values) tagged(tag byte, b []byte) []byte {
	start := len(v.buf)
	v.buf = append(append(v.buf, tag), b...)
	return v.buf[start:len(v.buf):len(v.buf)]
}

// key returns the value of the field of f: tagKey, f.Key with its length,
// then f.Value.
func (v *values) key(f sessions.Field) []byte {
	start := len(v.buf)
	v.buf = append(v.buf, tagKey)
	v.buf = binary.AppendUvarint(v.buf, uint64(len(f.Key)))
	v.buf = append(append(v.buf, f.Key...), f.Value...)
	return v.buf[start:len(v.buf):len(v.buf)]
}

// decode turns the values of a session hash, in any order, into the
// session's data and expiry. Anything but a well-formed, unexpired session
// gives ok false: no expiry, or two; neither a header nor raw data, or two
// of them, or both; raw data with session keys; a session key given twice;
// a malformed header or key value. A value whose first byte is no tag at
// all is left out.
func decode(vals []string, now time.Time) (data []byte, expiresAt time.Time, ok bool) {
	var (
		header, raw string
		nh, nr, ne  int
		ms          int64
		few         [16]sessions.Field
		fields      = few[:0]
	)
	for _, v := range vals {
		if v == "" {
			continue
		}
		switch c := v[0]; {
		case c == tagHeader:
			header, nh = v[1:], nh+1
		case c == tagRaw:
			raw, nr = v[1:], nr+1
		case c == tagKey:
			n, w := binary.Uvarint(bytesOf(v[1:]))
			if w <= 0 || n > uint64(len(v)-1-w) {
				return nil, time.Time{}, false
			}
			kv := v[1+w:]
			fields = append(fields, sessions.Field{Key: kv[:n], Value: bytesOf(kv[n:])})
		case c >= '0' && c <= '9':
			e, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, time.Time{}, false
			}
			ms, ne = e, ne+1
		}
	}
	if ne != 1 || nh+nr != 1 || (nr == 1 && len(fields) > 0) {
		return nil, time.Time{}, false
	}
	exp := time.UnixMilli(ms)
	if !exp.After(now) {
		return nil, time.Time{}, false
	}
	if nr == 1 {
		return []byte(raw), exp, true
	}
	hb := bytesOf(header)
	// A header that does not start a valid record is garbage.
	if _, _, err := sessions.SplitRecord(sessions.JoinRecord(hb, nil)); err != nil {
		return nil, time.Time{}, false
	}
	// The fields, sorted by key so that one stored session always loads as
	// the same bytes. JoinRecord copies the values straight from the
	// reply's strings into the one buffer it returns.
	slices.SortFunc(fields, func(a, b sessions.Field) int { return strings.Compare(a.Key, b.Key) })
	for i := 1; i < len(fields); i++ {
		if fields[i].Key == fields[i-1].Key {
			return nil, time.Time{}, false
		}
	}
	return sessions.JoinRecord(hb, fields), exp, true
}

// bytesOf views s as bytes without copying it, for JoinRecord and
// SplitRecord, which only read what they are given and keep none of it.
// The bytes must never be written.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Load returns the data stored under id and its expiry, with one HVALS
// (one round trip). The session is rebuilt from its header and fields with
// sessions.JoinRecord, its keys in sorted order. A missing key, a key that
// is not a hash, a hash without a valid header or expiry, and a session
// whose expiry is not after now yield found false and a nil error. The
// returned slice is freshly allocated and belongs to the caller.
func (s *Store) Load(ctx context.Context, id string) (data []byte, expiresAt time.Time, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("redisstore: load: %w", err)
	}
	vals, err := s.client.HVals(ctx, s.key(id)).Result()
	if err != nil {
		if isWrongType(err) { // WRONGTYPE: not a session hash
			return nil, time.Time{}, false, nil
		}
		return nil, time.Time{}, false, wrap(ctx, "load", err)
	}
	data, expiresAt, found = decode(vals, time.Now())
	return data, expiresAt, found, nil
}

// isWrongType reports whether err is the server's WRONGTYPE reply: the key
// holds something that is not a session hash. Every other error, a LOADING
// reply from a server still reading its data included, is a failure to be
// reported, never "no session".
func isWrongType(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE")
}

// Save stores data under id until expiresAt, replacing whatever was stored
// there, in one round trip: a MULTI/EXEC transaction of DEL, one HSET of
// every field and PEXPIREAT. data is split with sessions.SplitRecord into
// the header (field h) and one field k:<key> per session key, each value
// tagged as the package documentation describes; data that is not a
// session record is kept whole in field r. The expiry is rounded up to the
// next millisecond. data is copied into the commands before Save returns.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: save: %w", err)
	}
	ms := expiryMillis(expiresAt)
	var args []any
	if header, fields, err := sessions.SplitRecord(data); err == nil {
		vals := newValues(header, fields)
		args = make([]any, 0, 4+2*len(fields))
		args = append(args, fieldHeader, vals.tagged(tagHeader, header), fieldExpiry, ms)
		for _, f := range fields {
			args = append(args, fieldKey+f.Key, vals.key(f))
		}
	} else {
		vals := newValues(data, nil)
		args = []any{fieldRaw, vals.tagged(tagRaw, data), fieldExpiry, ms}
	}
	key := s.key(id)
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, args...)
		p.PExpireAt(ctx, key, time.UnixMilli(ms))
		return nil
	})
	if err != nil {
		return wrap(ctx, "save", err)
	}
	return nil
}

// SaveDelta applies d atomically to the session stored under id and sets
// its expiry to expiresAt (rounded up to the next millisecond), with one
// EVALSHA of a Lua script (one round trip; only the first call on a server
// that has not cached the script is followed by an EVAL that loads it). The
// script returns without writing anything, and SaveDelta returns found
// false, when no live session is stored under id. Otherwise it removes
// every k: field if d.Clear, removes the fields of d.Delete, and writes the
// fields of d.Set, the expiry and, when d.Header is not nil, the header,
// then moves the key's expiry (PEXPIREAT).
//
// A session that Save kept whole (data that is not a session record) cannot
// take a delta: SaveDelta then returns an error wrapping sessions.ErrDecode
// and changes nothing.
func (s *Store) SaveDelta(ctx context.Context, id string, d sessions.Delta, expiresAt time.Time) (found bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("redisstore: save delta: %w", err)
	}
	ms := expiryMillis(expiresAt)
	args := make([]any, 0, 6+len(d.Delete)+2*len(d.Set))
	clearFlag, hasHeader := "0", "0"
	if d.Clear {
		clearFlag = "1"
	}
	if d.Header != nil {
		hasHeader = "1"
	}
	vals := newValues(d.Header, d.Set)
	var header []byte
	if d.Header != nil {
		header = vals.tagged(tagHeader, d.Header)
	}
	args = append(args, time.Now().UnixMilli(), ms, clearFlag, hasHeader, header, len(d.Delete))
	for _, k := range d.Delete {
		args = append(args, fieldKey+k)
	}
	for _, f := range d.Set {
		args = append(args, fieldKey+f.Key, vals.key(f))
	}
	n, err := deltaScript.Run(ctx, s.client, []string{s.key(id)}, args...).Int64()
	if err != nil {
		return false, wrap(ctx, "save delta", err)
	}
	switch n {
	case 1:
		return true, nil
	case -1:
		return false, fmt.Errorf("redisstore: save delta: the session is not stored as fields: %w", sessions.ErrDecode)
	}
	return false, nil
}

// Delete removes the session stored under id with one DEL. Deleting an id
// that is not stored is not an error. The session's links in user indexes
// are pruned by UserSessions.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	if err := s.client.Del(ctx, s.key(id)).Err(); err != nil {
		return wrap(ctx, "delete", err)
	}
	return nil
}

// Touch sets the expiry of the live session stored under id to expiresAt
// (rounded up to the next millisecond) without sending or rewriting its
// data. It runs a Lua script with EVALSHA, one round trip, that writes the
// field e and moves the key's expiry (PEXPIREAT). A missing, expired or
// malformed session is left alone, and Touch never creates a key.
func (s *Store) Touch(ctx context.Context, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: touch: %w", err)
	}
	ms := expiryMillis(expiresAt)
	if err := touchScript.Run(ctx, s.client, []string{s.key(id)}, time.Now().UnixMilli(), ms).Err(); err != nil {
		return wrap(ctx, "touch", err)
	}
	return nil
}

// Lock takes the lock of session id, a string under prefix+"lock:"+id set
// with SET NX PX lease to a random 128-bit token (one round trip per try).
// While the lock is held by someone else, Lock tries again after a short
// pause that grows from 2 ms to 50 ms, until it holds the lock, wait has
// passed (the error then wraps ErrLocked; a wait of zero or less tries
// once) or ctx ends (the error then wraps ctx's error). A lease of zero or
// less means DefaultLockLease; leases are rounded up to the millisecond.
//
// While the lock is held, a goroutine extends its lease every lease/3 with
// a Lua script that moves the expiry only if the key still holds this
// token. The lock is released, with a Lua script that deletes the key only
// if it still holds this token, when unlock is called or ctx ends,
// whichever comes first; the renewal goroutine has stopped by then. unlock
// is idempotent, safe to call from any goroutine, and waits for the release
// command (at most two seconds). If the process dies or loses its
// connection to Redis, renewal stops and the lock frees itself at the
// latest lease later.
func (s *Store) Lock(ctx context.Context, id string, wait, lease time.Duration) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	if lease <= 0 {
		lease = DefaultLockLease
	}
	leaseMs := durationMillis(lease)
	lease = time.Duration(leaseMs) * time.Millisecond
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	key := s.lockKey(id)

	deadline := time.Now().Add(wait)
	backoff := lockBackoffMin
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, err := s.client.SetNX(ctx, key, token, lease).Result()
		if err != nil {
			if ctx.Err() != nil {
				// The SET may have been applied before ctx ended.
				s.release(ctx, key, token)
			}
			return nil, wrap(ctx, "lock", err)
		}
		if ok {
			break
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("redisstore: lock: still held after waiting %v: %w: %w", wait, ErrLocked, sessions.ErrLocked)
		}
		pause := backoff/2 + mrand.N(backoff/2+1)
		backoff = min(2*backoff, lockBackoffMax)
		if pause > left {
			pause = left
		}
		if timer == nil {
			timer = time.NewTimer(pause)
		} else {
			timer.Reset(pause)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("redisstore: lock: %w", ctx.Err())
		case <-timer.C:
		}
	}

	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewDone := make(chan struct{})
	go s.renew(renewCtx, key, token, lease, renewDone)
	var once sync.Once
	release := func() {
		once.Do(func() {
			stopRenew()
			<-renewDone
			s.release(ctx, key, token)
		})
	}
	stopAfter := context.AfterFunc(ctx, release)
	unlock = func() {
		stopAfter()
		release()
	}
	if err := ctx.Err(); err != nil {
		// ctx ended while the lock was being taken: it is not held.
		unlock()
		return nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	return unlock, nil
}

// renew extends the lease of a held lock every lease/3 until ctx is
// cancelled, the lock turns out to be lost or the client is closed. A
// failed command (a broken connection) is retried at the next tick; the
// lease keeps running meanwhile.
func (s *Store) renew(ctx context.Context, key, token string, lease time.Duration, done chan<- struct{}) {
	defer close(done)
	every := max(lease/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	ms := lease.Milliseconds()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, cancel := context.WithTimeout(ctx, every)
		n, err := renewScript.Run(c, s.client, []string{key}, token, ms).Int64()
		cancel()
		switch {
		case err == nil && n == 0:
			return // the lease ran out and the lock went to someone else, or was deleted
		case errors.Is(err, redis.ErrClosed):
			return // the client was closed: no renewal can succeed
		}
	}
}

// release deletes the lock key if it still holds token. Errors are ignored:
// a lock that could not be released frees itself when its lease ends.
func (s *Store) release(ctx context.Context, key, token string) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_ = releaseScript.Run(c, s.client, []string{key}, token).Err()
}

// LinkUser records that session id belongs to user: the ID is added to the
// set prefix+"user:"+user and the set's expiry is moved to expiresAt unless
// it already expires later, with one EVALSHA of a Lua script (SADD,
// PEXPIRETIME, PEXPIREAT; one round trip).
func (s *Store) LinkUser(ctx context.Context, user, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: link user: %w", err)
	}
	if err := linkScript.Run(ctx, s.client, []string{s.userKey(user)}, id, expiryMillis(expiresAt)).Err(); err != nil {
		return wrap(ctx, "link user", err)
	}
	return nil
}

// UnlinkUser removes session id from the set of user with one SREM. A
// missing link is not an error.
func (s *Store) UnlinkUser(ctx context.Context, user, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: unlink user: %w", err)
	}
	if err := s.client.SRem(ctx, s.userKey(user), id).Err(); err != nil {
		return wrap(ctx, "unlink user", err)
	}
	return nil
}

// UserSessions returns the IDs of the live sessions linked to user. It
// reads the user's set with SMEMBERS (one round trip), then reads the
// expiry field of every linked session with HGET in a pipeline (one round
// trip on a single node; on Cluster go-redis sends one pipeline to each
// master holding some of them, in parallel), and removes the IDs of
// sessions that are gone or expired from the set with one SREM (one more
// round trip, only when there are any). A failure of that SREM is ignored:
// the result is right either way, and the next call prunes again.
func (s *Store) UserSessions(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: user sessions: %w", err)
	}
	ukey := s.userKey(user)
	ids, err := s.client.SMembers(ctx, ukey).Result()
	if err != nil {
		return nil, wrap(ctx, "user sessions", err)
	}
	var live []string
	var dead []any
	now := time.Now()
	for chunk := range slices.Chunk(ids, pipelineBatch) {
		p := s.client.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = p.HGet(ctx, s.key(id), fieldExpiry)
		}
		_, _ = p.Exec(ctx) // each command's error is looked at below
		for i, cmd := range cmds {
			v, err := cmd.Result()
			switch {
			case err == nil:
				ms, perr := strconv.ParseInt(v, 10, 64)
				if perr == nil && time.UnixMilli(ms).After(now) {
					live = append(live, chunk[i])
					continue
				}
			case errors.Is(err, redis.Nil), isWrongType(err):
			default:
				return nil, wrap(ctx, "user sessions", err)
			}
			dead = append(dead, chunk[i])
		}
	}
	if len(dead) > 0 {
		_ = s.client.SRem(ctx, ukey, dead...).Err()
	}
	return live, nil
}

// Range calls fn for each live session until fn returns false. It walks
// the keys under the prefix with SCAN ... MATCH prefix* TYPE hash on the
// node (on Cluster, on every master, one after the other; on a Ring, on
// every shard), reading each batch of keys with one pipeline of HVALS,
// so a batch of up to 500 sessions costs two round trips. Expired and
// malformed sessions are skipped. fn is never called concurrently. A
// session SCAN returns twice is given to fn once: Range remembers a 64-bit
// hash of every ID it has given, about 8 bytes per session.
func (s *Store) Range(ctx context.Context, fn func(id string, data []byte, expiresAt time.Time) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: range: %w", err)
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return wrap(ctx, "range", err)
	}
	r := ranger{s: s, fn: fn, match: globEscape(s.prefix) + "*", seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}
	for _, n := range nodes {
		more, err := r.node(ctx, n)
		if err != nil {
			return wrap(ctx, "range", err)
		}
		if !more {
			return nil
		}
	}
	return nil
}

// nodes returns the clients to scan: every master of a cluster, every shard
// of a ring, or the client itself.
func (s *Store) nodes(ctx context.Context) ([]redis.Cmdable, error) {
	var (
		mu    sync.Mutex
		nodes []redis.Cmdable
	)
	collect := func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		nodes = append(nodes, c)
		mu.Unlock()
		return nil
	}
	var err error
	switch c := s.client.(type) {
	case interface {
		ForEachMaster(context.Context, func(context.Context, *redis.Client) error) error
	}:
		err = c.ForEachMaster(ctx, collect)
	case interface {
		ForEachShard(context.Context, func(context.Context, *redis.Client) error) error
	}:
		err = c.ForEachShard(ctx, collect)
	default:
		return []redis.Cmdable{s.client}, nil
	}
	return nodes, err
}

type ranger struct {
	s     *Store
	fn    func(id string, data []byte, expiresAt time.Time) bool
	match string
	seed  maphash.Seed
	seen  map[uint64]struct{}
}

// node walks one node; it returns false once fn has returned false.
func (r *ranger) node(ctx context.Context, n redis.Cmdable) (bool, error) {
	var cursor uint64
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		keys, next, err := n.ScanType(ctx, cursor, r.match, pipelineBatch, "hash").Result()
		if err != nil {
			return false, err
		}
		if len(keys) > 0 {
			p := n.Pipeline()
			cmds := make([]*redis.StringSliceCmd, len(keys))
			for i, k := range keys {
				cmds[i] = p.HVals(ctx, k)
			}
			_, _ = p.Exec(ctx) // each command's error is looked at below
			now := time.Now()
			for i, cmd := range cmds {
				vals, err := cmd.Result()
				if err != nil {
					if isWrongType(err) { // not a session hash
						continue
					}
					return false, err
				}
				data, exp, ok := decode(vals, now)
				if !ok {
					continue
				}
				id := strings.TrimPrefix(keys[i], r.s.prefix)
				h := maphash.String(r.seed, id)
				if _, dup := r.seen[h]; dup {
					continue
				}
				r.seen[h] = struct{}{}
				if !r.fn(id, data, exp) {
					return false, nil
				}
			}
		}
		if next == 0 {
			return true, nil
		}
		cursor = next
	}
}

// globEscape escapes the characters that are special in a SCAN MATCH
// pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Close does nothing and returns nil. The store does not own the client:
// the application that created the client closes it.
func (s *Store) Close() error { return nil }
