package gossip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
)

// testConfig is a node config for loopback tests: ephemeral port, fast
// failure detection and joins.
func testConfig(t testing.TB) Config {
	c := DefaultConfig()
	c.BindAddr = "127.0.0.1:0"
	c.JoinRetryMin, c.JoinRetryMax = 20*time.Millisecond, 300*time.Millisecond
	c.LeaveTimeout = 300 * time.Millisecond
	c.Memberlist.ProbeInterval = 200 * time.Millisecond
	c.Memberlist.ProbeTimeout = 100 * time.Millisecond
	c.Memberlist.GossipInterval = 50 * time.Millisecond
	c.Memberlist.PushPullInterval = 2 * time.Second
	c.Memberlist.TCPTimeout = time.Second
	c.Memberlist.DeadNodeReclaimTime = 300 * time.Millisecond
	if os.Getenv("TETHER_TEST_LOG") != "" {
		l := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
		c.Logger = &l
	}
	return c
}

type clusterOpts struct {
	key    []byte
	faults *faultnet.Network
	db     func(c *stickydb.Config)
	node   func(i int, c *Config)
}

type cluster struct {
	t     testing.TB
	nodes []*Node
	opts  clusterOpts

	mu         sync.Mutex
	transports map[string]*faultnet.Transport // by node name, when faults are on
}

// transport returns the fault-injecting transport of a node.
func (c *cluster) transport(name string) *faultnet.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transports[name]
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i) }

// startCluster starts n nodes, each joining the ones before it, and waits
// until every node is ready and sees all the others.
func startCluster(t testing.TB, n int, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, opts: o}
	for i := range n {
		c.add(i)
	}
	c.waitMembers(n-1, 20*time.Second)
	c.waitReady(20 * time.Second)
	return c
}

func (c *cluster) newDB(name string) *stickydb.DB {
	dc := stickydb.DefaultConfig(name)
	if c.opts.db != nil {
		c.opts.db(&dc)
	}
	db, err := stickydb.New(dc, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return db
}

// add starts node i (replacing a stopped one of that index).
func (c *cluster) add(i int) *Node {
	c.t.Helper()
	name := nodeName(i)
	cfg := testConfig(c.t)
	cfg.Key = c.opts.key
	for _, m := range c.nodes {
		if m != nil && !m.closing.Load() {
			cfg.Join = append(cfg.Join, m.Addr())
		}
	}
	if f := c.opts.faults; f != nil {
		cfg.WrapTransport = c.wrapper(name)
	}
	if c.opts.node != nil {
		c.opts.node(i, &cfg)
	}
	node, err := New(cfg, c.newDB(name))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = node.Close() })
	for len(c.nodes) <= i {
		c.nodes = append(c.nodes, nil)
	}
	c.nodes[i] = node
	return node
}

// wrapper returns a WrapTransport hook that puts the node's transport on
// the cluster's fault network and remembers it.
func (c *cluster) wrapper(name string) func(memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
	return func(t memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
		ft, err := c.opts.faults.Wrap(name, t)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.transports == nil {
			c.transports = map[string]*faultnet.Transport{}
		}
		c.transports[name] = ft
		c.mu.Unlock()
		return ft, nil
	}
}

func (c *cluster) live() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n != nil && !n.closing.Load() {
			out = append(out, n)
		}
	}
	return out
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes; then it fails the test with what describe says.
func eventually(t testing.TB, d time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, describe())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *cluster) waitMembers(peers int, d time.Duration) {
	c.t.Helper()
	eventually(c.t, d, func() bool {
		for _, n := range c.live() {
			if n.Stats().Members != peers {
				return false
			}
		}
		return true
	}, func() string {
		var b strings.Builder
		for _, n := range c.live() {
			fmt.Fprintf(&b, "%s sees %d peers; ", n.Name(), n.Stats().Members)
		}
		return b.String()
	})
}

func (c *cluster) waitReady(d time.Duration) {
	c.t.Helper()
	eventually(c.t, d, func() bool {
		for _, n := range c.live() {
			if !n.Ready() {
				return false
			}
		}
		return true
	}, func() string { return "nodes not ready" })
}

// state is what must be equal on every node once replication is done.
type state struct {
	count  int
	sum    uint64
	vector string
}

func nodeState(n *Node) state {
	cnt, sum := n.DB().Digest(time.Now(), 0)
	return state{cnt, sum, normVector(n.DB().Vector())}
}

// normVector renders a vector without (epoch, 0) pairs: a node that made
// no event in an epoch shows the pair in its own vector only.
func normVector(v stickydb.Vector) string {
	w := stickydb.Vector{}
	for o, ps := range v {
		for _, p := range ps {
			if p.Seq > 0 {
				w.Advance(o, p.Epoch, p.Seq)
			}
		}
	}
	return w.String()
}

func (c *cluster) converged() bool {
	nodes := c.live()
	first := nodeState(nodes[0])
	for _, n := range nodes[1:] {
		if nodeState(n) != first {
			return false
		}
	}
	return true
}

func (c *cluster) describe() string {
	var b strings.Builder
	for _, n := range c.live() {
		s := nodeState(n)
		st := n.Stats()
		fmt.Fprintf(&b, "\n  %s: %d bindings sum %x vector %s (dropped: decode %d, cap %d, core %d, events %d, work %d, outbox %d; requests sent %d refused %d; full copies in %d)",
			n.Name(), s.count, s.sum, s.vector, st.DecodeErrors, st.CapBreaches, st.CoreRejects, st.EventsRejected, st.WorkDropped, st.OutboxDropped,
			st.RequestsSent, st.RequestsRefused, st.FullCopiesReceived)
		for _, g := range n.DB().RecentGaps() {
			fmt.Fprintf(&b, "\n      gap %+v", g)
		}
		fmt.Fprintf(&b, "\n      stats %+v", st)
	}
	return b.String()
}

func (c *cluster) waitConverged(d time.Duration) {
	c.t.Helper()
	eventually(c.t, d, c.converged, c.describe)
}

// testKey is client i on one of a few hosts.
func testKey(t testing.TB, i int) stickydb.Key {
	k, err := stickydb.NewKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), fmt.Sprintf("app%d.example", i%3))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var replicas = []string{"backend-a", "backend-b", "backend-c"}

// randomOps makes ops random writes through random nodes' stores: binds
// mostly, and rebinds, refreshes and deletes of keys bound before.
func (c *cluster) randomOps(rng *rand.Rand, ops, keys int) {
	nodes := c.live()
	for range ops {
		n := nodes[rng.IntN(len(nodes))]
		k := testKey(c.t, rng.IntN(keys))
		now := time.Now()
		s := n.Store()
		var err error
		switch r := rng.IntN(10); {
		case r < 6:
			_, _, err = s.BindIfAbsent(k, replicas[rng.IntN(len(replicas))], now)
		case r < 8:
			_, _, err = s.Rebind(k, "", replicas[rng.IntN(len(replicas))], now)
		case r < 9:
			_, err = s.Refresh(k, now)
		default:
			_, err = s.Delete(k, now)
			if err == stickydb.ErrNotFound {
				err = nil
			}
		}
		if err != nil {
			c.t.Fatalf("op on %s: %v", n.Name(), err)
		}
	}
}

func sortedNames(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name())
	}
	slices.Sort(out)
	return out
}

// ctxWait waits until n is ready.
func ctxWait(t testing.TB, n *Node, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatalf("%s not ready: %v (%+v)", n.Name(), err, n.Stats())
	}
}
