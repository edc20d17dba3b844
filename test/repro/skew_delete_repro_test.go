//go:build repro

package repro

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// TestTombstoneFromClockAhead: node A's clock is 3 s ahead of node B's
// (each within ±2 s of true time, as the chaos suite's clock nemesis
// sets them). A binds a client, B learns it; then A deletes it (an admin
// DELETE). The tombstone's expiry is A's now + TTL + MaxSkew, which is
// more than TTL + 2*MaxSkew ahead of B's clock, so B refuses it
// (ErrExpiryOverCap, counted as EventsRejected) but its vector moves past
// it: B keeps serving the deleted binding until it expires, and nothing
// ever repairs it (anti-entropy compares vectors, which agree). Binds and
// rebinds (expiry now + TTL) are accepted up to 2*MaxSkew of difference;
// tombstones only up to MaxSkew.
//
// Found by the chaos canary (test/chaos) with skews +1067 ms and -2000 ms.
func TestTombstoneFromClockAhead(t *testing.T) {
	t0 := time.UnixMilli(1_800_000_000_000)
	aNow := func() time.Time { return t0.Add(3067 * time.Millisecond) }
	bNow := func() time.Time { return t0 }
	a, err := stickydb.New(stickydb.DefaultConfig("a"), aNow())
	if err != nil {
		t.Fatal(err)
	}
	b, err := stickydb.New(stickydb.DefaultConfig("b"), bNow())
	if err != nil {
		t.Fatal(err)
	}
	k, _ := stickydb.NewKey(netip.MustParseAddr("10.0.0.1"), "shop.test")
	if _, _, err := a.BindIfAbsent(k, "r1", aNow()); err != nil {
		t.Fatal(err)
	}
	push := func(after uint64) uint64 {
		g := a.OwnEvents(after, 100)
		g.Sender = "a"
		if _, err := b.Receive(g, bNow()); err != nil {
			t.Logf("receive: %v", err)
		}
		return g.To
	}
	last := push(0)
	if got, ok := b.Lookup(k); !ok || got.Replica != "r1" {
		t.Fatalf("b did not take the bind: %+v %v", got, ok)
	}
	if _, err := a.Delete(k, aNow()); err != nil {
		t.Fatal(err)
	}
	push(last)
	epoch, seq := a.Position()
	if b.Vector().Get("a", epoch) != seq {
		t.Fatalf("b did not take a's delete event: a %v, b %v", a.Vector(), b.Vector())
	}
	got, _ := b.Lookup(k)
	if !got.Deleted {
		t.Fatalf("b's vector covers a's delete (a %v, b %v), yet b still holds %+v (events rejected: %d): "+
			"the fleet diverged for good", a.Vector(), b.Vector(), got, b.Stats().EventsRejected)
	}
}
