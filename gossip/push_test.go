package gossip

import (
	"math"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
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

// The steady push rate per peer is the node's PushBudget shared by its
// live peers, never above PushBurst per PushInterval nor below two per
// HeartbeatInterval.
func TestPushRateSharesBudget(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		peers int
		want  float64
	}{
		{0, 1000}, {1, 1000}, {2, 500}, {9, 1000.0 / 9}, {49, 1000.0 / 49}, {1000, 4},
	} {
		if got := float64(c.pushRate(tc.peers)); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("pushRate(%d) = %v, want %v", tc.peers, got, tc.want)
		}
	}
}

// A node sets each live peer's push rate for the fleet's size as
// membership changes.
func TestPushRateFollowsMembership(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{node: func(_ int, c *Config) { c.PushBudget = 100 }})
	for _, n := range c.nodes {
		eventually(t, 10*time.Second, func() bool {
			for _, p := range n.peers.live() {
				if p.pushTokens.Limit() != 50 {
					return false
				}
			}
			return len(n.peers.live()) == 2
		}, func() string { return n.self + ": push rate per peer is not PushBudget / 2 peers" })
	}
}

// Pushed groups carry the vector every VectorInterval up to vectorPeers
// peers, then less often in proportion, never rarer than a heartbeat.
func TestVectorEveryScalesWithPeers(t *testing.T) {
	n := &Node{cfg: DefaultConfig(), watchdog: 5 * time.Second}
	for _, tc := range []struct {
		peers int
		want  time.Duration
	}{
		{0, 100 * time.Millisecond}, {3, 100 * time.Millisecond}, {10, 100 * time.Millisecond},
		{20, 200 * time.Millisecond}, {49, 490 * time.Millisecond}, {99, 990 * time.Millisecond},
		{1000, 1250 * time.Millisecond},
	} {
		if got := n.vectorEvery(tc.peers); got != tc.want {
			t.Errorf("vectorEvery(%d) = %v, want %v", tc.peers, got, tc.want)
		}
	}
}

// Heartbeats go every HeartbeatInterval up to heartbeatPeers peers, then
// less often in proportion (a node sends at most heartbeatPeers per
// HeartbeatInterval), never rarer than a quarter of the core's Watchdog.
func TestHeartbeatEveryScalesWithPeers(t *testing.T) {
	n := &Node{cfg: DefaultConfig(), watchdog: 5 * time.Second}
	for _, tc := range []struct {
		peers int
		want  time.Duration
	}{
		{0, 500 * time.Millisecond}, {2, 500 * time.Millisecond}, {25, 500 * time.Millisecond},
		{49, 980 * time.Millisecond}, {60, 1200 * time.Millisecond}, {99, 1250 * time.Millisecond}, {1000, 1250 * time.Millisecond},
	} {
		if got := n.heartbeatEvery(tc.peers); got != tc.want {
			t.Errorf("heartbeatEvery(%d) = %v, want %v", tc.peers, got, tc.want)
		}
	}
	// A HeartbeatInterval near the Watchdog is never lengthened past it.
	n.cfg.HeartbeatInterval, n.watchdog = 4*time.Second, 5*time.Second
	if got := n.heartbeatEvery(99); got != 4*time.Second {
		t.Errorf("heartbeatEvery(99) with HeartbeatInterval 4s, Watchdog 5s = %v, want 4s", got)
	}
}

// live() is cached until a peer goes up or down, and a slice handed out
// earlier is never changed under its holder.
func TestPeerTableLiveCache(t *testing.T) {
	var tb peerTable
	tb.init()
	cfg := DefaultConfig()
	members := map[string]memberlist.Node{}
	for _, name := range []string{"c", "a", "b"} {
		members[name] = memberlist.Node{Name: name}
		tb.up(name, members[name], cfg)
	}
	l1 := tb.live()
	if len(l1) != 3 || l1[0].name != "a" || l1[2].name != "c" {
		t.Fatalf("live = %v", names(l1))
	}
	if l2 := tb.live(); &l2[0] != &l1[0] {
		t.Fatal("live() rebuilt without a change")
	}
	delete(members, "b")
	if down := tb.downExcept(members); len(down) != 1 || down[0].name != "b" {
		t.Fatalf("down = %v", names(down))
	}
	if l := tb.live(); len(l) != 2 || l[0].name != "a" || l[1].name != "c" {
		t.Fatalf("after b went down: live = %v", names(l))
	}
	if len(l1) != 3 || l1[1].name != "b" {
		t.Fatalf("an earlier answer changed: %v", names(l1))
	}
	tb.up("b", memberlist.Node{Name: "b"}, cfg)
	if l := tb.live(); len(l) != 3 || l[1].name != "b" {
		t.Fatalf("after b came back: live = %v", names(l))
	}
}

func names(ps []*peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name
	}
	return out
}
