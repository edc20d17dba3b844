package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The demo starts 3 nodes and 3 backends, a client keeps its replica
// whichever node it reaches, and cancelling stops everything.
func TestDemo(t *testing.T) {
	var out syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var p demoPlan
	done := make(chan error, 1)
	for attempt := 0; ; attempt++ {
		// Below the ports test/fleet uses (20000-32000) and the kernel's
		// ephemeral range (32768-60999), both busy while test/ runs.
		p = demoPlan{nodes: 3, backends: 3, base: 10000 + rand.IntN(9500)}
		go func() { done <- demo(ctx, p, "error", &out, io.Discard) }()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(out.String(), "Ctrl-C stops everything") {
			select {
			case err := <-done:
				if attempt < 10 && err != nil && strings.Contains(err.Error(), "(try --base)") {
					goto retry
				}
				t.Fatalf("demo ended early: %v\n%s", err, out.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("demo not up within 60s:\n%s", out.String())
			}
		}
		break
	retry:
	}
	get := func(src string, node int) string {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(p.base+1+node) + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "served by") {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		return resp.Header.Get("X-Backend")
	}
	for c := 0; c < 20; c++ {
		src := "127.0.3." + strconv.Itoa(c+1)
		first := get(src, c%3)
		// Replication is asynchronous: wait until the others know it, then
		// every node must send this client to the same replica.
		deadline := time.Now().Add(5 * time.Second)
		for n := 0; n < 3; n++ {
			for got := get(src, n); got != first; got = get(src, n) {
				if time.Now().After(deadline) {
					t.Fatalf("client %s: node%d sends it to %s, node%d bound it to %s", src, n+1, got, c%3+1, first)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Fatalf("no stop message:\n%s", out.String())
	}
}
