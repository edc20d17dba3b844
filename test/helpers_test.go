package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/test/fleet"
)

const appHost = "shop.test"

// backends starts n demo replicas and returns them with their
// TETHER_BACKENDS value.
func backends(t testing.TB, names ...string) ([]*demobackend.Running, string) {
	t.Helper()
	var out []*demobackend.Running
	var spec []string
	for _, name := range names {
		b, err := demobackend.Start(name, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		out = append(out, b)
		spec = append(spec, name+"="+b.URL)
	}
	return out, strings.Join(spec, ",")
}

// routesFile writes a routes file whose default pool holds the replicas,
// with the given weights (nil: all 1), and returns its path.
func routesFile(t testing.TB, path string, reps []*demobackend.Running, weights []int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("pools:\n  - name: default\n    backends:\n")
	for i, r := range reps {
		w := 1
		if weights != nil {
			w = weights[i]
		}
		fmt.Fprintf(&b, "      - {name: %s, url: %q, weight: %d}\n", r.Name(), r.URL, w)
	}
	if path == "" {
		path = filepath.Join(t.TempDir(), "routes.yaml")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// clients are end users, each with its own source address.
type clients struct {
	c []*fleet.Client
}

func newClients(t *testing.T, n, offset int, keepAlive bool) *clients {
	cs := &clients{}
	for i := 0; i < n; i++ {
		cs.c = append(cs.c, fleet.NewClient(fleet.ClientAddr(offset+i), keepAlive))
	}
	t.Cleanup(func() {
		for _, c := range cs.c {
			c.Close()
		}
	})
	return cs
}

// each runs fn for every client, par at a time, and returns the first error.
func (cs *clients) each(par int, fn func(i int, c *fleet.Client) error) error {
	sem := make(chan struct{}, par)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i, c := range cs.c {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i, c); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func randomNode(f *fleet.Fleet, rng *rand.Rand) *fleet.Node { return f.Nodes[rng.IntN(len(f.Nodes))] }

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// vectorDigest is what /api/v1/vector says of the replicated state.
type vectorDigest struct {
	Count int    `json:"count"`
	Sum   string `json:"sum"`
}

// waitConverged polls every node until their digests of the live database
// agree, and returns how long it took.
func waitConverged(t *testing.T, f *fleet.Fleet, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last []string
	for time.Since(start) < within {
		last = last[:0]
		same := true
		var first vectorDigest
		for i, n := range f.Nodes {
			var d struct {
				Digest vectorDigest `json:"digest"`
			}
			if err := n.JSON("/api/v1/vector", &d); err != nil {
				same = false
				last = append(last, n.Name+": "+err.Error())
				continue
			}
			last = append(last, fmt.Sprintf("%s: %d/%s", n.Name, d.Digest.Count, d.Digest.Sum))
			if i == 0 {
				first = d.Digest
			} else if d.Digest != first {
				same = false
			}
		}
		if same {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not converged within %v: %s", within, strings.Join(last, "; "))
	return 0
}
