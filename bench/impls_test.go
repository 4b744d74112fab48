package bench

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	fs "github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/pgstore"
	"github.com/fastsession/sessions/store/redisstore"
	"github.com/fastsession/sessions/store/sqlitestore"
	gc "github.com/gin-contrib/sessions"
	gccookie "github.com/gin-contrib/sessions/cookie"
	gcmem "github.com/gin-contrib/sessions/memstore"
	gcredis "github.com/gin-contrib/sessions/redis"
	"github.com/gin-gonic/gin"
)

// secret signs every implementation's cookies.
var secret = []byte("bench-secret-key-0123456789abcdef-0123456789")

// The seeded session: seedKeys[i] holds seedValues[i], 100 bytes each, and
// countKey holds the int 0. The read scenario reads readKey.
const (
	numKeys   = 10
	valueLen  = 100
	readKey   = "k3"
	countKey  = "count"
	newKey    = "user"
	newValue  = "u-42"
	readIndex = 3
)

var (
	seedKeys, seedValues = makeSeed()
	okBody               = []byte("ok")
)

func makeSeed() (keys, values [numKeys]string) {
	for i := range numKeys {
		keys[i] = "k" + strconv.Itoa(i)
		values[i] = strings.Repeat(string(rune('a'+i)), valueLen)
	}
	return keys, values
}

// routes are the handlers an implementation serves:
//
//	/seed       stores the 10 keys and the counter, so the client gets a cookie
//	/untouched  never touches the session
//	/read       answers the value of readKey
//	/write      increments the counter and answers its new value
//	/new        sets newKey in a session the client does not have yet
//	/count      answers the counter; /who answers newKey
type routes struct {
	seed, untouched, read, write, create, count, who gin.HandlerFunc
}

// env is one implementation ready to serve requests.
type env struct {
	engine *gin.Engine
	// cookie is the session cookie's name; "" for bare Gin, which has none.
	cookie string
	// cookieCarriesData is true when the cookie holds the session itself,
	// so the client must send back the latest one it received.
	cookieCarriesData bool
}

func newEnv(cookie string, mw gin.HandlerFunc, r routes) *env {
	e := gin.New()
	if mw != nil {
		e.Use(mw)
	}
	e.GET("/seed", r.seed)
	e.GET("/untouched", r.untouched)
	e.GET("/read", r.read)
	e.GET("/write", r.write)
	e.GET("/new", r.create)
	e.GET("/count", r.count)
	e.GET("/who", r.who)
	return &env{engine: e, cookie: cookie}
}

// impl is one implementation under test; setup skips (fails under CI) when
// its server is unreachable, and registers its own cleanup.
type impl struct {
	name  string
	setup func(tb testing.TB) *env
}

var impls = []impl{
	{"bare", setupBare},
	{"fastsession-memstore", func(tb testing.TB) *env {
		st := memstore.New()
		tb.Cleanup(func() { _ = st.Close() })
		return fastsessionEnv(st)
	}},
	{"fastsession-redis", func(tb testing.TB) *env {
		c := redisClient(tb)
		return fastsessionEnv(redisstore.New(c, redisstore.WithKeyPrefix(redisPrefix(tb, c, "fs"))))
	}},
	{"fastsession-sqlite", func(tb testing.TB) *env {
		st, err := sqlitestore.Open(filepath.Join(tb.TempDir(), "sessions.db"))
		if err != nil {
			tb.Fatalf("sqlitestore.Open: %v", err)
		}
		tb.Cleanup(func() { _ = st.Close() })
		return fastsessionEnv(st)
	}},
	{"fastsession-pg", func(tb testing.TB) *env {
		pool := pgPool(tb)
		table := "fsbench_" + runTag()
		st := pgstore.New(pool, pgstore.WithTableName(table))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.CreateTable(ctx); err != nil {
			tb.Fatalf("pgstore.CreateTable: %v", err)
		}
		tb.Cleanup(func() {
			_ = st.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
				tb.Errorf("dropping %s: %v", table, err)
			}
		})
		return fastsessionEnv(st)
	}},
	{"gincontrib-memstore", func(tb testing.TB) *env {
		return gincontribEnv(gcmem.NewStore(secret))
	}},
	{"gincontrib-cookie", func(tb testing.TB) *env {
		e := gincontribEnv(gccookie.NewStore(secret))
		e.cookieCarriesData = true
		return e
	}},
	{"gincontrib-redis", func(tb testing.TB) *env {
		c := redisClient(tb) // reachability, and the cleanup of the keys
		prefix := redisPrefix(tb, c, "gc")
		st, err := gcredis.NewStore(10, "tcp", redisAddr(), "", "", secret)
		if err != nil {
			tb.Fatalf("gin-contrib redis.NewStore: %v", err)
		}
		if err := gcredis.SetKeyPrefix(st, prefix); err != nil {
			tb.Fatalf("gin-contrib redis.SetKeyPrefix: %v", err)
		}
		tb.Cleanup(func() {
			if rs, err := gcredis.GetRedisStore(st); err == nil {
				_ = rs.Close()
			}
		})
		return gincontribEnv(st)
	}},
	{"scs-memstore", func(tb testing.TB) *env { return scsEnv(newSCS(tb)) }},
}

