//go:build repro

package repro

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// TestMaxBindingsIsACap: Config.MaxBindings says "caps the bindings this
// node holds". Past the cap, store evicts from the shard the new key falls
// in; when that shard is empty (likely while the cap is small against the
// shard count, 256 by default) nothing is evicted and the table grows past
// the cap, by up to one binding per shard. Seen by the rogue-client flood
// (test/rogue_client_test.go): 532 bindings held under TETHER_MAX_BINDINGS=500.
func TestMaxBindingsIsACap(t *testing.T) {
	c := stickydb.DefaultConfig("n1")
	c.MaxBindings = 100
	db, err := stickydb.New(c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < 1000; i++ {
		k, _ := stickydb.NewKey(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), "shop.test")
		if _, _, err := db.BindIfAbsent(k, "r1", now); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.Len(); n > c.MaxBindings {
		t.Fatalf("%d bindings held over a cap of %d (%d evictions)", n, c.MaxBindings, db.Stats().Evictions)
	}
}
