package test

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// TestFleetSticky (issue 4): 2,000 clients with distinct source addresses,
// each request to a random node of a 3- or 5-node fleet of separate
// processes: no client ever changes replica. To make the test able to fail,
// a fourth replica joins every node's pool (SIGHUP) between the first
// request of each client and the rest: rendezvous hashing alone would now
// move about a quarter of the clients; only the replicated bindings keep
// them. New clients after the reload do reach the fourth replica.
func TestFleetSticky(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			reps, _ := backends(t, "a", "b", "c", "d")
			routes := routesFile(t, "", reps[:3], nil)
			f := fleet.Start(t, bin, fleet.Options{Nodes: size, Env: map[string]string{"TETHER_ROUTES_FILE": routes}})
			const n = 2000
			cs := newClients(t, n, 0, false)
			first := make([]string, n)
			ctx := ctxTimeout(t, 3*time.Minute)
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			nodes := make([][]int, n)
			for i := range nodes {
				for k := 0; k < 4; k++ {
					nodes[i] = append(nodes[i], rng.IntN(size))
				}
			}
			err := cs.each(32, func(i int, c *fleet.Client) error {
				b, err := c.Backend(ctx, f.Nodes[nodes[i][0]].Proxy, appHost)
				first[i] = b
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			waitConverged(t, f, 30*time.Second)

			routesFile(t, routes, reps, nil) // add d
			for _, node := range f.Nodes {
				if err := node.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			// New clients prove the reload took effect everywhere.
			fresh := newClients(t, 400, n, false)
			deadline := time.Now().Add(20 * time.Second)
			for onD := map[string]bool{}; len(onD) < size; {
				if time.Now().After(deadline) {
					t.Fatalf("reload not in effect: new clients reach d on %d of %d nodes", len(onD), size)
				}
				for i, c := range fresh.c {
					node := f.Nodes[i%size]
					if b, err := c.Backend(ctx, node.Proxy, appHost); err == nil && b == "d" {
						onD[node.Name] = true
					}
				}
			}

			var violations atomic.Int64
			var example atomic.Value
			err = cs.each(32, func(i int, c *fleet.Client) error {
				for _, k := range nodes[i][1:] {
					b, err := c.Backend(ctx, f.Nodes[k].Proxy, appHost)
					if err != nil {
						return err
					}
					if b != first[i] {
						violations.Add(1)
						example.Store(fmt.Sprintf("client %s: %s then %s on %s", c.Addr, first[i], b, f.Nodes[k].Name))
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if v := violations.Load(); v != 0 {
				t.Fatalf("%d sticky violations among %d clients (e.g. %v)", v, n, example.Load())
			}
		})
	}
}
