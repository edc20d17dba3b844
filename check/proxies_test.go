package check

import (
	"hash/fnv"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
)

// policy chooses a backend index for a client, among the alive ones. It is
// called concurrently; p.mu is not held.
type policy func(p *testProxy, client string) int

// testProxy is a real reverse proxy on loopback in front of real demo
// replicas, with a replaceable choice policy: round-robin (not sticky),
// rendezvous on the client IP (sticky), or sticky but moving one client
// once (exactly one violation).
type testProxy struct {
	backends []*demobackend.Running
	urls     []*url.URL
	alive    []atomic.Bool
	choose   policy
	rr       atomic.Uint64
	served   atomic.Uint64

	mu      sync.Mutex
	clients map[string]int // client IP -> backend index of its last request
	moved   string         // the client moveOnce moved, once it has

	srv *http.Server
	tr  *http.Transport
	url string
}

func startBackends(t *testing.T, names ...string) []*demobackend.Running {
	t.Helper()
	var bs []*demobackend.Running
	for _, n := range names {
		b, err := demobackend.Start(n, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		bs = append(bs, b)
	}
	return bs
}

func startProxy(t *testing.T, backends []*demobackend.Running, choose policy) *testProxy {
	t.Helper()
	p := &testProxy{backends: backends, choose: choose, clients: map[string]int{},
		alive: make([]atomic.Bool, len(backends)),
		tr:    &http.Transport{MaxIdleConnsPerHost: 64, Proxy: nil}}
	for i, b := range backends {
		u, err := url.Parse(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		p.urls = append(p.urls, u)
		p.alive[i].Store(true)
	}
	rp := &httputil.ReverseProxy{
		Transport: p.tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			client, _, _ := net.SplitHostPort(r.In.RemoteAddr)
			i := p.choose(p, client)
			p.mu.Lock()
			p.clients[client] = i
			p.mu.Unlock()
			p.served.Add(1)
			r.SetURL(p.urls[i])
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	p.url = ln.Addr().String()
	t.Cleanup(func() { _ = p.srv.Close(); p.tr.CloseIdleConnections() })
	return p
}

// kill takes backend i out of the proxy's choice, then crashes it.
func (p *testProxy) kill(i int) {
	p.alive[i].Store(false)
	_ = p.backends[i].Close()
}

// seen returns the client IPs the proxy has served.
func (p *testProxy) seen() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.clients))
	for k, v := range p.clients {
		out[k] = v
	}
	return out
}

// roundRobin sends each request to the next alive backend: not sticky.
func roundRobin(p *testProxy, _ string) int {
	for range len(p.urls) {
		i := int(p.rr.Add(1) % uint64(len(p.urls)))
		if p.alive[i].Load() {
			return i
		}
	}
	return 0
}

// rendezvous picks the alive backend with the highest hash of (client,
// backend): sticky while the alive set holds, and the same choice on every
// proxy that uses it.
func rendezvous(p *testProxy, client string) int {
	best, bestScore := 0, uint64(0)
	for i, b := range p.backends {
		if !p.alive[i].Load() {
			continue
		}
		h := fnv.New64a()
		_, _ = h.Write([]byte(client))
		_, _ = h.Write([]byte(b.Name()))
		if s := h.Sum64(); s >= bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// moveOnce is rendezvous, except that once the proxy has served after
// requests it moves one client, whose replica serves other clients too,
// to another replica for good: exactly one sticky violation.
func moveOnce(after uint64) policy {
	return func(p *testProxy, client string) int {
		i := rendezvous(p, client)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.moved == "" && p.served.Load() >= after {
			others := 0
			for c, j := range p.clients {
				if j == i && c != client {
					others++
				}
			}
			if others > 0 {
				p.moved = client
			}
		}
		if client == p.moved {
			return (i + 1) % len(p.urls)
		}
		return i
	}
}

func mustListen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}
