package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// The attack suite (issue 17): each finding of the review that attacked a
// build of tether as a stranger on the internet would, replayed against
// processes of the built binary on loopback, with the figures the defence
// holds to. Every loop is bounded in count and time. docs/security.md
// records the figures of a run.

// attackReplica is the replica behind the attacked node: it records what
// reached it (cookies, slow bodies that ended, unread responses that ended,
// tunnels that closed) so each check is judged at the replica, not only by
// what tether answered.
type attackReplica struct {
	url     string
	methods sync.Map // method -> count that reached the replica
	cookies chan string

	bodyEnded    chan error // a slow body's read ended (nil: complete)
	bigEnded     chan error // a 50 MB response's write ended
	tunnelClosed chan time.Duration
}

func startAttackReplica(t *testing.T) *attackReplica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &attackReplica{url: "http://" + ln.Addr().String(), cookies: make(chan string, 16),
		bodyEnded: make(chan error, 16), bigEnded: make(chan error, 16), tunnelClosed: make(chan time.Duration, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/", func(w http.ResponseWriter, q *http.Request) {
		v, _ := r.methods.LoadOrStore(q.Method, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/cookies", func(w http.ResponseWriter, q *http.Request) {
		select {
		case r.cookies <- strings.Join(q.Header.Values("Cookie"), "; "):
		default:
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, q *http.Request) {
		_, err := io.Copy(io.Discard, q.Body)
		r.bodyEnded <- err
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, q *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(50<<20))
		buf := make([]byte, 64<<10)
		var err error
		for n := 0; n < 50<<20 && err == nil; n += len(buf) {
			_, err = w.Write(buf)
		}
		r.bigEnded <- err
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, q *http.Request) {
		// A minimal upgrade: 101, then echo until either side closes.
		hj, ok := w.(http.Hijacker)
		if !ok || !strings.EqualFold(q.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		c, brw, err := hj.Hijack()
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		start := time.Now()
		_, _ = io.Copy(c, brw)
		c.Close()
		r.tunnelClosed <- time.Since(start)
	})
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		w.Header().Set("X-Backend", "a")
		mux.ServeHTTP(w, q)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *attackReplica) reached(method string) int64 {
	if v, ok := r.methods.Load(method); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// attackSource is the loopback address of attacker i (127.70.0.0/16) or
// honest client i (127.71.0.0/16).
func attackSource(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 70, byte(i >> 8), byte(i)}) }
func honestSource(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 71, byte(i >> 8), byte(i)}) }

// connFrom dials addr from src; the caller closes the connection.
func connFrom(src netip.Addr, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 3 * time.Second}
	return d.Dial("tcp", addr)
}

// oneRequest sends a keep-alive GET on c and reads the answer: the status,
// or 0 and the error when the connection was closed or refused.
func oneRequest(c net.Conn, host, path string) (int, error) {
	return requestWithin(c, host, path, 5*time.Second)
}

// requestWithin is oneRequest giving up after d.
func requestWithin(c net.Conn, host, path string, d time.Duration) (int, error) {
	_ = c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// strongToken is a random admin token (the node refuses predictable ones).
func strongToken(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// TestAttackSuite replays the review's findings against one node with
// tight limits (so the suite stays small) and, for the gossip findings, a
// 2-node fleet.
func TestAttackSuite(t *testing.T) {
	rep := startAttackReplica(t)
	token := strongToken(t)
	f := fleet.Start(t, bin, fleet.Options{Nodes: 1, Backends: "a=" + rep.url, Env: map[string]string{
		"TETHER_ADMIN_TOKEN":         token,
		"TETHER_MAX_BINDINGS":        "1000",
		"TETHER_BODY_TIMEOUT":        "2s",
		"TETHER_WRITE_TIMEOUT":       "2s",
		"TETHER_TUNNEL_IDLE_TIMEOUT": "2s",
	}})
	node := f.Nodes[0]
	metric := func(t *testing.T, family string, labels ...string) float64 {
		return metricText(t, node, token, family, labels...)
	}

	t.Run("connection flood", func(t *testing.T) { attackConnFlood(t) })
	t.Run("host flood", func(t *testing.T) { attackHostFlood(t, node, token, metric) })
	t.Run("token guessing", func(t *testing.T) { attackTokenGuessing(t, node, token) })
	t.Run("admin session", func(t *testing.T) { attackSession(t, node, token, rep) })
	t.Run("udp log flood", func(t *testing.T) { attackUDPFlood(t, node, token, metric) })
	t.Run("slow and stuck transfers", func(t *testing.T) { attackTimeouts(t, node, rep) })
	t.Run("methods and headers", func(t *testing.T) { attackMethods(t, node, rep) })
	t.Run("predictable token refused", func(t *testing.T) { attackWeakToken(t) })
	t.Run("gossip needs a key", func(t *testing.T) { attackGossipKey(t) })
}

// metricText is metricSum for a node whose admin wants token ("": none).
func metricText(t *testing.T, n *fleet.Node, token, family string, labels ...string) float64 {
	t.Helper()
	body, err := metricsOf(n, token)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	return sumFamily(body, family, labels...)
}

// metricsOf fetches a node's /metrics text.
func metricsOf(n *fleet.Node, token string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("/metrics: %d", resp.StatusCode)
	}
	return string(body), err
}

// sumFamily adds the values of every series of family in a /metrics text
// whose labels contain all of labels.
func sumFamily(body, family string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, family+"{") && !strings.HasPrefix(line, family+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); ok && err == nil {
			sum += v
		}
	}
	return sum
}
