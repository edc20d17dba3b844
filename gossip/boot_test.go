package gossip

import (
	"context"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// A node started with InitialCopy takes one full copy from a peer (Fig. 12
// step 715) and is ready with every binding, even when the origins' logs no
// longer hold the events (so the gap path alone would need copies too).
func TestInitialCopy(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{db: func(c *stickydb.Config) { c.OwnLogCap = 50 }})
	const keys = 3000
	for i := 0; i < keys; i++ {
		if _, _, err := c.nodes[i%2].Store().BindIfAbsent(testKey(t, i), replicas[i%3], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(20 * time.Second)
	c.opts.node = func(i int, cfg *Config) { cfg.InitialCopy = i == 2 }
	n := c.add(2)
	ctx, cancel := contextWithTimeout(20 * time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.DB().Len(); got != keys {
		t.Fatalf("ready with %d of %d bindings", got, keys)
	}
	if st := n.Stats(); st.FullCopiesReceived < 1 || st.ReadyWhy != stickydb.WhyCaughtUp {
		t.Fatalf("no full copy merged, or not ready by catching up: %+v", st)
	}
}

// A node whose clock is behind an epoch of its own that the peers know
// moves to a later epoch once it has seen their vectors.
func TestEpochAfterPeersOne(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{})
	// n1 restarts with a clock 30 s behind (within MaxFutureEpoch): its new epoch would be
	// before the one the peers know.
	old, _ := c.nodes[1].DB().Position()
	if _, _, err := c.nodes[1].Store().BindIfAbsent(testKey(t, 1), replicas[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(10 * time.Second)
	_ = c.nodes[1].Close()
	behind := func() time.Time { return time.Now().Add(-30 * time.Second) }
	c.opts.node = func(i int, cfg *Config) { cfg.Now = behind }
	c.opts.db = nil
	dbc := stickydb.DefaultConfig(nodeName(1))
	db, err := stickydb.New(dbc, behind())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Now = behind
	cfg.Join = []string{c.nodes[0].Addr()}
	n, err := New(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	eventually(t, 15*time.Second, func() bool { e, _ := db.Position(); return e > old },
		func() string { e, _ := db.Position(); return "epoch still " + time.UnixMilli(e).String() })
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
