package gossip

import (
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// A started node applies the change groups it is handed in the order they
// came, off memberlist's handler goroutine: a burst of one origin's groups
// delivered back to back is applied without a single group buffered for
// a hole (memberlist's own handoff queue serves newest first; groups
// taken in that order would be buffered, then discarded and asked again).
func TestReceiverAppliesInArrivalOrder(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	d := &delegate{n: n}
	const groups, per = 400, 5
	base := sampleGroup(t, groups*per, true)
	exp := time.Now().Add(time.Minute).UnixMilli()
	epoch := time.Now().UnixMilli() - 1000
	for i := range groups {
		g := base
		g.Sender, g.Origin, g.Epoch = "peer", "peer", epoch
		g.From, g.To = uint64(i*per+1), uint64(i*per+per)
		g.Events = append([]stickydb.Event(nil), base.Events[i*per:i*per+per]...)
		for j := range g.Events {
			g.Events[j].Seq = g.From + uint64(j)
			g.Events[j].Binding.Origin = "peer"
			g.Events[j].Binding.Expiry = exp
		}
		d.NotifyMsg(encodeGroup(&g, groupMeta{}))
	}
	eventually(t, 10*time.Second, func() bool { return n.DB().Vector().Get("peer", epoch) == groups*per },
		func() string { return "not every group applied" })
	st, ds := n.Stats(), n.DB().Stats()
	if ds.GroupsBuffered != 0 || st.ReceiveDropped != 0 || ds.GroupsApplied != groups {
		t.Fatalf("%d groups buffered, %d dropped, %d applied; want 0, 0, %d", ds.GroupsBuffered, st.ReceiveDropped, ds.GroupsApplied, groups)
	}
}

// Queued groups are applied by origin, epoch and first event, equal ones
// in arrival order: a backlog handed over newest first comes out in order.
func TestSortGroups(t *testing.T) {
	item := func(origin string, epoch int64, from uint64, flags uint64) recvItem {
		return recvItem{g: stickydb.Group{Origin: origin, Epoch: epoch, From: from}, meta: groupMeta{flags: flags}}
	}
	b := []recvItem{item("b", 1, 9, 0), item("a", 2, 1, 0), item("a", 1, 7, 0), item("a", 1, 4, 0), item("a", 1, 4, 1), item("a", 1, 1, 0)}
	sortGroups(b)
	want := []recvItem{item("a", 1, 1, 0), item("a", 1, 4, 0), item("a", 1, 4, 1), item("a", 1, 7, 0), item("a", 2, 1, 0), item("b", 1, 9, 0)}
	for i := range want {
		if b[i].g.Origin != want[i].g.Origin || b[i].g.Epoch != want[i].g.Epoch || b[i].g.From != want[i].g.From || b[i].meta.flags != want[i].meta.flags {
			t.Fatalf("at %d: %+v, want %+v", i, b[i], want[i])
		}
	}
}
