package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// stickyFleet starts a fleet, binds n clients through random nodes, then
// adds a fourth replica everywhere, so that a node that lost a binding would
// send its client elsewhere (rendezvous hashing alone no longer agrees with
// the bindings). It returns the clients and the replica each is bound to.
func stickyFleet(t *testing.T, nodes, n int, disk bool) (*fleet.Fleet, *clients, []string) {
	t.Helper()
	reps, _ := backends(t, "a", "b", "c", "d")
	routes := routesFile(t, "", reps[:3], nil)
	f := fleet.Start(t, bin, fleet.Options{Nodes: nodes, DataDir: disk, Env: map[string]string{"TETHER_ROUTES_FILE": routes}})
	cs := newClients(t, n, 10_000, false)
	first := make([]string, n)
	ctx := ctxTimeout(t, time.Minute)
	err := cs.each(32, func(i int, c *fleet.Client) error {
		b, err := c.Backend(ctx, f.Nodes[i%nodes].Proxy, appHost)
		first[i] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, f, 30*time.Second)
	routesFile(t, routes, reps, nil)
	for _, node := range f.Nodes {
		if err := node.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	return f, cs, first
}

// background keeps other clients busy against random nodes until stop;
// errors (a node down) are expected and ignored.
func background(f *fleet.Fleet, clients int) (stop func() int64) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := fleet.NewClient(fleet.ClientAddr(50_000+i), true)
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for ctx.Err() == nil {
				if _, err := c.Backend(ctx, randomNode(f, rng).Proxy, appHost); err == nil {
					ok.Add(1)
				}
			}
		}()
	}
	return func() int64 { cancel(); wg.Wait(); return ok.Load() }
}

// verify asks node for every client: each must get the replica it was bound
// to first.
func verify(t *testing.T, node *fleet.Node, cs *clients, first []string) {
	t.Helper()
	ctx := ctxTimeout(t, time.Minute)
	var bad atomic.Int64
	var example atomic.Value
	err := cs.each(32, func(i int, c *fleet.Client) error {
		b, err := c.Backend(ctx, node.Proxy, appHost)
		if err != nil {
			return err
		}
		if b != first[i] {
			bad.Add(1)
			example.Store(fmt.Sprintf("client %s bound to %s, %s sends it to %s", c.Addr, first[i], node.Name, b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d of %d clients moved (e.g. %v)", n, len(cs.c), example.Load())
	}
}

// TestCrashRestart (issue 5): kill -9 a node under load and restart it, in
// epoch mode and in disk mode: every binding made before the crash is
// served identically by the restarted node.
func TestCrashRestart(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(map[bool]string{false: "epoch mode", true: "disk mode"}[disk], func(t *testing.T) {
			f, cs, first := stickyFleet(t, 3, 500, disk)
			stop := background(f, 16)
			victim := f.Nodes[1]
			victim.Kill()
			if err := victim.Start(); err != nil {
				t.Fatal(err)
			}
			if err := victim.WaitReady(30 * time.Second); err != nil {
				t.Fatalf("%v\n%s", err, victim.LogTail(30))
			}
			verify(t, victim, cs, first)
			if served := stop(); served == 0 {
				t.Fatal("the background load served nothing")
			}
			waitConverged(t, f, 30*time.Second)
		})
	}
}

// TestRestartLoop (issue 5): the same node killed and restarted 50 times
// under load: no client moves, no binding is lost, and the node is never
// unready for more than 10 s.
func TestRestartLoop(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(map[bool]string{false: "epoch mode", true: "disk mode"}[disk], func(t *testing.T) {
			f, cs, first := stickyFleet(t, 3, 200, disk)
			stop := background(f, 8)
			victim := f.Nodes[2]
			var slowest time.Duration
			for round := 0; round < 50; round++ {
				victim.Kill()
				start := time.Now()
				if err := victim.Start(); err != nil {
					t.Fatal(err)
				}
				if err := victim.WaitReady(10 * time.Second); err != nil {
					t.Fatalf("round %d: %v\n%s", round, err, victim.LogTail(30))
				}
				slowest = max(slowest, time.Since(start))
			}
			stop()
			t.Logf("50 restarts, slowest to ready %v", slowest)
			verify(t, victim, cs, first)
			for _, n := range f.Nodes {
				verify(t, n, cs, first)
			}
		})
	}
}

// TestWholeFleetRestart (issue 5): every node of a disk-mode fleet stopped,
// by SIGTERM and by SIGKILL, and started again: nothing that was flushed
// is lost (every binding was replicated, so flushed, before the stop).
func TestWholeFleetRestart(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(map[bool]string{false: "SIGTERM", true: "SIGKILL"}[kill], func(t *testing.T) {
			f, cs, first := stickyFleet(t, 3, 300, true)
			for _, n := range f.Nodes {
				if kill {
					n.Kill()
				} else {
					n.Stop()
				}
			}
			for _, n := range f.Nodes {
				if err := n.Start(); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range f.Nodes {
				if err := n.WaitReady(60 * time.Second); err != nil {
					t.Fatalf("%s: %v\n%s", n.Name, err, n.LogTail(30))
				}
			}
			for _, n := range f.Nodes {
				verify(t, n, cs, first)
			}
		})
	}
}
