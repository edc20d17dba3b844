//go:build corebugs

// Reproducers of stickydb behaviour the gossip shell had to work around.
// They fail until the core is fixed:
//
//	go test -tags corebugs -run CoreBug ./gossip/
package gossip

import (
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// TestCoreBugVectorOfSenderNotYetLive: a group can arrive from a peer
// before membership has reported it (memberlist's join and our first push
// race). Receive creates its version-vector-table row with leftAt = 0, so
// the next Tick's prune takes it for a peer that left long ago and deletes
// its vector entry and change log table, although its bindings were just
// applied. The node then asks for the same events again and, if the sender
// leaves, its bindings are never relayed to a third node (Fig. 10).
func TestCoreBugVectorOfSenderNotYetLive(t *testing.T) {
	now := time.Now()
	db, err := stickydb.New(stickydb.DefaultConfig("a"), now)
	if err != nil {
		t.Fatal(err)
	}
	k := mustKey(t, "10.0.0.1", "app.example")
	epoch := now.UnixMilli()
	g := stickydb.Group{Origin: "b", Epoch: epoch, From: 1, To: 1, Sender: "b",
		Events: []stickydb.Event{{Seq: 1, Kind: stickydb.KindBind, Key: k,
			Binding: stickydb.Binding{Replica: "r1", Expiry: now.Add(30 * time.Minute).UnixMilli(), Generation: 1, Origin: "b"}}}}
	if _, err := db.Receive(g, now); err != nil {
		t.Fatal(err)
	}
	if got := db.Vector().Get("b", epoch); got != 1 {
		t.Fatalf("after Receive: vector entry of b = %d, want 1", got)
	}
	db.Tick(now.Add(time.Millisecond))
	if got := db.Vector().Get("b", epoch); got != 1 {
		t.Fatalf("after Tick: vector entry of b = %d, want 1 (its binding is still in the table: %v)", got, db.Len())
	}
}
