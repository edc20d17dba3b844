package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
)

// TestStranger: a node with another key, no key, or another label can
// neither join the fleet nor inject a binding, and the fleet keeps
// replicating. The last case, with the right key and label, is the control:
// the same join and the same injected message do get in.
func TestStranger(t *testing.T) {
	key := []byte("0123456789abcdef")
	f := faultnet.New(1)
	c := startCluster(t, 3, clusterOpts{key: key, faults: f})
	target := c.nodes[0]
	tests := []struct {
		name   string
		key    []byte
		label  string
		inside bool
	}{
		{"wrong key", []byte("fedcba9876543210"), "tether", false},
		{"no key", nil, "tether", false},
		{"wrong label", key, "other-fleet", false},
		{"AES-256 key", append(append([]byte(nil), key...), key...), "tether", false},
		{"control: right key and label", key, "tether", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("stranger%d", i)
			cfg := testConfig(t)
			cfg.Key, cfg.Label = tt.key, tt.label
			cfg.Join = []string{target.Addr()}
			cfg.WrapTransport = c.wrapper(name)
			s, err := New(cfg, c.newDB(name))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			defer s.Close()

			if tt.inside {
				// Inject once the control is a member everywhere, so that
				// the control shows a member's message gets in.
				eventually(t, 10*time.Second, func() bool {
					for _, n := range c.nodes {
						if n.Stats().Members != 3 {
							return false
						}
					}
					return s.Joined()
				}, func() string { return "the control did not join: the test proves nothing" })
			}
			now := time.Now()
			evil := testKey(t, 900000+i)
			g := stickydb.Group{Origin: name, Epoch: now.UnixMilli(), From: 1, To: 1, Sender: name,
				Events: []stickydb.Event{{Seq: 1, Kind: stickydb.KindBind, Key: evil,
					Binding: stickydb.Binding{Replica: "evil", Expiry: now.Add(time.Minute).UnixMilli(), Generation: 1, Origin: name}}}}
			msg := encodeGroup(&g, groupMeta{})
			const injections = 5
			for range injections {
				if err := s.ml.SendToAddress(memberlist.Address{Addr: target.Addr(), Name: target.Name()}, msg); err != nil {
					t.Fatal(err)
				}
			}

			if tt.inside {
				eventually(t, 5*time.Second, func() bool {
					b, ok := target.DB().Lookup(evil)
					return ok && b.Replica == "evil"
				}, func() string { return "the control did not get in: the test proves nothing" })
				return
			}
			// The packets reached the target's socket...
			eventually(t, 5*time.Second, func() bool {
				return c.transport(target.Name()).Received(s.Addr()) >= injections && s.Stats().JoinRetries >= 2
			}, func() string { return "stranger's packets or join attempts did not arrive" })
			// ...and the target's pipeline went past them: a later binding
			// from a member arrives.
			legit := testKey(t, 800000+i)
			if _, _, err := c.nodes[1].Store().BindIfAbsent(legit, "backend-a", time.Now()); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() bool { _, ok := target.DB().Lookup(legit); return ok },
				func() string { return "the fleet stopped replicating" })
			if _, ok := target.DB().Lookup(evil); ok {
				t.Fatal("the stranger injected a binding")
			}
			if s.Joined() || s.Stats().Members != 0 {
				t.Fatalf("the stranger joined: %+v", s.Members())
			}
			for _, n := range c.nodes {
				if st := n.Stats(); st.Members != 2 {
					t.Fatalf("%s sees %d peers", n.Name(), st.Members)
				}
				for _, ss := range n.Stats().Senders {
					if ss.Name == name {
						t.Fatalf("%s decoded a message of the stranger: %+v", n.Name(), ss)
					}
				}
			}
		})
	}
	c.waitMembers(2, 10*time.Second)
	c.waitConverged(10 * time.Second)
}
