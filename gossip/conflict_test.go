package gossip

import (
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// TestConcurrentFirstBind binds one new key on every node at the same
// moment, each to a different replica: every node must end on the same
// binding, the one the merge rule picks among those created (the highest
// rendezvous score for the key).
func TestConcurrentFirstBind(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{key: []byte("0123456789abcdef")})
	nodes := c.live()
	conflicts := 0
	for round := range 30 {
		k := testKey(t, 500000+round)
		created := make([]bool, len(nodes))
		gens := make([]uint32, len(nodes))
		var wg sync.WaitGroup
		start := make(chan struct{})
		// One instant for all: concurrent first binds (one generation, the
		// clock's second); binds a second apart are not concurrent, the
		// later wins (stickydb: generations order births).
		now := time.Now()
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				b, ok, err := n.Store().BindIfAbsent(k, replicas[i], now)
				gens[i] = b.Generation
				if err != nil {
					t.Error(err)
				}
				created[i] = ok
			}()
		}
		close(start)
		wg.Wait()
		var cands []stickydb.Candidate
		for i, ok := range created {
			if ok {
				cands = append(cands, stickydb.Candidate{Name: replicas[i], Hash: stickydb.NameHash(replicas[i]), Weight: 1})
			}
		}
		if len(cands) > 1 {
			conflicts++
		}
		want := cands[stickydb.Pick(k, cands)].Name
		eventually(t, 5*time.Second, func() bool {
			for _, n := range nodes {
				if b, ok := n.DB().Lookup(k); !ok || b.Replica != want || b.Generation != gens[0] {
					return false
				}
			}
			return true
		}, func() string {
			s := ""
			for _, n := range nodes {
				b, _ := n.DB().Lookup(k)
				s += n.Name() + "=" + b.Replica + " "
			}
			return "round " + k.String() + " want " + want + ": " + s
		})
	}
	if conflicts == 0 {
		t.Fatal("no round had two nodes create the binding: the test did not test conflicts")
	}
	t.Logf("%d of 30 rounds were real conflicts", conflicts)
	c.waitConverged(5 * time.Second)
}
