package sessions

import "github.com/gin-gonic/gin"

// skip reports whether sessions are off for this request: it carries the
// skip header with exactly the configured value, or the skipper says so.
// Skipping only turns sessions off; it grants nothing.
func (m *manager) skip(c *gin.Context) bool {
	if m.cfg.skipHeader != "" {
		for _, v := range c.Request.Header[m.cfg.skipHeader] {
			if v == m.cfg.skipValue {
				return true
			}
		}
	}
	return m.cfg.skipper != nil && m.cfg.skipper(c)
}
