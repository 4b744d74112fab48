package memstore_test

import (
	"testing"

	"github.com/fastsession/sessions"
	"github.com/fastsession/sessions/store/memstore"
	"github.com/fastsession/sessions/store/storetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) sessions.Store {
		s := memstore.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
