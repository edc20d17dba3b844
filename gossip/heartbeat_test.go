package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// vectorHash tells vectors apart and does not depend on map order.
func TestVectorHash(t *testing.T) {
	a := stickydb.Vector{"n1": {{Epoch: 1, Seq: 5}}, "n2": {{Epoch: 2, Seq: 1}, {Epoch: 3, Seq: 0}}}
	b := a.Clone()
	if vectorHash(a) != vectorHash(b) {
		t.Fatal("equal vectors hash differently")
	}
	for i, mod := range []func(stickydb.Vector){
		func(v stickydb.Vector) { v["n1"][0].Seq = 6 },
		func(v stickydb.Vector) { v["n2"][1].Epoch = 4 },
		func(v stickydb.Vector) { v["n3"] = []stickydb.EpochSeq{{Epoch: 1}} },
		func(v stickydb.Vector) { delete(v, "n1") },
		// The same pairs under another origin.
		func(v stickydb.Vector) { v["n0"] = v["n1"]; delete(v, "n1") },
	} {
		c := a.Clone()
		mod(c)
		if vectorHash(c) == vectorHash(a) {
			t.Errorf("change %d: same hash", i)
		}
	}
}

// A heartbeat carries the vector when it changed since the last one sent
// to the peer, when that one is older than the refresh, or when the peer
// has not been sent one (new, back, restarted).
func TestHeartbeatNeedsVector(t *testing.T) {
	p := &peer{}
	now := time.Now().UnixNano()
	refresh := now - int64(5*time.Second)
	if !p.needsVector(7, refresh) {
		t.Fatal("a peer never sent the vector does not get it")
	}
	p.vecHash.Store(7)
	p.vecAt.Store(now)
	if p.needsVector(7, refresh) {
		t.Fatal("an unchanged vector sent just now is sent again")
	}
	if !p.needsVector(8, refresh) {
		t.Fatal("a changed vector is not sent")
	}
	if !p.needsVector(7, now) {
		t.Fatal("a vector as old as the refresh is not sent again")
	}
	p.vecAt.Store(0)
	if !p.needsVector(7, refresh) {
		t.Fatal("a reset peer (restarted, back) does not get the vector")
	}
}

// An idle fleet's heartbeats no longer carry the whole vector every time:
// with 40 origins in every vector (~600 bytes), the average heartbeat is
// far smaller than one that carries it. Before, every heartbeat did.
func TestIdleHeartbeatsOmitUnchangedVector(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	c.addOrigins(40)
	src := c.nodes[0]
	g := stickydb.Group{Origin: src.self, Sender: src.self, From: 1, Vector: src.DB().Vector()}
	g.Epoch, g.To = src.DB().Position()
	g.From = g.To + 1
	full := len(encodeGroup(&g, groupMeta{}))
	// Let the vectors with the new origins go out once, then count.
	time.Sleep(2 * src.cfg.HeartbeatInterval)
	var h0, b0 uint64
	for _, n := range c.nodes {
		st := n.Stats()
		h0, b0 = h0+st.Heartbeats, b0+st.BytesSent
	}
	var h, b uint64
	eventually(t, 20*time.Second, func() bool {
		h, b = 0, 0
		for _, n := range c.nodes {
			st := n.Stats()
			h, b = h+st.Heartbeats, b+st.BytesSent
		}
		return h-h0 >= 24
	}, func() string { return "too few heartbeats" })
	avg := float64(b-b0) / float64(h-h0)
	t.Logf("%d heartbeats, %d bytes: %.0f per heartbeat; one with the vector is %d", h-h0, b-b0, avg, full)
	if full < 500 {
		t.Fatalf("test setup: a heartbeat with the vector is only %d bytes", full)
	}
	if avg > float64(full)/2 {
		t.Fatalf("idle heartbeats average %.0f bytes, a heartbeat with the vector is %d: the unchanged vector is still sent", avg, full)
	}
}

// addOrigins puts k made-up origins (no events) into every node's vector,
// so that vectors are large (~15 bytes and the name per origin).
func (c *cluster) addOrigins(k int) {
	now := time.Now()
	extra := stickydb.Vector{}
	for i := range k {
		extra[fmt.Sprintf("origin-%02d", i)] = []stickydb.EpochSeq{{Epoch: now.UnixMilli() - 1000, Seq: 0}}
	}
	for _, n := range c.nodes {
		n.DB().MergeVector(extra, "", now)
	}
}
