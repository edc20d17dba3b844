package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
)

// Backends are the demo replicas, each on a fixed address so that a
// crashed one can come back where the routes say it is.
type Backends struct {
	mu   sync.Mutex
	list []*backend
}

type backend struct {
	name, addr string
	run        *demobackend.Running // nil while crashed
}

// StartBackends starts one demo replica per name on 127.0.0.1:0.
func StartBackends(tb testing.TB, names ...string) *Backends {
	tb.Helper()
	bs := &Backends{}
	for _, name := range names {
		r, err := demobackend.Start(name, "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		bs.list = append(bs.list, &backend{name: name, addr: r.Addr(), run: r})
	}
	tb.Cleanup(bs.closeAll)
	return bs
}

func (bs *Backends) closeAll() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, b := range bs.list {
		if b.run != nil {
			_ = b.run.Close()
			b.run = nil
		}
	}
}

func (bs *Backends) get(name string) *backend {
	for _, b := range bs.list {
		if b.name == name {
			return b
		}
	}
	panic("chaos: no backend " + name)
}

// URL is the replica's URL.
func (bs *Backends) URL(name string) string {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return "http://" + bs.get(name).addr
}

// Crash stops a replica at once, dropping its connections.
func (bs *Backends) Crash(name string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b := bs.get(name); b.run != nil {
		_ = b.run.Close()
		b.run = nil
	}
}

// Return starts a crashed replica again on its address. The port is ours
// as long as nobody else took it meanwhile; retry a little while the
// closed listener's socket lingers.
func (bs *Backends) Return(name string) error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.get(name)
	if b.run != nil {
		return nil
	}
	var err error
	for try := 0; try < 50; try++ {
		var r *demobackend.Running
		if r, err = demobackend.Start(name, b.addr); err == nil {
			b.run = r
			return nil
		}
		time.Sleep(100 * time.Millisecond) // bounded: 50 tries, 5 s
	}
	return fmt.Errorf("backend %s cannot come back on %s: %w", name, b.addr, err)
}

// Up reports whether the replica runs.
func (bs *Backends) Up(name string) bool {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.get(name).run != nil
}

// Hits is the number of requests a replica served since it last started.
func (bs *Backends) Hits(name string) uint64 {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if r := bs.get(name).run; r != nil {
		return r.Hits()
	}
	return 0
}

// Routes is the routes file the nodes read (TETHER_ROUTES_FILE), with quick
// health checks so that a crashed replica is noticed within a second.
type Routes struct {
	Path string
	bs   *Backends

	mu      sync.Mutex
	members []string
}

// Health settings of the pool: a replica is down after 2 failed checks
// (0.5 s apart, 1 s timeout each) and back after 2 passed ones. A failed
// connection takes it down at once anyway.
const (
	healthInterval = 500 * time.Millisecond
	healthRise     = 2
)

// NewRoutes writes a routes file whose default pool holds the named replicas.
func NewRoutes(tb testing.TB, bs *Backends, members ...string) *Routes {
	r := &Routes{Path: filepath.Join(tb.TempDir(), "routes.yaml"), bs: bs}
	if err := r.Set(members...); err != nil {
		tb.Fatal(err)
	}
	return r
}

// Set rewrites the file with these replicas (atomically: a reload never
// reads half a file).
func (r *Routes) Set(members ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "health: {interval: %v, timeout: 1s, rise: %d, fall: 2}\n", healthInterval, healthRise)
	b.WriteString("pools:\n  - name: default\n    backends:\n")
	for _, m := range members {
		fmt.Fprintf(&b, "      - {name: %s, url: %q}\n", m, r.bs.URL(m))
	}
	if err := r.write(b.String()); err != nil {
		return err
	}
	r.mu.Lock()
	r.members = slices.Clone(members)
	r.mu.Unlock()
	return nil
}

// SetInvalid writes a file the nodes must refuse (the routes in force stay).
func (r *Routes) SetInvalid() error {
	return r.write("pools:\n  - name: default\n    backends: [{name: a, url: 'ftp://nowhere'}]\n  oops\n")
}

// Restore writes the last valid members back.
func (r *Routes) Restore() error { return r.Set(r.Members()...) }

func (r *Routes) write(s string) error {
	if err := os.WriteFile(r.Path+".tmp", []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(r.Path+".tmp", r.Path)
}

// Members are the replicas of the last valid file.
func (r *Routes) Members() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.members)
}
