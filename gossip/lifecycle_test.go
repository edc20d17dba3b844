package gossip

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
)

// TestRestartSameName: a node that leaves, or crashes, and comes back under
// the same name from a new port (epoch mode: a new, empty DB) rejoins
// quickly, is ready only once it holds the fleet's bindings, and the fleet
// converges, its old epoch's bindings included.
func TestRestartSameName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave bool
	}{{"leave", true}, {"crash", false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, clusterOpts{key: []byte("0123456789abcdef")})
			now := time.Now()
			for i := range 90 {
				if _, _, err := c.nodes[i%3].Store().BindIfAbsent(testKey(t, i), replicas[i%3], now); err != nil {
					t.Fatal(err)
				}
			}
			c.waitConverged(10 * time.Second)
			old := c.nodes[2]
			if err := old.shutdown(tc.leave); err != nil {
				t.Fatal(err)
			}
			c.waitMembers(1, 10*time.Second)
			start := time.Now()
			back := c.add(2)
			ctxWait(t, back, 15*time.Second)
			rejoin := time.Since(start)
			for i := range 90 {
				if _, ok := back.DB().Lookup(testKey(t, i)); !ok {
					t.Fatalf("ready without key %d", i)
				}
			}
			c.waitMembers(2, 10*time.Second)
			c.waitConverged(10 * time.Second)
			t.Logf("%s: ready again %v after restart", tc.name, rejoin)
		})
	}
}

// TestJoinRetry: a node whose seed cannot be reached at first keeps trying
// and joins once it can.
func TestJoinRetry(t *testing.T) {
	f := faultnet.New(5)
	c := startCluster(t, 1, clusterOpts{faults: f})
	f.Cut("n0", "n1")
	late := c.add(1)
	eventually(t, 5*time.Second, func() bool { return late.Stats().JoinRetries >= 3 }, func() string { return "no retries" })
	if late.Joined() || late.Ready() {
		t.Fatal("joined through a cut link")
	}
	f.Heal("n0", "n1")
	ctxWait(t, late, 10*time.Second)
	c.waitMembers(1, 5*time.Second)
}

// TestSeeds: one seed list for the whole fleet works: a node drops its
// own address from it, however it is written.
func TestSeeds(t *testing.T) {
	n := unstartedNode(t, "me")
	n.addr = "127.0.0.1:7946"
	n.cfg.AdvertiseAddr = "10.0.0.5:7946"
	for _, tc := range []struct {
		join []string
		want int
	}{
		{nil, 0},
		{[]string{"127.0.0.1:7946"}, 0},
		{[]string{"10.0.0.5:7946", "127.0.0.1:7946", "127.0.0.2:7946"}, 1},
		{[]string{"127.000.000.001:7946"}, 1}, // not an IP net.ParseIP reads: kept, harmless
		{[]string{"[::1]:7946", "node-b:7946"}, 2},
	} {
		n.cfg.Join = tc.join
		if got := n.seeds(); len(got) != tc.want {
			t.Errorf("Join %v: seeds %v, want %d", tc.join, got, tc.want)
		}
	}
}