// newSCS returns an scs session manager on its default memory store. That
// store's cleanup goroutine is left running: stopping it races with its
// start inside scs (StopCleanup reads the channel the goroutine assigns), and
// it only wakes once a minute.
func newSCS(testing.TB) *scs.SessionManager {
	return scs.New()
}

func setupBare(testing.TB) *env {
	var counter atomic.Int64
	return newEnv("", nil, routes{
		seed:      func(c *gin.Context) { c.String(http.StatusOK, "ok") },
		untouched: func(c *gin.Context) { c.String(http.StatusOK, "ok") },
		read:      func(c *gin.Context) { c.String(http.StatusOK, seedValues[readIndex]) },
		write: func(c *gin.Context) {
			c.String(http.StatusOK, strconv.FormatInt(counter.Add(1), 10))
		},
		create: func(c *gin.Context) { c.String(http.StatusOK, "ok") },
		count: func(c *gin.Context) {
			c.String(http.StatusOK, strconv.FormatInt(counter.Load(), 10))
		},
		who: func(c *gin.Context) { c.String(http.StatusOK, newValue) },
	})
}

func fastsessionEnv(st fs.Store, opts ...fs.Option) *env {
	opts = append([]fs.Option{fs.WithStore(st)}, opts...)
	return newEnv(fs.DefaultCookieName, fs.New(secret, opts...), fastsessionRoutes)
}

var fastsessionRoutes = routes{
	seed: func(c *gin.Context) {
		s := fs.Default(c)
		for i := range numKeys {
			s.Set(seedKeys[i], seedValues[i])
		}
		s.Set(countKey, 0)
		c.String(http.StatusOK, "ok")
	},
	untouched: func(c *gin.Context) { c.String(http.StatusOK, "ok") },
	read: func(c *gin.Context) {
		v, ok := fs.GetAs[string](fs.Default(c), readKey)
		if !ok {
			c.String(http.StatusInternalServerError, "no value")
			return
		}
		c.String(http.StatusOK, v)
	},
	write: func(c *gin.Context) {
		s := fs.Default(c)
		n, ok := fs.GetAs[int](s, countKey)
		if !ok {
			c.String(http.StatusInternalServerError, "no counter")
			return
		}
		s.Set(countKey, n+1)
		c.String(http.StatusOK, strconv.Itoa(n+1))
	},
	create: func(c *gin.Context) {
		fs.Default(c).Set(newKey, newValue)
		c.String(http.StatusOK, "ok")
	},
	count: func(c *gin.Context) {
		n, ok := fs.GetAs[int](fs.Default(c), countKey)
		if !ok {
			c.String(http.StatusInternalServerError, "no counter")
			return
		}
		c.String(http.StatusOK, strconv.Itoa(n))
	},
	who: func(c *gin.Context) {
		v, _ := fs.GetAs[string](fs.Default(c), newKey)
		c.String(http.StatusOK, v)
	},
}

