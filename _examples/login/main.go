// Command login shows a login flow: Regenerate at login (a session ID
// planted before login becomes worthless), Destroy at logout, and a flash
// message that survives the redirect.
package main

import (
	"log"
	"net/http"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/_examples/internal/exampleutil"
	"github.com/gin-gonic/gin"
)

// users is the demo's user database.
var users = map[string]string{"ann": "correct horse"}

func newRouter(secret []byte, opts ...sessions.Option) *gin.Engine {
	r := gin.New()
	r.Use(gin.Recovery())
	r.Use(sessions.New(secret, opts...))
	r.GET("/", func(c *gin.Context) {
		s := sessions.Default(c)
		user, _ := sessions.GetAs[string](s, "user")
		c.JSON(http.StatusOK, gin.H{"user": user, "flashes": s.Flashes()})
	})
	r.POST("/login", func(c *gin.Context) {
		name, pass := c.PostForm("user"), c.PostForm("password")
		s := sessions.Default(c)
		if want, ok := users[name]; !ok || want != pass {
			s.AddFlash("wrong user name or password")
			c.Redirect(http.StatusSeeOther, "/")
			return
		}
		// Privileges change: new ID, same data, old ID deleted.
		if err := s.Regenerate(); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		s.Set("user", name)
		s.AddFlash("welcome, " + name)
		c.Redirect(http.StatusSeeOther, "/")
	})
	r.POST("/logout", func(c *gin.Context) {
		s := sessions.Default(c)
		if err := s.Destroy(); err != nil {
			c.AbortWithStatus(http.StatusServiceUnavailable)
			return
		}
		s.AddFlash("logged out") // lives in a new, anonymous session
		c.Redirect(http.StatusSeeOther, "/")
	})
	return r
}

func main() {
	addr := exampleutil.Addr()
	log.Printf("try: curl -c jar -b jar -d user=ann -d 'password=correct horse' http://%s/login -L", addr)
	log.Fatal(http.ListenAndServe(addr, newRouter(exampleutil.SecretKey())))
}