// TestFullCopyRateLimit: a peer asking for full copies in a loop gets at
// most FullCopyBurst of them; the rest are refused and counted, and copies
// it did not ask for are not merged by anyone.
func TestFullCopyRateLimit(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{key: []byte("0123456789abcdef"), node: func(i int, cfg *Config) {
		cfg.FullCopyInterval = time.Hour
		cfg.FullCopyBurst = 2
	}})
	now := time.Now()
	for i := range 50 {
		if _, _, err := c.nodes[0].Store().BindIfAbsent(testKey(t, i), "backend-a", now); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(5 * time.Second)
	victim, flooder := c.nodes[0], c.nodes[1]
	req := encodeRequest(flooder.Name(), &stickydb.Request{Full: true, Reason: stickydb.ReasonFull})
	const asks = 20
	for range asks {
		if err := flooder.ml.SendToAddress(memberlist.Address{Addr: victim.Addr(), Name: victim.Name()}, req); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, func() bool {
		st := victim.Stats()
		return st.RequestsRefused+st.FullCopiesSent+st.FullCopiesJoined >= asks
	}, func() string {
		st := victim.Stats()
		return fmt.Sprintf("requests not all handled: sent %d, joined %d, refused %d", st.FullCopiesSent, st.FullCopiesJoined, st.RequestsRefused)
	})
	// Two asks pass the limit (burst 2); the second may be answered by the
	// copy the first started (joined) rather than by a copy of its own.
	st := victim.Stats()
	if st.FullCopiesSent > 2 || st.FullCopiesSent+st.FullCopiesJoined > 2 || st.RequestsRefused < asks-2 {
		t.Fatalf("sent %d copies, joined %d, refused %d", st.FullCopiesSent, st.FullCopiesJoined, st.RequestsRefused)
	}
	// The flooder never asked through its core: the copies are unsolicited.
	eventually(t, 5*time.Second, func() bool { return flooder.Stats().Unsolicited > 0 },
		func() string { return "unsolicited copy not refused" })
	if flooder.Stats().FullCopiesReceived != 0 {
		t.Fatal("an unsolicited copy was merged")
	}
}

// fakeDisk is a Persister that "writes" own events to memory, and can be
// made to fail.
type fakeDisk struct {
	db      *stickydb.DB
	mu      sync.Mutex
	written uint64
	fail    atomic.Bool
	flushes atomic.Int64
}

var errDisk = errors.New("disk full")

func (d *fakeDisk) Flush() (uint64, error) {
	d.flushes.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail.Load() {
		return d.written, errDisk
	}
	for {
		g := d.db.Unpersisted(d.written, 1000)
		if len(g.Events) == 0 {
			d.db.MarkPersisted(g.Epoch, d.written)
			return d.written, nil
		}
		d.written = g.To
	}
}

// TestPersistThenSend: in durable mode nothing leaves before the persister
// has it; while it fails, peers get nothing; once it works, they get all.
func TestPersistThenSend(t *testing.T) {
	disk := &fakeDisk{}
	c := &cluster{t: t, opts: clusterOpts{
		db: func(dc *stickydb.Config) { dc.Durable = true },
		node: func(i int, cfg *Config) {
			if i == 0 {
				cfg.Persister = disk
			}
		},
	}}
	c.opts.db = func(dc *stickydb.Config) { dc.Durable = dc.Node == "n0" }
	c.add(0)
	disk.db = c.nodes[0].DB()
	c.add(1)
	c.waitMembers(1, 10*time.Second)
	c.waitReady(10 * time.Second)

	disk.fail.Store(true)
	k := testKey(t, 1)
	if _, _, err := c.nodes[0].Store().BindIfAbsent(k, "backend-a", time.Now()); err != nil {
		t.Fatal(err)
	}
	before := disk.flushes.Load()
	eventually(t, 5*time.Second, func() bool { return disk.flushes.Load() >= before+5 }, func() string { return "no flush retries" })
	if _, ok := c.nodes[1].DB().Lookup(k); ok {
		t.Fatal("an unpersisted event left the node")
	}
	if c.nodes[0].Stats().PersistErrors == 0 {
		t.Fatal("persist errors not counted")
	}
	disk.fail.Store(false)
	eventually(t, 5*time.Second, func() bool { _, ok := c.nodes[1].DB().Lookup(k); return ok }, func() string { return "never sent" })
	c.waitConverged(5 * time.Second)
}

// TestSweep: the run loop frees expired bindings, a shard at a time.
func TestSweep(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{
		db: func(dc *stickydb.Config) {
			dc.TTL = 200 * time.Millisecond
			dc.MaxSkew = 10 * time.Millisecond
			dc.Shards = 4
		},
		node: func(i int, cfg *Config) { cfg.SweepInterval = time.Millisecond },
	})
	n := c.nodes[0]
	for i := range 100 {
		if _, _, err := n.Store().BindIfAbsent(testKey(t, i), "backend-a", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n.DB().Len() != 100 {
		t.Fatalf("%d entries", n.DB().Len())
	}
	eventually(t, 5*time.Second, func() bool { return n.DB().Len() == 0 }, func() string { return "expired entries not swept" })
}
