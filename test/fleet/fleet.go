// Package fleet runs a local fleet of tether nodes as separate processes of
// the built binary, for the integration, fault and load tests in test/. It
// knows tether only through its external contract: TETHER_* variables,
// signals, and the admin API.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles cmd/tether into dir and returns the binary's path. Call it
// once per test binary (TestMain).
func Build(dir string) (string, error) {
	return BuildWith(dir, os.Getenv("FLEET_NORACE") == "")
}

// BuildWith compiles cmd/tether into dir, with the race detector or not,
// and with the given build tags (the chaos suite: "faultinject").
func BuildWith(dir string, race bool, tags ...string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tether")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, "./cmd/tether")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("fleet: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a loopback host:port that was free for TCP and UDP a
// moment ago. It picks below Linux's ephemeral range (32768-60999), so the
// kernel does not hand the port to someone else's outgoing connection in
// the meantime; Start still retries a node whose port was taken.
func FreePort(tb testing.TB) string {
	tb.Helper()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr
	}
	tb.Fatal("fleet: no free port")
	return ""
}

// Options shape a fleet.
type Options struct {
	Nodes    int
	Backends string            // TETHER_BACKENDS
	DataDir  bool              // give every node a data dir (disk mode)
	Env      map[string]string // extra TETHER_* settings for every node
	// NotReady lists nodes Start does not wait to be ready (only alive:
	// /healthz), e.g. a node that cannot join.
	NotReady map[int]bool
}

// Node is one tether process.
type Node struct {
	Name, Proxy, Admin, Gossip string
	DataDir                    string
	env                        []string
	bin                        string
	logPath                    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Fleet is a set of nodes that join each other.
type Fleet struct {
	tb    testing.TB
	Nodes []*Node
	dir   string
}

// Start launches a fleet and waits until every node is ready.
func Start(tb testing.TB, bin string, o Options) *Fleet {
	tb.Helper()
	return StartEach(tb, bin, o.Nodes, o, nil)
}

// StartEach is Start with per-node settings: env(i), when not nil, adds to
// (or overrides) node i's variables.
func StartEach(tb testing.TB, bin string, nodes int, o Options, env func(i int) map[string]string) *Fleet {
	tb.Helper()
	o.Nodes = nodes
	dir := tb.TempDir()
	f := &Fleet{tb: tb, dir: dir}
	var seeds []string
	for i := 0; i < o.Nodes; i++ {
		n := &Node{Name: fmt.Sprintf("node%d", i), Proxy: FreePort(tb), Admin: FreePort(tb), Gossip: FreePort(tb), bin: bin}
		seeds = append(seeds, n.Gossip)
		n.logPath = filepath.Join(dir, n.Name+".log")
		if o.DataDir {
			n.DataDir = filepath.Join(dir, n.Name+"-data")
		}
		f.Nodes = append(f.Nodes, n)
	}
	for i, n := range f.Nodes {
		vars := map[string]string{
			"TETHER_NODE_NAME":    n.Name,
			"TETHER_LISTEN":       n.Proxy,
			"TETHER_ADMIN_LISTEN": n.Admin,
			"TETHER_GOSSIP_BIND":  n.Gossip,
			"TETHER_BACKENDS":     o.Backends,
			"TETHER_LOG_FORMAT":   "json",
			"TETHER_LOG_LEVEL":    logLevel(),
		}
		if n.DataDir != "" {
			vars["TETHER_DATA_DIR"] = n.DataDir
		}
		var join []string
		for j, s := range seeds {
			if j != i {
				join = append(join, s)
			}
		}
		vars["TETHER_JOIN"] = strings.Join(join, ",")
		for k, v := range o.Env {
			vars[k] = v
		}
		if env != nil {
			for k, v := range env(i) {
				vars[k] = v
			}
		}
		for k, v := range vars {
			n.env = append(n.env, k+"="+v)
		}
		if err := n.Start(); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(f.StopAll)
	tb.Cleanup(f.keepLogs)
	for i, n := range f.Nodes {
		wait := n.WaitReady
		if o.NotReady[i] {
			wait = n.WaitAlive
		}
		err := wait(30 * time.Second)
		for try := 0; err != nil && try < 3 && strings.Contains(n.LogTail(5), "address already in use"); try++ {
			// Another test took a port between FreePort and the bind.
			n.Proxy, n.Admin, n.Gossip = FreePort(tb), FreePort(tb), FreePort(tb)
			n.setEnv("TETHER_LISTEN", n.Proxy)
			n.setEnv("TETHER_ADMIN_LISTEN", n.Admin)
			n.setEnv("TETHER_GOSSIP_BIND", n.Gossip) // it joins the others, who learn the new address
			if err = n.Start(); err == nil {
				err = wait(30 * time.Second)
			}
		}
		if err != nil {
			tb.Fatalf("%s: %v\n%s", n.Name, err, n.LogTail(40))
		}
	}
	return f
}

// logLevel is the nodes' TETHER_LOG_LEVEL: FLEET_LOG_LEVEL, or info.
func logLevel() string {
	if l := os.Getenv("FLEET_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// keepLogs copies the nodes' logs of a failed test into the directory
// FLEET_KEEP_LOGS names (the fleet's own directory is removed with the
// test), under <test name>-<unix time>/.
func (f *Fleet) keepLogs() {
	root := os.Getenv("FLEET_KEEP_LOGS")
	if root == "" || !f.tb.Failed() {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(f.tb.Name())
	dst := filepath.Join(root, fmt.Sprintf("%s-%d", name, time.Now().Unix()))
	logs, _ := filepath.Glob(filepath.Join(f.dir, "*.log"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		f.tb.Logf("fleet: keep logs: %v", err)
		return
	}
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
		}
		if err != nil {
			f.tb.Logf("fleet: keep logs: %v", err)
		}
	}
	f.tb.Logf("fleet: node logs kept in %s", dst)
}

func (n *Node) envValue(k string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, kv := range n.env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

func (n *Node) setEnv(k, v string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, kv := range n.env {
		if strings.HasPrefix(kv, k+"=") {
			n.env[i] = k + "=" + v
			return
		}
	}
	n.env = append(n.env, k+"="+v)
}

// Start (re)starts the node's process.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, "serve")
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.cmd, n.done = cmd, done
	return nil
}

// Signal sends sig to the running process.
func (n *Node) Signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return errors.New("fleet: not running")
	}
	return n.cmd.Process.Signal(sig)
}

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (n *Node) Kill() { n.stop(syscall.SIGKILL, 10*time.Second) }

// Stop ends the process with SIGTERM (a graceful stop) and waits for it.
func (n *Node) Stop() { n.stop(syscall.SIGTERM, 20*time.Second) }

func (n *Node) stop(sig syscall.Signal, wait time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused node cannot handle SIGTERM
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
	n.mu.Lock()
	n.cmd = nil
	n.mu.Unlock()
}

// Join starts one more node, named name, with the settings of the first
// node but its own ports (and its own data dir when disk), joining every
// node of the fleet; env adds to or overrides its variables. It waits
// until the node is ready and appends it to Nodes.
func (f *Fleet) Join(name string, disk bool, env map[string]string) (*Node, error) {
	tb := f.tb
	tb.Helper()
	n := &Node{Name: name, Proxy: FreePort(tb), Admin: FreePort(tb), Gossip: FreePort(tb), bin: f.Nodes[0].bin,
		logPath: filepath.Join(f.dir, name+".log")}
	var join []string
	for _, o := range f.Nodes {
		join = append(join, o.Gossip)
	}
	f.Nodes[0].mu.Lock()
	base := slices.Clone(f.Nodes[0].env)
	f.Nodes[0].mu.Unlock()
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k != "TETHER_DATA_DIR" {
			n.env = append(n.env, kv)
		}
	}
	n.setEnv("TETHER_NODE_NAME", name)
	n.setEnv("TETHER_LISTEN", n.Proxy)
	n.setEnv("TETHER_ADMIN_LISTEN", n.Admin)
	n.setEnv("TETHER_GOSSIP_BIND", n.Gossip)
	n.setEnv("TETHER_JOIN", strings.Join(join, ","))
	if disk {
		n.DataDir = filepath.Join(f.dir, name+"-data")
		n.setEnv("TETHER_DATA_DIR", n.DataDir)
	}
	for k, v := range env {
		n.setEnv(k, v)
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	tb.Cleanup(n.Stop)
	// Past the lifecycle's CatchUpTimeout (60 s), the bound the product
	// gives (see TestFleetLongRun's restarts).
	if err := n.WaitReady(75 * time.Second); err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", name, err, n.LogTail(30))
	}
	f.Nodes = append(f.Nodes, n)
	return n, nil
}

// StopAll stops every node gracefully.
func (f *Fleet) StopAll() {
	var wg sync.WaitGroup
	for _, n := range f.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop() }()
	}
	wg.Wait()
}

