package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

// BenchmarkSessions runs every scenario on every implementation, named
// Sessions/<scenario>/<implementation> so that benchstat lines up the
// implementations of one scenario. Each call of a sub-benchmark gets a fresh
// store (and, on a server, its own key prefix or table).
func BenchmarkSessions(b *testing.B) {
	for _, sc := range scenarios {
		b.Run(sc.name, func(b *testing.B) {
			for _, im := range impls {
				b.Run(im.name, func(b *testing.B) {
					b.ReportAllocs()
					e := im.setup(b)
					d := benchDriver(b)
					sc.run(d, e)
					d.reportFaults()
				})
			}
		})
	}
}

// BenchmarkReference measures the costs the targets are stated in, in the
// same run as the sessions: a securecookie decode of a cookie carrying a
// 32-byte ID, and one go-redis GET of a 1 KB value.
func BenchmarkReference(b *testing.B) {
	b.Run("securecookie-decode", func(b *testing.B) {
		b.ReportAllocs()
		sc := securecookie.New(secret, nil)
		sc.SetSerializer(securecookie.NopEncoder{})
		id := make([]byte, 32)
		_, _ = rand.Read(id)
		value, err := sc.Encode("sid", id)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			var got []byte
			if err := sc.Decode("sid", value, &got); err != nil {
				b.Fatal(err)
			}
			if len(got) != len(id) {
				b.Fatalf("decoded %d bytes, want %d", len(got), len(id))
			}
		}
		b.StopTimer()
		var got []byte
		if err := sc.Decode("sid", value, &got); err != nil || !bytes.Equal(got, id) {
			b.Fatalf("decoded %x (%v), want %x", got, err, id)
		}
	})
	b.Run("redis-get-1KB", func(b *testing.B) {
		b.ReportAllocs()
		c := redisClient(b)
		key := setRefValue(b, c, "ref")
		ctx := context.Background()
		b.ResetTimer()
		for range b.N {
			got, err := c.Get(ctx, key).Bytes()
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != refValueSize {
				b.Fatalf("GET returned %d bytes, want %d", len(got), refValueSize)
			}
		}
	})
}

// refValueSize is the size of the value the Redis references GET: about
// the size of the seeded session.
const refValueSize = 1024

// setRefValue stores a value of refValueSize bytes under a fresh key of
// kind, removed when tb ends, and returns the key.
func setRefValue(tb testing.TB, c *redis.Client, kind string) string {
	tb.Helper()
	key := redisPrefix(tb, c, kind) + "value"
	if err := c.Set(context.Background(), key, bytes.Repeat([]byte("v"), refValueSize), 0).Err(); err != nil {
		tb.Fatalf("Redis SET: %v", err)
	}
	return key
}