// gcCookie is the cookie name given to gin-contrib/sessions.
const gcCookie = "session"

func gincontribEnv(st gc.Store) *env {
	return newEnv(gcCookie, gc.Sessions(gcCookie, st), gincontribRoutes)
}

// gcSave saves a gin-contrib session, answering 500 when it fails: its
// Save returns the error and the handler must act on it.
func gcSave(c *gin.Context, s gc.Session) bool {
	if err := s.Save(); err != nil {
		c.String(http.StatusInternalServerError, "save: "+err.Error())
		return false
	}
	return true
}

var gincontribRoutes = routes{
	seed: func(c *gin.Context) {
		s := gc.Default(c)
		for i := range numKeys {
			s.Set(seedKeys[i], seedValues[i])
		}
		s.Set(countKey, 0)
		if gcSave(c, s) {
			c.String(http.StatusOK, "ok")
		}
	},
	untouched: func(c *gin.Context) { c.String(http.StatusOK, "ok") },
	read: func(c *gin.Context) {
		v, ok := gc.Default(c).Get(readKey).(string)
		if !ok {
			c.String(http.StatusInternalServerError, "no value")
			return
		}
		c.String(http.StatusOK, v)
	},
	write: func(c *gin.Context) {
		s := gc.Default(c)
		n, ok := s.Get(countKey).(int)
		if !ok {
			c.String(http.StatusInternalServerError, "no counter")
			return
		}
		s.Set(countKey, n+1)
		if gcSave(c, s) {
			c.String(http.StatusOK, strconv.Itoa(n+1))
		}
	},
	create: func(c *gin.Context) {
		s := gc.Default(c)
		s.Set(newKey, newValue)
		if gcSave(c, s) {
			c.String(http.StatusOK, "ok")
		}
	},
	count: func(c *gin.Context) {
		n, ok := gc.Default(c).Get(countKey).(int)
		if !ok {
			c.String(http.StatusInternalServerError, "no counter")
			return
		}
		c.String(http.StatusOK, strconv.Itoa(n))
	},
	who: func(c *gin.Context) {
		v, _ := gc.Default(c).Get(newKey).(string)
		c.String(http.StatusOK, v)
	},
}

func scsEnv(sm *scs.SessionManager) *env {
	return newEnv(sm.Cookie.Name, scsMiddleware(sm), scsRoutes(sm))
}

func scsRoutes(sm *scs.SessionManager) routes {
	ctx := func(c *gin.Context) context.Context { return c.Request.Context() }
	return routes{
		seed: func(c *gin.Context) {
			for i := range numKeys {
				sm.Put(ctx(c), seedKeys[i], seedValues[i])
			}
			sm.Put(ctx(c), countKey, 0)
			c.String(http.StatusOK, "ok")
		},
		untouched: func(c *gin.Context) { c.String(http.StatusOK, "ok") },
		read: func(c *gin.Context) {
			v, ok := sm.Get(ctx(c), readKey).(string)
			if !ok {
				c.String(http.StatusInternalServerError, "no value")
				return
			}
			c.String(http.StatusOK, v)
		},
		write: func(c *gin.Context) {
			n, ok := sm.Get(ctx(c), countKey).(int)
			if !ok {
				c.String(http.StatusInternalServerError, "no counter")
				return
			}
			sm.Put(ctx(c), countKey, n+1)
			c.String(http.StatusOK, strconv.Itoa(n+1))
		},
		create: func(c *gin.Context) {
			sm.Put(ctx(c), newKey, newValue)
			c.String(http.StatusOK, "ok")
		},
		count: func(c *gin.Context) {
			n, ok := sm.Get(ctx(c), countKey).(int)
			if !ok {
				c.String(http.StatusInternalServerError, "no counter")
				return
			}
			c.String(http.StatusOK, strconv.Itoa(n))
		},
		who: func(c *gin.Context) {
			v, _ := sm.Get(ctx(c), newKey).(string)
			c.String(http.StatusOK, v)
		},
	}
}
