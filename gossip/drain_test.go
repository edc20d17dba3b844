package gossip

import (
	"sync"
	"testing"
	"time"
)

// A drain set on one node reaches every node, the later of two concurrent
// writes wins everywhere, and a node that joins later learns the set.
func TestDrainReplicated(t *testing.T) {
	var mu sync.Mutex
	applied := map[string]map[string]bool{} // node -> replica -> draining
	c := startCluster(t, 3, clusterOpts{node: func(i int, cfg *Config) {
		name := nodeName(i)
		cfg.OnDrain = func(pool, replica string, on bool) {
			mu.Lock()
			defer mu.Unlock()
			if applied[name] == nil {
				applied[name] = map[string]bool{}
			}
			applied[name][pool+"/"+replica] = on
		}
	}})
	state := func(node, key string) (bool, bool) {
		mu.Lock()
		defer mu.Unlock()
		on, ok := applied[node][key]
		return on, ok
	}
	everywhere := func(key string, want bool, nodes int) func() bool {
		return func() bool {
			for i := 0; i < nodes; i++ {
				if on, ok := state(nodeName(i), key); !ok || on != want {
					return false
				}
			}
			return true
		}
	}
	c.nodes[0].SetDrain("default", "a", true)
	eventually(t, 5*time.Second, everywhere("default/a", true, 3), func() string { return "drain of a did not reach every node" })
	c.nodes[2].SetDrain("default", "a", false)
	eventually(t, 5*time.Second, everywhere("default/a", false, 3), func() string { return "undrain did not win everywhere" })
	for _, n := range c.nodes {
		if es := n.Drains(); len(es) != 1 || es[0].On || es[0].Origin != nodeName(2) {
			t.Fatalf("%s holds %+v", n.Name(), es)
		}
	}
	c.nodes[1].SetDrain("default", "b", true)
	n3 := c.add(3)
	_ = n3
	eventually(t, 10*time.Second, everywhere("default/b", true, 4), func() string { return "a late joiner did not learn the drain set" })
}

func TestDrainWireRoundTrip(t *testing.T) {
	in := []DrainEntry{{Pool: "p", Name: "a", On: true, Stamp: 5, Origin: "n1"}, {Pool: "q", Name: "b", Stamp: 7, Origin: "n2"}}
	msg := encodeDrains("n1", in)
	_, body, err := header(msg, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	caps := DefaultConfig().Caps
	m, err := decodeDrains(body, &caps)
	if err != nil || m.Sender != "n1" || len(m.Entries) != 2 || m.Entries[0] != in[0] || m.Entries[1] != in[1] {
		t.Fatalf("%+v %v", m, err)
	}
	for cut := 0; cut < len(body); cut++ {
		if _, err := decodeDrains(body[:cut], &caps); err == nil {
			t.Fatalf("a message cut at %d decoded", cut)
		}
	}
}
