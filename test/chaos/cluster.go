package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// AppHost is the Host every client asks for (the default pool serves it).
const AppHost = "shop.test"

// FaultState is what the faultinject build reads from its state file
// (cmd/tether/faultinject.go documents the format).
type FaultState struct {
	SkewMs     int64             `json:"skew_ms"`
	Loss       float64           `json:"loss"`
	DelayMinMs int64             `json:"delay_min_ms"`
	DelayMaxMs int64             `json:"delay_max_ms"`
	Cut        []string          `json:"cut"`
	Peers      map[string]string `json:"peers"`
	Seed       uint64            `json:"seed"`
}

// Node is one tether process of the cluster and the faults it is under.
type Node struct {
	*fleet.Node
	Index int
	Disk  bool // runs with TETHER_DATA_DIR (disk recovery), else epoch mode

	mu     sync.Mutex
	fault  FaultState
	down   bool // killed, not yet restarted
	paused bool
}

// Cluster is a fleet of tether processes built with -tags faultinject, its
// backends and routes file, and the fault control of every node.
type Cluster struct {
	tb       testing.TB
	Fleet    *fleet.Fleet
	Nodes    []*Node
	Backends *Backends
	Routes   *Routes
	faultDir string
	ctl      *http.Client
}

// ClusterOptions shape a cluster.
type ClusterOptions struct {
	Nodes     int
	DiskNodes int     // the first DiskNodes nodes run with a data dir
	Skews     []int64 // initial clock skew per node, ms
	Seed      uint64
	Env       map[string]string
}