// WaitReady polls /readyz until this node answers 200.
func (n *Node) WaitReady(timeout time.Duration) error { return n.waitFor("/readyz", timeout) }

// WaitAlive polls /healthz until this node answers 200.
func (n *Node) WaitAlive(timeout time.Duration) error { return n.waitFor("/healthz", timeout) }

// waitFor polls path until it answers 200 from this node. A 200 alone is
// not enough: test packages run in parallel, and when another package's
// node took our admin port between FreePort and our bind, it answers for
// us while our process dies of "address already in use" (seen in CI as a
// fault-control address that refused connections).
func (n *Node) waitFor(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := n.Get(path)
		if err == nil && code == http.StatusOK && n.answersAsSelf() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not 200 after %v (last: %d %q %v)", path, timeout, code, bytes.TrimSpace(body), err)
		}
		n.mu.Lock()
		done := n.done
		n.mu.Unlock()
		select {
		case <-done:
			return errors.New("process exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// answersAsSelf reports whether the process behind n.Admin is this node:
// its own entry in /api/v1/members has n.Gossip for its address (ports are
// unique among live processes, names are not across fleets).
func (n *Node) answersAsSelf() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+"/api/v1/members", nil)
	if err != nil {
		return false
	}
	if tok := n.envValue("TETHER_ADMIN_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	var ms []struct {
		Addr string `json:"addr"`
		Self bool   `json:"self"`
	}
	if json.Unmarshal(body, &ms) != nil {
		return false
	}
	want, err := netip.ParseAddrPort(n.Gossip)
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Self {
			got, err := netip.ParseAddrPort(m.Addr)
			return err == nil && got == want
		}
	}
	return false
}

var adminClient = &http.Client{Timeout: 5 * time.Second}

// Get fetches an admin path and returns the status and body.
func (n *Node) Get(path string) (int, []byte, error) {
	return n.Do(http.MethodGet, path, nil)
}

// Do sends an admin API request.
func (n *Node) Do(method, path string, body io.Reader) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.Admin+path, body)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

// JSON fetches an admin path and decodes it into v.
func (n *Node) JSON(path string, v any) error {
	code, b, err := n.Get(path)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

// LogTail returns the last lines of the node's log, for failure messages.
func (n *Node) LogTail(lines int) string { return TailFile(n.logPath, lines) }

// Log returns the node's whole log.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// TailFile returns the last lines of a file (a process's log), "" when it
// cannot be read.
func TailFile(path string, lines int) string {
	b, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
