package gossip

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
)

// TestConvergeUnderLossAndReorder: with 20% of packets and streams lost
// and packets delayed 0-5 ms (so they overtake each other), all nodes still
// end with identical databases and vectors, through gap requests,
// heartbeats and the watchdog. The faults stay on while convergence is
// checked.
func TestConvergeUnderLossAndReorder(t *testing.T) {
	f := faultnet.New(7)
	c := startCluster(t, 3, clusterOpts{key: []byte("0123456789abcdef"), faults: f, db: func(dc *stickydb.Config) {
		// A lost full copy (one lost chunk voids it) is asked again after
		// FullCopyTimeout; the core's 10s default would make this test slow.
		dc.RangeTimeout = 250 * time.Millisecond
		dc.FullCopyTimeout = time.Second
	}})
	f.SetLoss(0.2)
	f.SetDelay(0, 5*time.Millisecond)
	rng := rand.New(rand.NewPCG(3, 4))
	// Bursts with pauses: many separate groups, so many can be lost.
	pace := time.NewTicker(3 * time.Millisecond)
	defer pace.Stop()
	for range 150 {
		<-pace.C
		c.randomOps(rng, 10, 400)
	}
	start := time.Now()
	c.waitConverged(30 * time.Second)
	t.Logf("converged %v after the last write", time.Since(start))

	fs := f.Stats()
	if fs.PacketsDropped == 0 || fs.PacketsDelayed == 0 {
		t.Fatalf("no faults happened: %+v", fs)
	}
	var asked uint64
	for _, n := range c.nodes {
		asked += n.Stats().RequestsSent
	}
	if asked == 0 {
		t.Fatal("no gap was ever requested: losses did not hit change groups")
	}
	t.Logf("faults %+v; gap/watchdog requests %d", fs, asked)
}

// TestThirdNodeRelay: n0 and n1 cannot talk to each other (a firewall);
// each one's bindings still reach the other through n2, which serves them
// from its change log table (Fig. 10) when asked.
func TestThirdNodeRelay(t *testing.T) {
	f := faultnet.New(11)
	c := startCluster(t, 3, clusterOpts{key: []byte("0123456789abcdef"), faults: f})
	f.Cut("n0", "n1")
	now := time.Now()
	for i := range 50 {
		for j, n := range c.nodes {
			if _, _, err := n.Store().BindIfAbsent(testKey(t, 1000*j+i), replicas[j], now); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.waitConverged(20 * time.Second)
	if f.Stats().PacketsCut == 0 {
		t.Fatal("the cut dropped nothing")
	}
	// Each of n0, n1 closed its gap of the other's events through n2:
	// normally a range from n2's change log table (stage "third"); on a
	// starved machine the range request may time out and a full copy from
	// n2 (stage "full") closes it instead.
	for i, n := range c.nodes[:2] {
		other := c.nodes[1-i].Name()
		relayed := ""
		for _, g := range n.DB().RecentGaps() {
			if g.Origin == other && g.Asked == "n2" && g.AnsweredBy == "n2" {
				relayed = g.Stage
			}
		}
		if relayed == "" {
			t.Fatalf("%s did not get %s's events through n2: %+v", n.Name(), other, n.DB().RecentGaps())
		}
		t.Logf("%s got %s's events from n2 (%s)", n.Name(), other, relayed)
	}
}

// TestFullCopyWhenRangeIsGone: a node that joins after the others' logs
// were truncated gets a full copy, streamed in chunks, and catches up
// before it says it is ready.
func TestFullCopyWhenRangeIsGone(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{
		key: []byte("0123456789abcdef"),
		db: func(dc *stickydb.Config) {
			dc.OwnLogCap = 20
			dc.ChangeLogTableCap = 20
		},
		node: func(i int, cfg *Config) { cfg.ChunkRecords = 7 },
	})
	now := time.Now()
	for i := range 300 {
		if _, _, err := c.nodes[i%2].Store().BindIfAbsent(testKey(t, i), replicas[i%3], now); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(10 * time.Second)
	// Truncation happens on Tick, once every peer has the events.
	eventually(t, 5*time.Second, func() bool {
		l := c.nodes[0].DB().Logs()
		return l[0].Events <= 20
	}, func() string { return "own log not truncated" })

	late := c.add(2)
	ctxWait(t, late, 20*time.Second)
	for i := range 300 {
		if _, ok := late.DB().Lookup(testKey(t, i)); !ok {
			t.Fatalf("ready but key %d missing", i)
		}
	}
	c.waitConverged(10 * time.Second)
	st := late.Stats()
	if st.FullCopiesReceived == 0 || st.ChunksReceived < 300/7 {
		t.Fatalf("no full copy in chunks: %+v", st)
	}
}

// A lost push is found through the heartbeat's numbers alone when the
// vector is too large for UDP and so goes only at the refresh (here 30 s
// away): the heartbeat says how far the origin's events were pushed, the
// receiver asks for the rest. Before, only a vector showed the hole, so
// the tail waited for the refresh or the watchdog.
func TestLostTailFoundWithoutVector(t *testing.T) {
	f := faultnet.New(13)
	c := startCluster(t, 3, clusterOpts{key: []byte("0123456789abcdef"), faults: f,
		db: func(c *stickydb.Config) { c.Watchdog = 30 * time.Second },
		node: func(_ int, c *Config) {
			c.HeartbeatInterval = 3 * time.Second
			c.MaxUDPBytes = 256
			c.Memberlist.PushPullInterval = time.Minute // its state carries the vector too
		}})
	c.addOrigins(40)
	now := time.Now()
	n0, n1, n2 := c.nodes[0], c.nodes[1], c.nodes[2]
	if _, _, err := n0.Store().BindIfAbsent(testKey(t, 1), replicas[0], now); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(20 * time.Second)
	// The push of the next bind to n1 is lost; n2 gets it.
	f.Cut("n0", "n1")
	k := testKey(t, 2)
	if _, _, err := n0.Store().BindIfAbsent(k, replicas[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { _, ok := n2.DB().Lookup(k); return ok }, func() string { return "n2 did not get the bind" })
	f.Heal("n0", "n1")
	if _, ok := n1.DB().Lookup(k); ok {
		t.Fatal("test setup: the push to n1 was not lost")
	}
	eventually(t, 10*time.Second, func() bool { _, ok := n1.DB().Lookup(k); return ok },
		func() string { return fmt.Sprintf("n1 did not get the lost bind: gaps %+v", n1.DB().RecentGaps()) })
	asked := false
	for _, g := range n1.DB().RecentGaps() {
		asked = asked || (g.Origin == "n0" && g.Asked == "n0")
	}
	if !asked {
		t.Fatalf("n1 got the bind without asking n0: %+v", n1.DB().RecentGaps())
	}
}
