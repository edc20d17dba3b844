// Behaviour of the core that the gossip shell relies on, pinned here
// because gossip cannot order memberlist's events against its messages.
package gossip

import (
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// TestCoreKeepsSenderNotYetLive: a group can arrive from a peer before
// membership has reported it (memberlist's join and the peer's first push
// race). The next Tick must not prune the sender as a peer that left long
// ago: its vector entry and change log table must stay, or the node asks
// for the same events again and cannot relay them to a third node
// (Fig. 10). (Found by this package's stranger test against an earlier
// core, which created the row with leftAt = 0; fixed in stickydb since.)
func TestCoreKeepsSenderNotYetLive(t *testing.T) {
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
