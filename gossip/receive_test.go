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
