package gossip

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// CountLive gathers every node's own count: a binding that one node keeps
// alive with local hits (its expiry not announced yet) is counted although
// the other nodes hold it expired, and the count reaches 0 everywhere once
// the fleet deletes the bindings.
func TestCountLiveEveryNodesView(t *testing.T) {
	var shift atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }
	// A wide MaxSkew leaves room between the moment the other nodes let the
	// binding go (announced + RefreshThreshold) and its horizon (+ MaxSkew),
	// past which n2 too holds it absent (an entry nobody announced).
	c := startCluster(t, 3, clusterOpts{
		node: func(i int, cfg *Config) { cfg.Now = clock },
		db:   func(dc *stickydb.Config) { dc.MaxSkew = 2 * time.Minute },
	})
	now := clock()
	for i := 0; i < 30; i++ {
		r := replicas[0]
		if i >= 20 {
			r = replicas[1]
		}
		if _, _, err := c.nodes[i%3].Store().BindIfAbsent(testKey(t, i), r, now); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(20 * time.Second)
	count := func(from int, replica string) FleetCount {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fc, err := c.nodes[from].CountLive(ctx, replica)
		if err != nil {
			t.Fatal(err)
		}
		return fc
	}
	fc := count(0, replicas[0])
	if len(fc.Nodes) != 3 || len(fc.Missing) != 0 || fc.Nodes[0].Node != nodeName(0) || fc.Left() != 20 || fc.Empty() {
		t.Fatalf("count of %s: %+v", replicas[0], fc)
	}
	for _, nc := range fc.Nodes {
		if nc.Live != 20 {
			t.Fatalf("node %s counts %d, want 20: %+v", nc.Node, nc.Live, fc)
		}
	}

	// n2 serves client 0 later than the fleet was told (its refresh not
	// sent yet); past every other node's expiry, and before the binding's
	// horizon, only n2 still holds a live binding.
	dbc := c.nodes[2].DB().Config()
	c.nodes[2].DB().Touch(testKey(t, 0), now.Add(dbc.TTL/2))
	shift.Store(int64(dbc.TTL + dbc.RefreshThreshold + 30*time.Second))
	fc = count(0, replicas[0])
	want := map[string]int{nodeName(0): 0, nodeName(1): 0, nodeName(2): 1}
	for _, nc := range fc.Nodes {
		if want[nc.Node] != nc.Live {
			t.Fatalf("after expiry: %+v, want %v", fc, want)
		}
	}
	if fc.Left() != 1 || fc.Empty() || len(fc.Nodes) != 3 {
		t.Fatalf("after expiry: %+v", fc)
	}
	if _, err := c.nodes[2].Store().Delete(testKey(t, 0), clock()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return count(1, replicas[0]).Empty() },
		func() string { return "the deleted binding is still counted" })
}

// A node alone answers for itself at once; a closed node refuses.
func TestCountLiveAloneAndClosed(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	if _, _, err := n.Store().BindIfAbsent(testKey(t, 1), replicas[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	fc, err := n.CountLive(context.Background(), replicas[0])
	if err != nil || len(fc.Nodes) != 1 || fc.Left() != 1 || len(fc.Missing) != 0 {
		t.Fatalf("alone: %+v %v", fc, err)
	}
	_ = n.Close()
	if _, err := n.CountLive(context.Background(), replicas[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestCountWireRoundTrip(t *testing.T) {
	caps := DefaultConfig().Caps
	q := countQueryMsg{Sender: "n1", ID: 7, Replica: "web-a"}
	_, body, err := header(encodeCountQuery(q), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeCountQuery(body, &caps); err != nil || got != q {
		t.Fatalf("query: %+v %v", got, err)
	}
	a := countAnswerMsg{Sender: "n2", ID: 7, Live: 12345}
	_, body, err = header(encodeCountAnswer(a), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeCountAnswer(body, &caps); err != nil || got != a {
		t.Fatalf("answer: %+v %v", got, err)
	}
	// Truncated, trailing and empty-name bodies are refused.
	for _, bad := range [][]byte{body[:len(body)-1], append(append([]byte{}, body...), 0), {0xa0, 0x01, 0xa1, 'r'}} {
		if _, err := decodeCountAnswer(bad, &caps); err == nil {
			t.Errorf("answer %x decoded", bad)
		}
		if _, err := decodeCountQuery(bad, &caps); err == nil {
			t.Errorf("query %x decoded", bad)
		}
	}
}
