package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func startDemo(t *testing.T, name string) *demobackend.Running {
	t.Helper()
	b, err := demobackend.Start(name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// serve runs a node in-process: routes from the file, SIGHUP (as a channel)
// reloads them, a bad file keeps the old routes, and cancelling stops the
// node after the in-flight request finished.
func TestServeReloadAndShutdown(t *testing.T) {
	a, b, c := startDemo(t, "a"), startDemo(t, "b"), startDemo(t, "c")
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	write := func(s string) {
		if err := os.WriteFile(routes, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("pools:\n  - name: shop\n    hosts: [shop.test]\n    backends: [{name: a, url: %q}]\n", a.URL))
	slow := http.NewServeMux()
	release := make(chan struct{})
	slow.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Header().Set("X-Backend", "slow")
		io.WriteString(w, "done")
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	slowSrv := &http.Server{Handler: slow, ReadHeaderTimeout: time.Second}
	go slowSrv.Serve(ln)
	defer slowSrv.Close()

	env := map[string]string{
		"TETHER_LISTEN": "127.0.0.1:0", "TETHER_ROUTES_FILE": routes,
		"TETHER_BACKENDS": "slow=http://" + ln.Addr().String(), "TETHER_NODE_NAME": "n1",
	}
	cfg, err := loadConfig(nil, env, hostname, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	log := newLogger(cfg, &logs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	readyc := make(chan *node, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, hup, func(n *node) { readyc <- n }) }()
	var n *node
	select {
	case n = <-readyc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("node did not start")
	}
	base := "http://" + n.ln.Addr().String()
	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		io.Copy(io.Discard, res.Body)
		return res.StatusCode, res.Header.Get("X-Backend")
	}
	if code, be := get("shop.test", "/"); code != 200 || be != "a" {
		t.Fatalf("shop: %d %s", code, be)
	}
	if code, be := get("other.test", "/"); code != 200 || be != "slow" {
		t.Fatalf("default pool: %d %s", code, be)
	}
	if !strings.Contains(logs.String(), `"message":"tether serving"`) {
		t.Fatalf("no start-up summary in %s", logs.String())
	}

	// Reload: shop gets b and c too; the bound client stays on a.
	write(fmt.Sprintf("pools:\n  - name: shop\n    hosts: [shop.test]\n    backends: [{name: a, url: %q}, {name: b, url: %q}, {name: c, url: %q}]\n", a.URL, b.URL, c.URL))
	hup <- syscall.SIGHUP
	waitFor(t, "reload", 5*time.Second, func() bool { return len(n.proxy.Backends()) == 4 })
	if code, be := get("shop.test", "/"); code != 200 || be != "a" {
		t.Fatalf("after reload: %d %s", code, be)
	}
	// A broken file keeps the routes in force.
	write("pools: [\n")
	hup <- syscall.SIGHUP
	waitFor(t, "reload refusal logged", 5*time.Second, func() bool { return strings.Contains(logs.String(), "reload refused") })
	if len(n.proxy.Backends()) != 4 {
		t.Fatal("a bad routes file changed the routes")
	}

	// Shutdown waits for the in-flight request.
	inflight := make(chan int, 1)
	go func() { code, _ := get("other.test", "/slow"); inflight <- code }()
	waitFor(t, "request in flight", 5*time.Second, func() bool {
		for _, s := range n.proxy.Backends() {
			if s.Name == "slow" && s.InFlight == 1 {
				return true
			}
		}
		return false
	})
	cancel()
	waitFor(t, "listener closed", 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", n.ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-done:
		t.Fatal("serve returned with a request in flight")
	default:
	}
	close(release)
	if code := <-inflight; code != 200 {
		t.Fatalf("in-flight request ended with %d", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// The binary: a bad setting exits 2 naming it; SIGTERM stops a node
// cleanly.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "tether")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"TETHER_BACKENDS=a=http://127.0.0.1:1", "TETHER_TTL=0"}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), `TETHER_TTL (--ttl) "0": must be > 0`) {
		t.Fatalf("bad TTL: %v\n%s", err, out)
	}

	a := startDemo(t, "a")
	var logs syncBuf
	cmd = exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = []string{"TETHER_BACKENDS=a=" + a.URL, "TETHER_NODE_NAME=bin1"}
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "start-up summary", 10*time.Second, func() bool { return strings.Contains(logs.String(), "tether serving") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), `"message":"stopped"`) {
		t.Fatalf("logs: %s", logs.String())
	}
}
