package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// Ports every node uses inside its own namespace (each namespace has its
// own port space, so no free-port hunting and no clash with other tests).
const (
	ProxyPort  = "8080"
	AdminPort  = "9090"
	GossipPort = "7946"
)

// Node is one tether process in its own namespace. Its proxy, admin and
// gossip listen on the host's bridge address only; nothing of it is on
// loopback.
type Node struct {
	Name         string
	Host         *Host
	Proxy, Admin string // host:port on the bridge
	Gossip       string
	DataDir      string       // "" in epoch mode
	Token        string       // admin bearer token (admin is not on loopback)
	admin, local *http.Client // from the control host; from the node's own host
	bin, logPath string
	mu           sync.Mutex
	env          []string
	cmd          *exec.Cmd
	done         chan struct{}
}

// NewNode describes a node on h; ctl is the host the test reaches the
// admin API from. Start runs it.
func NewNode(bin, dir string, h, ctl *Host, disk bool, env map[string]string) *Node {
	a := h.Addr.String()
	n := &Node{Name: h.Name, Host: h, bin: bin, Proxy: a + ":" + ProxyPort, Admin: a + ":" + AdminPort,
		Gossip: a + ":" + GossipPort, Token: "netns-test-token-" + h.Name, logPath: filepath.Join(dir, h.Name+".log")}
	if disk {
		n.DataDir = filepath.Join(dir, h.Name+"-data")
	}
	n.admin = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: ctl.Dialer(ctl.Addr, 3*time.Second), MaxIdleConnsPerHost: 4, IdleConnTimeout: 10 * time.Second}}
	n.local = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: h.Dialer(h.Addr, 3*time.Second), MaxIdleConnsPerHost: 4, IdleConnTimeout: 10 * time.Second}}
	vars := map[string]string{
		"TETHER_NODE_NAME":    n.Name,
		"TETHER_LISTEN":       n.Proxy,
		"TETHER_ADMIN_LISTEN": n.Admin,
		"TETHER_ADMIN_TOKEN":  n.Token,
		"TETHER_GOSSIP_BIND":  n.Gossip,
		"TETHER_GOSSIP_KEY":   "bmV0bnMtZ29zc2lwLWtleQ==", // gossip beyond loopback needs a key
		"TETHER_LOG_FORMAT":   "json",
		"TETHER_LOG_LEVEL":    "info",
	}
	if disk {
		vars["TETHER_DATA_DIR"] = n.DataDir
	}
	for k, v := range env {
		vars[k] = v
	}
	for k, v := range vars {
		n.env = append(n.env, k+"="+v)
	}
	return n
}

// Start (re)starts the process in its namespace.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return errors.New("netns: node already running")
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := n.Host.Command(n.bin, "serve")
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

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (n *Node) Kill() { n.stop(syscall.SIGKILL, 10*time.Second) }

// Stop ends the process with SIGTERM and waits for it.
func (n *Node) Stop() { n.stop(syscall.SIGTERM, 20*time.Second) }

func (n *Node) stop(sig syscall.Signal, wait time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
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
	n.admin.CloseIdleConnections()
	n.local.CloseIdleConnections()
}

// WaitReady polls /readyz until it answers 200.
func (n *Node) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := n.Do(http.MethodGet, "/readyz", nil)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: /readyz not 200 after %v (last: %d %v %s)", n.Name, timeout, code, err, bytes.TrimSpace(body))
		}
		n.mu.Lock()
		done := n.done
		n.mu.Unlock()
		select {
		case <-done:
			return fmt.Errorf("%s: process exited", n.Name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Do sends an admin API request, with the token, from the control host.
func (n *Node) Do(method, path string, body []byte) (int, []byte, error) {
	return n.do(n.admin, method, path, body)
}

// DoLocal sends an admin API request from the node's own host: it works
// while the node's link is down.
func (n *Node) DoLocal(method, path string, body []byte) (int, []byte, error) {
	return n.do(n.local, method, path, body)
}

func (n *Node) do(c *http.Client, method, path string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.Admin+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+n.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

// JSON fetches an admin path into v.
func (n *Node) JSON(path string, v any) error {
	code, b, err := n.Do(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: GET %s: %d %s", n.Name, path, code, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string { return fleet.TailFile(n.logPath, lines) }

// Log returns the node's whole log.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}
