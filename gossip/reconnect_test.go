package gossip

import (
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/faultnet"
)

// TestLongPartitionHeals: a node cut off for longer than memberlist
// gossips to the dead (5 s) is joined again once the network heals, and
// what each side bound meanwhile reaches the other. Without the reconnect
// loop both sides keep each other dead for good (found by the chaos suite:
// go test ./test/chaos -args -plan partition-2way -hold 15s).
func TestLongPartitionHeals(t *testing.T) {
	f := faultnet.New(11)
	c := startCluster(t, 3, clusterOpts{faults: f, node: func(i int, cfg *Config) {
		cfg.ReconnectInterval = 300 * time.Millisecond
	}})
	f.Isolate("n0")
	eventually(t, 15*time.Second, func() bool {
		return c.nodes[0].Stats().Members == 0 && c.nodes[1].Stats().Members == 1 && c.nodes[2].Stats().Members == 1
	}, func() string { return "the isolated node was not declared dead" })
	for i, n := range c.nodes {
		if _, _, err := n.Store().BindIfAbsent(testKey(t, 500+i), "backend-a", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// Outlast memberlist's gossip to the dead (GossipToTheDeadTime, 5 s):
	// from then on nothing but the reconnect loop crosses the partition.
	select {
	case <-time.After(6 * time.Second):
	case <-t.Context().Done():
	}
	f.Reset()
	c.waitMembers(2, 15*time.Second)
	c.waitConverged(15 * time.Second)
	var reconnects uint64
	for _, n := range c.nodes {
		reconnects += n.Stats().Reconnects
	}
	if reconnects == 0 {
		t.Fatal("healed without a reconnect: the test did not outlast memberlist's gossip to the dead")
	}
}
