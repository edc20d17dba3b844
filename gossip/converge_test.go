package gossip

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestConverge(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(nodeName(n), func(t *testing.T) {
			c := startCluster(t, n, clusterOpts{key: []byte("0123456789abcdef")})
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			c.randomOps(rng, 2000, 500)
			c.waitConverged(15 * time.Second)
			if cnt, _ := c.nodes[0].DB().Digest(time.Now(), 0); cnt < 100 {
				t.Fatalf("only %d bindings: the test did not bind much", cnt)
			}
			for _, node := range c.nodes {
				st := node.Stats()
				if st.DecodeErrors+st.CapBreaches+st.CoreRejects+st.EventsRejected != 0 {
					t.Errorf("%s: errors %+v", node.Name(), st)
				}
			}
		})
	}
}
