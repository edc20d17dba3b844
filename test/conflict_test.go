package test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// TestConcurrentFirstBinds (issue 4): a client's first requests reach three
// nodes at the same moment, and the nodes disagree on where to send it (each
// node's routes weight a different replica 50:1, so their rendezvous picks
// differ): the conflicting binds are settled by the merge rule, every node
// ends with the same binding, and the client gets one replica everywhere.
func TestConcurrentFirstBinds(t *testing.T) {
	reps, _ := backends(t, "a", "b", "c")
	f := &fleet.Fleet{}
	// One routes file per node: node i favours replica i.
	var files []string
	for i := range reps {
		w := []int{1, 1, 1}
		w[i] = 50
		files = append(files, routesFile(t, "", reps, w))
	}
	f = fleet.StartEach(t, bin, 3, fleet.Options{}, func(i int) map[string]string {
		return map[string]string{"TETHER_ROUTES_FILE": files[i]}
	})
	const n = 150
	cs := newClients(t, n, 20_000, false)
	ctx := ctxTimeout(t, 2*time.Minute)
	got := make([][3]string, n)
	err := cs.each(8, func(i int, c *fleet.Client) error {
		var wg sync.WaitGroup
		errs := make([]error, 3)
		start := make(chan struct{})
		for k := 0; k < 3; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i][k], errs[k] = c.Backend(ctx, f.Nodes[k].Proxy, appHost)
			}()
		}
		close(start)
		wg.Wait()
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	for i := range got {
		if got[i][0] != got[i][1] || got[i][1] != got[i][2] {
			conflicts++
		}
	}
	if conflicts == 0 {
		t.Fatal("no client's first requests disagreed: the test proves nothing")
	}
	waitConverged(t, f, 30*time.Second)
	for i, c := range cs.c {
		var want string
		for k, node := range f.Nodes {
			code, body, err := node.Get(fmt.Sprintf("/api/v1/bindings/%s/%s", appHost, c.Addr))
			if err != nil || code != 200 {
				t.Fatalf("%s: binding of %s: %d %v %s", node.Name, c.Addr, code, err, body)
			}
			var b struct {
				Replica string `json:"replica"`
			}
			if err := json.Unmarshal(body, &b); err != nil {
				t.Fatal(err)
			}
			served, err := c.Backend(ctx, node.Proxy, appHost)
			if err != nil {
				t.Fatal(err)
			}
			if served != b.Replica {
				t.Fatalf("%s: client %s bound to %s but served by %s", node.Name, c.Addr, b.Replica, served)
			}
			if k == 0 {
				want = b.Replica
			} else if b.Replica != want {
				t.Fatalf("client %d (%s): %s says %s, %s says %s", i, c.Addr, f.Nodes[0].Name, want, node.Name, b.Replica)
			}
		}
	}
	t.Logf("%d of %d clients' first requests conflicted; all settled on one replica everywhere", conflicts, n)
}
