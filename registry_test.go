package sessions

import (
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
)

// The registry gives the answers of a plain map, whatever the order of
// binds, rebinds and releases, also when more requests than a shard holds
// inline fall into one shard and spill into its overflow map, and every
// binding is held in one place only.
func TestRegistryMatchesAMap(t *testing.T) {
	var reg registry
	// Contexts and requests whose bindings all fall into shard 0.
	var bs []binding
	for len(bs) < 3*shardSlots {
		c, r := new(gin.Context), new(http.Request)
		if reg.shard(binding{c: c}) == &reg.shards[0] {
			bs = append(bs, binding{c: c, key: "session"}, binding{c: c, key: "other"})
		}
		if reg.shard(binding{r: r}) == &reg.shards[0] {
			bs = append(bs, binding{r: r, key: "session"})
		}
	}
	vals := []any{&manager{}, &Session{}, &Session{}}
	model := map[binding]any{}
	rng := rand.New(rand.NewPCG(1, 2))
	sh := &reg.shards[0]
	spilled := false
	for step := range 20000 {
		b := bs[rng.IntN(len(bs))]
		var v any
		if rng.IntN(3) > 0 { // two binds to one release, so the shard fills up
			v = vals[rng.IntN(len(vals))]
		}
		if rng.IntN(2) == 0 {
			if prev := reg.swap(b, v); prev != model[b] {
				t.Fatalf("step %d: swap returned %p, want %p", step, prev, model[b])
			}
		} else {
			reg.set(b, v)
		}
		if v == nil {
			delete(model, b)
		} else {
			model[b] = v
		}
		held := map[binding]int{}
		for i, e := range sh.e {
			if e.b != (binding{}) {
				held[e.b]++
			}
			if inUse := sh.used>>i&1 == 1; inUse != (e.b != binding{}) {
				t.Fatalf("step %d: entry %d holds %v, but its bit in used is %v", step, i, e.b, inUse)
			}
		}
		for k := range sh.more {
			if k != (binding{}) {
				held[k]++
				spilled = true
			}
		}
		if len(held) != len(model) {
			t.Fatalf("step %d: the shard holds %d bindings, want %d", step, len(held), len(model))
		}
		for _, n := range held {
			if n != 1 {
				t.Fatalf("step %d: a binding is held %d times", step, n)
			}
		}
		for _, k := range bs {
			if got := reg.get(k); got != model[k] {
				t.Fatalf("step %d: get = %p, want %p", step, got, model[k])
			}
		}
	}
	if !spilled {
		t.Fatal("the test never filled a shard's inline entries")
	}
}

// Bindings spread over the shards: requests in flight do not pile into a
// few of them, which would make them contend for one lock.
func TestRegistrySpreadsContexts(t *testing.T) {
	var reg registry
	per := map[*registryShard]int{}
	keep := make([]*gin.Context, 0, 64*bindingShards)
	for range cap(keep) {
		c := new(gin.Context)
		keep = append(keep, c)
		per[reg.shard(binding{c: c})]++
	}
	if len(per) < bindingShards*3/4 {
		t.Fatalf("%d contexts fell into %d of %d shards", len(keep), len(per), bindingShards)
	}
	for _, n := range per {
		if n > 4*len(keep)/bindingShards {
			t.Fatalf("a shard got %d of %d contexts (fair share %d)", n, len(keep), len(keep)/bindingShards)
		}
	}
}
