package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/fastsession/sessions"
)

// Upgradable is a SQL store whose CreateTable also brings a table made by
// an earlier version up to date.
type Upgradable interface {
	sessions.Store
	sessions.UserIndexer
	CreateTable(ctx context.Context) error
}

// CheckUpgrade runs s.CreateTable twice on a table made before sessions
// had users, in which the session id was stored holding the bytes "kept"
// and expiring at exp, and checks that the session is kept and that the
// user index now works for it.
func CheckUpgrade(t *testing.T, s Upgradable, id string, exp time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		if err := s.CreateTable(ctx); err != nil {
			t.Fatalf("CreateTable on the old table (%d): %v", i, err)
		}
	}
	if data, _, found, err := s.Load(ctx, id); err != nil || !found || string(data) != "kept" {
		t.Fatalf("the old session after the upgrade: %q, %v, %v", data, found, err)
	}
	if err := s.LinkUser(ctx, "ann", id, exp); err != nil {
		t.Fatalf("LinkUser after the upgrade: %v", err)
	}
	got, err := s.UserSessions(ctx, "ann")
	if err != nil || len(got) != 1 || got[0] != id {
		t.Fatalf("UserSessions after the upgrade: %q, %v", got, err)
	}
}
