package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/stickydb"
	"go.uber.org/goleak"
)

// net/http's server lingers up to 500 ms after an error response it sent
// to a client still writing (closeWriteAndWait: half-close, then wait for
// the client to read it), past the server's Close: not a leak.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"))
}

// fastHealth checks often, so tests see state changes quickly; the timeout
// is generous because a healthy replica answering late under -race on a
// busy machine must not flap.
var fastHealth = HealthCheck{Path: "/healthz", Interval: 30 * time.Millisecond, Timeout: 5 * time.Second, Rise: 2, Fall: 2}

// rig is one proxy node on a real loopback listener with real demo
// replicas behind it.
type rig struct {
	t        *testing.T
	db       *stickydb.DB
	p        *Proxy
	srv      *http.Server
	url      string
	reg      *prometheus.Registry
	backends map[string]*demobackend.Running
	mu       sync.Mutex
}

// startBackends starts demo replicas on 127.0.0.1:0.
func startBackends(t *testing.T, names ...string) map[string]*demobackend.Running {
	t.Helper()
	out := map[string]*demobackend.Running{}
	for _, n := range names {
		b, err := demobackend.Start(n, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		out[n] = b
	}
	return out
}

// poolOf makes a pool of the named running replicas.
func poolOf(t *testing.T, name string, hosts []string, bs map[string]*demobackend.Running, names ...string) Pool {
	t.Helper()
	p := Pool{Name: name, Hosts: hosts, Health: fastHealth}
	for _, n := range names {
		u, err := ParseBackendURL(bs[n].URL)
		if err != nil {
			t.Fatal(err)
		}
		p.Backends = append(p.Backends, Backend{Name: n, URL: u, Weight: 1})
	}
	return p
}

func newRig(t *testing.T, routes Routes, mod func(*Config)) *rig {
	t.Helper()
	db, err := stickydb.New(stickydb.DefaultConfig("node1"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Bindings, cfg.Routes, cfg.Registerer = db, routes, reg
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// As tether serves: the fast forwarding behind the server loop, the
	// standard one behind net/http's server alone.
	srv := p.NewServer()
	shutdown := srv.Shutdown
	if cfg.Forwarding == ForwardFast && !rigStdServer {
		ls := NewLoopServer(srv)
		go func() { _ = ls.Serve(ln) }()
		shutdown = ls.Shutdown
	} else {
		go func() { _ = srv.Serve(ln) }()
	}
	r := &rig{t: t, db: db, p: p, srv: srv, url: "http://" + ln.Addr().String(), reg: reg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdown(ctx)
		_ = p.Close()
	})
	return r
}

// rigStdServer makes newRig serve the fast forwarding with net/http's
// server instead of the loop (TETHER_TEST_STD_SERVER=1), to tell the two
// apart when a test fails.
var rigStdServer = os.Getenv("TETHER_TEST_STD_SERVER") == "1"

// clientIP is the i-th test client's source address, 127.20.x.y.
func clientIP(i int) string { return fmt.Sprintf("127.20.%d.%d", i/250, i%250+1) }

// clientFrom is an HTTP client whose connections leave from ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get sends GET path with Host host and returns the status, the X-Backend
// header and the body.
func (r *rig) get(c *http.Client, host, path string) (int, string, string) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Host = host
	res, err := c.Do(req)
	if err != nil {
		r.t.Fatalf("GET %s (Host %s): %v", path, host, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("X-Backend"), string(body)
}

// binding returns the binding of (ip, host) in the rig's DB.
func (r *rig) binding(ip, host string) stickydb.Binding {
	r.t.Helper()
	k, err := stickydb.NewKey(netip.MustParseAddr(ip), host)
	if err != nil {
		r.t.Fatal(err)
	}
	b, ok := r.db.Lookup(k)
	if !ok {
		r.t.Fatalf("no binding for %s %s", ip, host)
	}
	return b
}

// waitFor polls cond every few milliseconds until it holds or the deadline
// passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) status(pool, name string) BackendStatus {
	for _, s := range r.p.Backends() {
		if s.Pool == pool && s.Name == name {
			return s
		}
	}
	r.t.Fatalf("no backend %s/%s", pool, name)
	return BackendStatus{}
}

// parallel runs fn(i) for i in [0,n) on `workers` goroutines.
func parallel(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
