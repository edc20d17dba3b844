package test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// TestStrangerStaysOutside (issue 4): a node with another gossip key joins
// nobody and teaches nobody its bindings; the fleet keeps serving.
func TestStrangerStaysOutside(t *testing.T) {
	_, spec := backends(t, "a", "b", "c")
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	other := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))
	f := fleet.StartEach(t, bin, 3, fleet.Options{Backends: spec, NotReady: map[int]bool{2: true}}, func(i int) map[string]string {
		k := key
		if i == 2 {
			k = other
		}
		return map[string]string{"TETHER_GOSSIP_KEY": k}
	})
	// The stranger never joins, so it is never ready: Start only waited
	// for it to be alive.
	stranger := f.Nodes[2]
	ctx := ctxTimeout(t, time.Minute)
	c := fleet.NewClient(fleet.ClientAddr(30_000), false)
	defer c.Close()
	if _, err := c.Backend(ctx, stranger.Proxy, appHost); err != nil {
		t.Fatal(err)
	}
	c2 := fleet.NewClient(fleet.ClientAddr(30_001), false)
	defer c2.Close()
	if _, err := c2.Backend(ctx, f.Nodes[0].Proxy, appHost); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		// The fleet's binding reaches its member, never the stranger, and
		// the stranger's never reaches the fleet.
		if code, _, _ := stranger.Get("/api/v1/bindings/" + appHost + "/" + c2.Addr.String()); code == 200 {
			t.Fatal("the stranger learnt a fleet binding")
		}
		for _, n := range f.Nodes[:2] {
			if code, _, _ := n.Get("/api/v1/bindings/" + appHost + "/" + c.Addr.String()); code == 200 {
				t.Fatalf("%s learnt the stranger's binding", n.Name)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _, _ := f.Nodes[1].Get("/api/v1/bindings/" + appHost + "/" + c2.Addr.String()); code != 200 {
		t.Fatal("the fleet itself did not replicate (the test proves nothing)")
	}
	for _, n := range f.Nodes {
		var ms []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		if err := n.JSON("/api/v1/members", &ms); err != nil {
			t.Fatal(err)
		}
		var alive []string
		for _, m := range ms {
			if m.State == "alive" && m.Name != n.Name {
				alive = append(alive, m.Name)
			}
		}
		switch {
		case n == stranger && len(alive) != 0:
			t.Fatalf("the stranger sees members %v", alive)
		case n != stranger && strings.Contains(strings.Join(alive, ","), stranger.Name):
			t.Fatalf("%s sees the stranger: %v", n.Name, alive)
		}
	}
}
