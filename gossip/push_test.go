package gossip

import (
	"testing"
	"time"
)

// TestPushBudget: a burst of binds on one node leaves in batches, within
// the per-peer budget (PushBurst groups at once, then PushBurst per
// PushInterval), and reaches every node. A push per event, or pacing
// that ignores the budget, sends far more groups than the bound allows.
func TestPushBudget(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	src := c.nodes[0]
	cfg := src.cfg
	before := src.Stats().Pushes
	const binds = 3000
	start := time.Now()
	for i := range binds {
		if _, _, err := src.Store().BindIfAbsent(testKey(t, i), replicas[i%3], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	last := testKey(t, binds-1)
	eventually(t, 10*time.Second, func() bool {
		for _, n := range c.nodes[1:] {
			if _, ok := n.DB().Lookup(last); !ok {
				return false
			}
		}
		return true
	}, func() string { return "burst not replicated" })
	elapsed := time.Since(start)
	pushes := src.Stats().Pushes - before
	// Each push round takes a token from every peer it sends to; rounds
	// to the two peers may alternate, so the bound is per peer, twice.
	perPeer := float64(cfg.PushBurst) + elapsed.Seconds()*float64(cfg.PushBurst)/cfg.PushInterval.Seconds()
	bound := uint64(2*perPeer) + 2
	t.Logf("%d binds in %v: %d push rounds (bound %d)", binds, elapsed, pushes, bound)
	if pushes == 0 || pushes > bound {
		t.Fatalf("%d push rounds for %d binds in %v; budget allows at most %d", pushes, binds, elapsed, bound)
	}
	if pushes*4 > binds {
		t.Fatalf("%d push rounds for %d binds: not batched", pushes, binds)
	}
	c.waitConverged(10 * time.Second)
}
