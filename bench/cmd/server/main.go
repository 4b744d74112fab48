// Command server serves one route, GET /read, for load tests over real
// HTTP: either bare Gin answering a constant 100-byte value, or FastSession
// on its memory store reading that value from a session.
//
//	server -mode bare
//	server -mode session
//
// It listens on 127.0.0.1 on a free port and prints, before serving:
//
//	url http://127.0.0.1:PORT/read
//	cookie sid=...            (session mode: the Cookie header to send)
//
// It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	fs "github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/gin-gonic/gin"
)

// value is what /read answers: 100 bytes, one of 10 such keys in the
// session.
var value = strings.Repeat("d", 100)

func main() {
	mode := flag.String("mode", "bare", "bare (Gin alone) or session (FastSession on its memory store)")
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(*mode, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(mode, addr string) error {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	cookie := ""
	switch mode {
	case "bare":
		e.GET("/read", func(c *gin.Context) { c.String(http.StatusOK, value) })
	case "session":
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		e.Use(fs.New(secret, fs.WithStore(memstore.New())))
		e.GET("/seed", func(c *gin.Context) {
			s := fs.Default(c)
			for i := range 10 {
				s.Set(fmt.Sprintf("k%d", i), strings.Repeat(string(rune('a'+i)), 100))
			}
			c.String(http.StatusOK, "ok")
		})
		e.GET("/read", func(c *gin.Context) {
			v, ok := fs.GetAs[string](fs.Default(c), "k3")
			if !ok {
				c.String(http.StatusInternalServerError, "no session")
				return
			}
			c.String(http.StatusOK, v)
		})
		var err error
		if cookie, err = seed(e); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-mode %q: want bare or session", mode)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("url http://%s/read\n", ln.Addr())
	if cookie != "" {
		fmt.Printf("cookie %s\n", cookie)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// seed makes the session the load test reads, checks that its cookie reads
// the value back, and returns the Cookie header value to send.
func seed(e *gin.Engine) (string, error) {
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/seed", nil))
	var cookie string
	for _, ck := range w.Result().Cookies() {
		if ck.Name == fs.DefaultCookieName {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	if w.Code != http.StatusOK || cookie == "" {
		return "", fmt.Errorf("seeding the session: status %d, no cookie", w.Code)
	}
	r := httptest.NewRequest(http.MethodGet, "/read", nil)
	r.Header.Set("Cookie", cookie)
	w = httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Body.String() != value {
		return "", fmt.Errorf("reading the seeded session back: status %d, body %.40q", w.Code, w.Body.String())
	}
	return cookie, nil
}
