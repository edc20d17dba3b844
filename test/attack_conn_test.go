package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// limitedBin wraps the binary so that it starts with an open-files limit
// of n (soft and hard), as a small host or container would.
func limitedBin(t *testing.T, n int) string {
	t.Helper()
	prl, err := execLookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed to give the node a small open-files limit: %v", err)
	}
	path := filepath.Join(t.TempDir(), "tether-nofile")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --nofile=%d:%d -- %s \"$@\"\n", prl, n, n, bin)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// floodResult is what a connection flood and the honest clients during it
// saw.
type floodResult struct {
	attempted, served int // attacker connections, and those answered 200
	honest, honestOK  int
	honestErrs        []string
	healthy           bool    // the replica was still marked healthy during the flood
	emfile            bool    // the node logged "too many open files"
	open              float64 // tether_conns_open during the flood (-1: admin unreachable)
}

// connFlood opens sources×perSource keep-alive connections, each sending
// one request and then staying idle (one request per idle timeout keeps
// such a connection), then, with the flood still open, has `honest` new
// clients make one request each on a new connection.
func connFlood(t *testing.T, n *fleet.Node, token string, sources, perSource, honest int) floodResult {
	t.Helper()
	var (
		mu    sync.Mutex
		conns []net.Conn
		res   floodResult
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var served atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := connFrom(attackSource(1+i/perSource), n.Proxy)
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				if code, err := requestWithin(c, appHost, "/", time.Second); err == nil && code == http.StatusOK {
					served.Add(1)
				}
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < sources*perSource && time.Now().Before(deadline); i++ {
		work <- i
		res.attempted++
	}
	close(work)
	wg.Wait()
	res.served = int(served.Load())

	// Honest clients, all at once, each on a new connection from its own
	// address, with the flood still open.
	var ok atomic.Int64
	errs := make(chan string, honest)
	var hw sync.WaitGroup
	for i := 0; i < honest; i++ {
		hw.Add(1)
		go func() {
			defer hw.Done()
			c, err := connFrom(honestSource(i), n.Proxy)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			code, err := requestWithin(c, appHost, "/", 3*time.Second)
			switch {
			case err != nil:
				errs <- err.Error()
			case code != http.StatusOK:
				errs <- fmt.Sprintf("status %d", code)
			default:
				ok.Add(1)
			}
		}()
	}
	hw.Wait()
	close(errs)
	res.honest, res.honestOK = honest, int(ok.Load())
	for e := range errs {
		if len(res.honestErrs) < 3 {
			res.honestErrs = append(res.honestErrs, e)
		}
	}
	// Health and admin, still during the flood.
	res.open = -1
	in := adminAPI(t, n, token)
	if bs, err := backendsOf(in); err == nil {
		res.healthy = len(bs) > 0
		for _, b := range bs {
			res.healthy = res.healthy && b.Healthy
		}
		res.open = metricTextOr(n, token, "tether_conns_open")
	}
	res.emfile = strings.Contains(n.Log(), "too many open files")
	return res
}

// metricTextOr is metricText that reports -1 instead of failing.
func metricTextOr(n *fleet.Node, token, family string) float64 {
	body, err := metricsOf(n, token)
	if err != nil {
		return -1
	}
	return sumFamily(body, family)
}

// attackConnFlood (finding 1): idle keep-alive connections used every file
// descriptor; the proxy and the admin stopped accepting and health checks
// failed. Two nodes with a 512 open-files limit each take the same flood
// of 800 connections from 40 addresses: one with the limits turned off
// (the finding, reproduced), one with the defaults (the derived global
// cap, 20 per source).
func attackConnFlood(t *testing.T) {
	const (
		nofile    = 512
		sources   = 40
		perSource = 20
		honest    = 50
	)
	_, spec := backends(t, "a")
	token := strongToken(t)
	lim := limitedBin(t, nofile)
	start := func(env map[string]string) *fleet.Node {
		env["TETHER_ADMIN_TOKEN"] = token
		return fleet.Start(t, lim, fleet.Options{Nodes: 1, Backends: spec, Env: env}).Nodes[0]
	}

	open := start(map[string]string{"TETHER_MAX_CONNS": "100000", "TETHER_MAX_CONNS_PER_SOURCE": "0"})
	r := connFlood(t, open, token, sources, perSource, honest)
	t.Logf("limits off, %d open files: %d of %d flood connections served; honest clients served %d of %d (e.g. %v); replica healthy %v; admin conns_open %v; \"too many open files\" logged %v",
		nofile, r.served, r.attempted, r.honestOK, r.honest, r.honestErrs, r.healthy, r.open, r.emfile)
	if r.honestOK == r.honest && r.healthy && !r.emfile {
		t.Fatal("control: with the limits off the flood did no harm, so this test proves nothing")
	}
	open.Stop()

	def := start(map[string]string{})
	r = connFlood(t, def, token, sources, perSource, honest)
	t.Logf("default limits, %d open files: %d of %d flood connections served, %v open at the node; honest clients served %d of %d; replica healthy %v; refused %v (global) %v (source), reclaimed under pressure %v",
		nofile, r.served, r.attempted, r.open, r.honestOK, r.honest, r.healthy,
		metricText(t, def, token, "tether_conns_refused_total", `reason="global"`), metricText(t, def, token, "tether_conns_refused_total", `reason="source"`),
		metricText(t, def, token, "tether_conns_reclaimed_total", `reason="pressure"`))
	if r.honestOK != r.honest {
		t.Errorf("honest clients served %d of %d during the flood: %v", r.honestOK, r.honest, r.honestErrs)
	}
	if !r.healthy {
		t.Error("the replica was marked down during the flood")
	}
	if r.emfile {
		t.Errorf("the node ran out of file descriptors:\n%s", def.LogTail(20))
	}
	if r.open < 0 || r.open > float64(nofile)/2 {
		t.Errorf("connections open at the node during the flood: %v (cap derived from %d files)", r.open, nofile)
	}
}

// attackTimeouts (finding 7): slow bodies, unread responses and idle
// tunnels held replica connections without end. The node runs with 2 s
// body, write and tunnel-idle timeouts.
func attackTimeouts(t *testing.T, n *fleet.Node, rep *attackReplica) {
	t.Run("slow body", func(t *testing.T) {
		c, err := connFrom(attackSource(3000), n.Proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n", appHost)
		start := time.Now()
		// A byte a second: slower than 256 B/s, so cut after the 2 s grace.
		for i := 0; i < 20; i++ {
			if _, err := c.Write([]byte("x")); err != nil {
				break
			}
			select {
			case err := <-rep.bodyEnded:
				if err == nil {
					t.Fatal("the replica read the whole slow body")
				}
				t.Logf("slow body (1 B/s) cut after %v; the replica's read ended: %v", time.Since(start).Round(100*time.Millisecond), err)
				return
			case <-time.After(time.Second):
			}
		}
		t.Fatal("a body sent at 1 B/s held the replica connection for 20 s")
	})
	t.Run("unread response", func(t *testing.T) {
		c, err := connFrom(attackSource(3001), n.Proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: %s\r\n\r\n", appHost)
		start := time.Now()
		select {
		case err := <-rep.bigEnded:
			if err == nil {
				t.Fatal("the replica wrote 50 MB to a client that reads nothing")
			}
			t.Logf("50 MB response to a client that reads nothing: the replica's write ended after %v: %v", time.Since(start).Round(100*time.Millisecond), err)
		case <-time.After(30 * time.Second):
			t.Fatal("an unread 50 MB response held the replica connection for 30 s")
		}
	})
	t.Run("idle tunnel", func(t *testing.T) {
		c, err := connFrom(attackSource(3002), n.Proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", appHost)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		// Traffic keeps it open: a message a second for 4 s (twice the
		// idle timeout), each echoed.
		for i := 0; i < 4; i++ {
			time.Sleep(time.Second)
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				t.Fatalf("a busy tunnel was closed after %d s: %v", i+1, err)
			}
			if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
				t.Fatalf("a busy tunnel was closed after %d s: %q %v", i+1, line, err)
			}
		}
		// Then silence: closed after the idle timeout.
		start := time.Now()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		_, err = br.ReadByte()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("an idle tunnel stayed open for %v (%v)", time.Since(start).Round(time.Second), err)
		}
		select {
		case d := <-rep.tunnelClosed:
			t.Logf("tunnel: kept open by a message a second for 4 s; closed %v after it went idle (timeout 2 s); the replica's side closed after %v in all",
				time.Since(start).Round(100*time.Millisecond), d.Round(100*time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatal("the client's side closed but the replica's tunnel stayed open")
		}
	})
}

// attackMethods (finding 8): TRACE and CONNECT reached replicas; a
// Connection header listing 6,000 names cost 4.7× a normal request.
func attackMethods(t *testing.T, n *fleet.Node, rep *attackReplica) {
	c, err := connFrom(attackSource(3100), n.Proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := make([]string, 6000)
	for i := range names {
		names[i] = fmt.Sprintf("x-%d", i)
	}
	for _, tc := range []struct {
		name, raw string
		want      int
	}{
		{"TRACE", "TRACE / HTTP/1.1\r\nHost: " + appHost + "\r\n\r\n", http.StatusMethodNotAllowed},
		{"CONNECT", "CONNECT " + appHost + ":443 HTTP/1.1\r\nHost: " + appHost + ":443\r\n\r\n", http.StatusMethodNotAllowed},
		{"6,000 Connection options", "GET / HTTP/1.1\r\nHost: " + appHost + "\r\nConnection: " + strings.Join(names, ", ") + "\r\n\r\n", http.StatusBadRequest},
	} {
		c, err := connFrom(attackSource(3100), n.Proxy)
		if err != nil {
			t.Fatal(err)
		}
		codes, _ := exchange(t, c, tc.raw)
		c.Close()
		if len(codes) != 1 || codes[0] != tc.want {
			t.Errorf("%s: answered %v, want %d", tc.name, codes, tc.want)
		}
	}
	for _, m := range []string{http.MethodTrace, http.MethodConnect} {
		if got := rep.reached(m); got != 0 {
			t.Errorf("%d %s requests reached the replica", got, m)
		}
	}
	// The control: a plain GET reaches it, so the counts above could move.
	before := rep.reached(http.MethodGet)
	if code, err := oneRequest(c, appHost, "/"); err != nil || code != http.StatusOK {
		t.Fatalf("control GET: %d %v", code, err)
	}
	if rep.reached(http.MethodGet) != before+1 {
		t.Fatal("control: the GET did not reach the replica")
	}
}