// StartCluster starts the backends (a..e; the pool holds a, b, c), then
// the nodes with their initial clock skews, and waits until all are ready.
func StartCluster(tb testing.TB, bin string, o ClusterOptions) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, faultDir: tb.TempDir(), ctl: &http.Client{Timeout: 3 * time.Second}}
	c.Backends = StartBackends(tb, "a", "b", "c", "d", "e")
	c.Routes = NewRoutes(tb, c.Backends, "a", "b", "c")
	env := map[string]string{
		"TETHER_ROUTES_FILE": c.Routes.Path,
		"TETHER_FAULT_DIR":   c.faultDir,
	}
	for k, v := range o.Env {
		env[k] = v
	}
	c.Nodes = make([]*Node, o.Nodes)
	for i := range c.Nodes {
		// fleet names node i "node<i>"; its state file must exist before
		// the process starts (the skew is read first).
		n := &Node{Node: &fleet.Node{Name: fmt.Sprintf("node%d", i)}, Index: i, Disk: i < o.DiskNodes}
		n.fault = FaultState{Seed: o.Seed + uint64(i)}
		if i < len(o.Skews) {
			n.fault.SkewMs = o.Skews[i]
		}
		if err := c.writeState(n); err != nil {
			tb.Fatal(err)
		}
		c.Nodes[i] = n
	}
	c.Fleet = fleet.StartEach(tb, bin, o.Nodes, fleet.Options{Env: env}, func(i int) map[string]string {
		if c.Nodes[i].Disk {
			return map[string]string{"TETHER_DATA_DIR": filepath.Join(c.faultDir, c.Nodes[i].Name+"-data")}
		}
		return nil
	})
	for i, n := range c.Nodes {
		n.Node = c.Fleet.Nodes[i]
		if n.Name != fmt.Sprintf("node%d", i) {
			tb.Fatalf("fleet named node %d %q, the fault state was written for node%d", i, n.Name, i)
		}
	}
	// Peers' gossip addresses are final only now: give every node the map,
	// so that a cut also covers sends by address alone.
	for _, n := range c.Nodes {
		n.mu.Lock()
		n.fault.Peers = c.peers()
		n.mu.Unlock()
		if err := c.Apply(n); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

func (c *Cluster) peers() map[string]string {
	m := map[string]string{}
	for _, n := range c.Nodes {
		m[n.Name] = n.Gossip
	}
	return m
}

// Names returns the node names.
func (c *Cluster) Names() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func (c *Cluster) writeState(n *Node) error {
	n.mu.Lock()
	b, err := json.Marshal(n.fault)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	p := filepath.Join(c.faultDir, n.Name+".json")
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// SetFault changes a node's fault state and puts it in force: at once when
// the process runs, at its next start otherwise (the file is read first).
func (c *Cluster) SetFault(n *Node, fn func(*FaultState)) error {
	n.mu.Lock()
	fn(&n.fault)
	n.mu.Unlock()
	return c.Apply(n)
}

// Fault returns a copy of the node's fault state.
func (n *Node) Fault() FaultState {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.fault
	f.Cut = append([]string(nil), f.Cut...)
	return f
}

// Apply writes the node's state file and, if the process runs and is not
// paused, has it re-read.
func (c *Cluster) Apply(n *Node) error {
	if err := c.writeState(n); err != nil {
		return err
	}
	n.mu.Lock()
	skip := n.down || n.paused
	n.mu.Unlock()
	if skip {
		return nil
	}
	addr, err := c.controlAddr(n)
	if err != nil {
		return err
	}
	resp, err := c.ctl.Post("http://"+addr+"/apply", "", nil)
	if err != nil {
		return fmt.Errorf("%s: apply faults: %w", n.Name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("%s: apply faults: %s", n.Name, resp.Status)
	}
	return nil
}

func (c *Cluster) addrFile(n *Node) string { return filepath.Join(c.faultDir, n.Name+".addr") }

// controlAddr is the node's fault control address, waited for (15 s at
// most) while a restarted process has not written it yet: the process
// reads its state file at start, then listens, so a state written in
// between is only applied by the /apply sent once it listens.
func (c *Cluster) controlAddr(n *Node) (string, error) {
	deadline := time.Now().Add(15 * time.Second)
	b, err := os.ReadFile(c.addrFile(n))
	for os.IsNotExist(err) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		b, err = os.ReadFile(c.addrFile(n))
	}
	if err != nil {
		return "", fmt.Errorf("%s: fault control address: %w", n.Name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// NetStats are one process's faultnet counters (since its start).
type NetStats struct {
	Packets, PacketsDropped, PacketsDelayed, PacketsCut uint64
	Streams, StreamsLost, StreamsCut                    uint64
	SkewMs                                              int64 `json:"skew_ms"`
}

// NetStats reads the node's fault counters.
func (c *Cluster) NetStats(n *Node) (NetStats, error) {
	var st NetStats
	addr, err := c.controlAddr(n)
	if err != nil {
		return st, err
	}
	resp, err := c.ctl.Get("http://" + addr + "/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Kill ends a node with SIGKILL.
func (c *Cluster) Kill(n *Node) {
	n.mu.Lock()
	n.down = true
	n.mu.Unlock()
	n.Node.Kill()
}

// Restart starts a killed node again and waits until it is ready.
func (c *Cluster) Restart(n *Node, timeout time.Duration) error {
	if err := c.Start(n); err != nil {
		return err
	}
	return c.WaitReady(n, timeout)
}

// Start starts a killed node again, without waiting for it. Its old
// control address goes first: a fault set before the new process
// listens is sent to the new one (Apply waits for its address).
func (c *Cluster) Start(n *Node) error {
	if err := os.Remove(c.addrFile(n)); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := n.Node.Start(); err != nil {
		return err
	}
	n.mu.Lock()
	n.down = false
	n.mu.Unlock()
	return nil
}

// WaitReady waits until n says ready, for timeout at most.
func (c *Cluster) WaitReady(n *Node, timeout time.Duration) error {
	if err := n.WaitReady(timeout); err != nil {
		return fmt.Errorf("%s: %w\n%s", n.Name, err, n.LogTail(30))
	}
	return nil
}

// Pause stops the process (SIGSTOP); Resume continues it.
func (c *Cluster) Pause(n *Node) error {
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	return n.Signal(syscall.SIGSTOP)
}

// Resume continues a paused node and puts its current fault state in force.
func (c *Cluster) Resume(n *Node) error {
	if err := n.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	return c.Apply(n)
}

// Down reports whether the node is killed or paused.
func (n *Node) Down() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.down || n.paused
}

// Alive reports whether the process runs (a crash the harness did not
// cause shows here).
func (n *Node) Alive() bool {
	return n.Signal(syscall.Signal(0)) == nil
}

// Reload sends SIGHUP to every node that is not killed: a paused one gets
// it when it resumes; a killed one reads the file when it restarts.
func (c *Cluster) Reload() {
	for _, n := range c.Nodes {
		_ = n.Signal(syscall.SIGHUP)
	}
}

// Refusals counts the reloads the node refused so far (its log).
func (n *Node) Refusals() int { return strings.Count(n.Log(), "reload refused") }

// Ready reports whether the node answers /readyz with 200 within timeout.
func (n *Node) Ready(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+"/readyz", nil)
	resp, err := readyClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var readyClient = &http.Client{}
