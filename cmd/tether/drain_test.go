package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// startNode runs serve in-process with env and returns the node once it
// serves; the node stops at the end of the test.
func startNode(t *testing.T, env map[string]string) *node {
	t.Helper()
	cfg, err := loadConfig(nil, env, hostname, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	readyc := make(chan *node, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, newLogger(cfg, io.Discard), make(chan os.Signal), func(n *node) { readyc <- n })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("node did not stop")
		}
	})
	select {
	case n := <-readyc:
		return n
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not start")
	}
	return nil
}

// tether drain --wait, against a real two-node fleet: it reports the
// clients still bound at the deadline, counted on both nodes; with
// --move-idle the idle clients move to the other replica on every node
// and the drain ends empty.
func TestDrainWait(t *testing.T) {
	a, b := startDemo(t, "a"), startDemo(t, "b")
	base := map[string]string{
		"TETHER_LISTEN": "127.0.0.1:0", "TETHER_ADMIN_LISTEN": "127.0.0.1:0", "TETHER_GOSSIP_BIND": "127.0.0.1:0",
		"TETHER_BACKENDS": "a=" + a.URL + ",b=" + b.URL, "TETHER_TRUSTED_PROXIES": "127.0.0.1",
		"TETHER_TTL": "8s", "TETHER_LOG_LEVEL": "warn",
	}
	env1 := clone(base)
	env1["TETHER_NODE_NAME"] = "n1"
	n1 := startNode(t, env1)
	env2 := clone(base)
	env2["TETHER_NODE_NAME"], env2["TETHER_JOIN"] = "n2", n1.gossip.Addr()
	n2 := startNode(t, env2)
	waitFor(t, "the fleet to form", 30*time.Second, func() bool { return len(n1.gossip.Members()) == 2 && n2.gossip.Ready() })

	get := func(n *node, client string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.ln.Addr().String()+"/", nil)
		req.Host = "app.test"
		req.Header.Set("X-Forwarded-For", client)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.Header.Get("X-Backend")
	}
	var onA []string
	for i := 0; i < 40; i++ {
		c := fmt.Sprintf("192.0.2.%d", i+1)
		if get(n1, c) == "a" {
			onA = append(onA, c)
		}
	}
	if len(onA) == 0 || len(onA) == 40 {
		t.Fatalf("%d of 40 clients on a", len(onA))
	}
	waitFor(t, "n2 to hold every binding", 30*time.Second, func() bool { return n2.db.Len() == 40 })
	admin := "http://" + n1.admin.Addr().String()
	drain := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := drainMain(context.Background(), args, map[string]string{}, &out, &errOut)
		return code, out.String() + errOut.String()
	}

	// At the deadline: every client of a is still bound, on both nodes.
	code, out := drain("--admin", admin, "--wait=1s", "a")
	if want := fmt.Sprintf("still has up to %d live bindings (n1 %d, n2 %d;", len(onA), len(onA), len(onA)); code != drainExitLeft || !strings.Contains(out, want) {
		t.Fatalf("exit %d, %q; want %q", code, out, want)
	}
	for _, c := range onA {
		if be := get(n2, c); be != "a" {
			t.Fatalf("drained a lost client %s to %s: a drain keeps bound clients", c, be)
		}
	}
	// Move the idle ones: once no node can have used them for 1ms (the
	// announced expiry less TTL plus the refresh threshold: 2 s here).
	code, out = drain("a", "--admin", admin, "--wait=60s", "--move-idle=1ms")
	if want := fmt.Sprintf("no node holds a live binding to it (2 nodes asked, "); code != drainExitEmpty || !strings.Contains(out, want) {
		t.Fatalf("exit %d, %q; want %q", code, out, want)
	}
	for _, c := range onA {
		if be := get(n2, c); be != "b" {
			t.Fatalf("client %s on %s after the move, want b", c, be)
		}
	}

	// Usage errors and the plain drain.
	if code, out := drain("--admin", admin, "--move-idle=1m", "a"); code != drainExitUsage || !strings.Contains(out, "--move-idle needs --wait") {
		t.Fatalf("move-idle without wait: %d %q", code, out)
	}
	if code, out := drain("--admin", admin, "--wait=2d", "a"); code != drainExitUsage || !strings.Contains(out, "24h") {
		t.Fatalf("bad wait: %d %q", code, out)
	}
	if code, out := drain("--admin", admin, "nope"); code != drainExitFailed || !strings.Contains(out, "404") {
		t.Fatalf("unknown replica: %d %q", code, out)
	}
	if code, out := drain("--admin", admin, "b"); code != drainExitEmpty || !strings.Contains(out, "drained b") {
		t.Fatalf("plain drain: %d %q", code, out)
	}
	res, err := http.Post(admin+"/api/v1/backends/a/drain?wait=forever", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("wait=forever: %d", res.StatusCode)
	}
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
