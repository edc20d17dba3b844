package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/internal/testcert"
)

// run runs a check with DefaultConfig modified by mod and returns its report.
func run(t *testing.T, ctx context.Context, mod func(*Config)) *Report {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Clients = 12
	cfg.Duration = 600 * time.Millisecond
	cfg.Seed = 7
	mod(&cfg)
	k, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := k.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Run(ctx); !errors.Is(err, ErrRan) {
		t.Fatalf("second Run: %v, want ErrRan", err)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.Verdict != r.Verdict || back.Requests != r.Requests {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
	buf.Reset()
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())
	return r
}

func TestStickinessVerdicts(t *testing.T) {
	bodyRE := regexp.MustCompile(`served by (\S+):`)
	tests := []struct {
		name     string
		policy   policy
		proxies  int
		bodyRE   *regexp.Regexp
		wantViol bool
	}{
		{"round-robin proxy is not sticky", roundRobin, 1, nil, true},
		{"round-robin found through the body", roundRobin, 1, bodyRE, true},
		{"rendezvous proxy is sticky", rendezvous, 1, nil, false},
		{"two rendezvous proxies, random targets, are sticky", rendezvous, 2, nil, false},
		{"rendezvous found through the body", rendezvous, 1, bodyRE, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs := startBackends(t, "b1", "b2", "b3")
			var targets []string
			var first *testProxy
			for range tc.proxies {
				p := startProxy(t, bs, tc.policy)
				targets = append(targets, p.url)
				if first == nil {
					first = p
				}
			}
			r := run(t, context.Background(), func(c *Config) {
				c.Targets = targets
				c.BodyRegexp = tc.bodyRE
				c.Requests = int64(c.Clients) * 15
				c.Duration = time.Minute // a bound only: a busy machine may be slow
				c.StickyWindow = 5 * time.Second
			})
			if r.OK < uint64(r.Clients)*2 || r.Errors != 0 {
				t.Fatalf("too little load to judge: ok %d errors %v", r.OK, r.ErrorsByKind)
			}
			if got := r.Stickiness.Violations > 0; got != tc.wantViol {
				t.Fatalf("violations %d, want any: %v", r.Stickiness.Violations, tc.wantViol)
			}
			wantVerdict := VerdictSticky
			if tc.wantViol {
				wantVerdict = VerdictViolations
				if r.Stickiness.ViolatingClients != r.Clients || len(r.Stickiness.Examples) == 0 {
					t.Fatalf("round robin must catch every client: %d of %d", r.Stickiness.ViolatingClients, r.Clients)
				}
			} else if r.Stickiness.Switches != 0 {
				t.Fatalf("sticky proxy with all replicas up: %d switches", r.Stickiness.Switches)
			}
			if r.Verdict != wantVerdict {
				t.Fatalf("verdict %q, want %q", r.Verdict, wantVerdict)
			}
			// Every client dialled from its own address of the CIDR, and the
			// clients per replica add up.
			seen := first.seen()
			for i := 1; i <= r.Clients; i++ {
				if _, ok := seen[fmt.Sprintf("127.64.0.%d", i)]; !ok {
					t.Fatalf("client 127.64.0.%d never reached the proxy; saw %v", i, seen)
				}
			}
			if len(seen) != r.Clients {
				t.Fatalf("proxy saw %d client IPs, want %d", len(seen), r.Clients)
			}
			total := 0
			for _, rep := range r.Replicas {
				total += rep.Clients
			}
			if total != r.Clients || len(r.Replicas) != 3 {
				t.Fatalf("clients per replica %+v", r.Replicas)
			}
		})
	}
}

// waitFor polls cond every few ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestForcedMoveIsNoViolation(t *testing.T) {
	// A replica crashes mid-run; the sticky proxy moves its clients. They
	// switch, but the replica they left serves nobody afterwards: no
	// violation.
	bs := startBackends(t, "b1", "b2", "b3")
	p := startProxy(t, bs, rendezvous)
	done := make(chan *Report, 1)
	go func() {
		done <- run(t, context.Background(), func(c *Config) {
			c.Targets = []string{p.url}
			c.Requests = 300 // 60 before the crash, the rest after: every client goes on
			c.Duration = time.Minute
		})
	}()
	waitFor(t, 30*time.Second, "load through the proxy", func() bool { return p.served.Load() >= 60 })
	// Kill the replica with the most clients, so that some must move.
	counts := make([]int, len(bs))
	for _, i := range p.seen() {
		counts[i]++
	}
	victim := 0
	for i, n := range counts {
		if n > counts[victim] {
			victim = i
		}
	}
	p.kill(victim)
	r := <-done
	if r.Stickiness.Switches < uint64(counts[victim]) {
		t.Fatalf("%d clients on the crashed replica but only %d switches", counts[victim], r.Stickiness.Switches)
	}
	if r.Stickiness.Violations != 0 || r.Verdict != VerdictSticky {
		t.Fatalf("forced moves judged as violations: %+v", r.Stickiness)
	}
	for _, rep := range r.Replicas {
		if rep.Name == bs[victim].Name() && rep.Clients != 0 {
			t.Fatalf("clients still counted on the crashed replica: %+v", r.Replicas)
		}
	}
}

func TestOneMovedClientIsOneViolation(t *testing.T) {
	bs := startBackends(t, "b1", "b2", "b3")
	p := startProxy(t, bs, moveOnce(100))
	r := run(t, context.Background(), func(c *Config) {
		c.Targets = []string{p.url}
		c.Requests = 400
		c.Duration = time.Minute
		c.StickyWindow = 5 * time.Second
	})
	p.mu.Lock()
	moved := p.moved
	p.mu.Unlock()
	if moved == "" {
		t.Fatal("the proxy never moved a client: too little load")
	}
	s := r.Stickiness
	if s.Switches != 1 || s.Violations != 1 || s.ViolatingClients != 1 || len(s.Examples) != 1 || s.Examples[0].Client != moved {
		t.Fatalf("want exactly one violation by %s, got %+v", moved, s)
	}
	if r.Verdict != VerdictViolations {
		t.Fatalf("verdict %q", r.Verdict)
	}
}

// startServer serves h on loopback and counts accepted connections.
func startServer(t *testing.T, h http.Handler) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int64)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), conns
}

func TestErrorKinds(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	_ = closed.Close()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name    string
		handler http.HandlerFunc
		target  string
		want    Kind
		timeout time.Duration // 0 = 5s
	}{
		{"connection refused", nil, refused, KindConnect, 0},
		{"5xx", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Backend", "b1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}, "", KindStatus5xx, 0},
		{"4xx", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Backend", "b1")
			w.WriteHeader(http.StatusNotFound)
		}, "", KindStatus4xx, 0},
		{"no replica named", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hi")) }, "", KindUnlabelled, 0},
		{"timeout", func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, "", KindTimeout, 150 * time.Millisecond},
		{"reset mid-body", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Backend", "b1")
			w.Header().Set("Content-Length", "100")
			_, _ = w.Write([]byte("short"))
			panic(http.ErrAbortHandler)
		}, "", KindReset, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if tc.handler != nil {
				target, _ = startServer(t, tc.handler)
			}
			r := run(t, context.Background(), func(c *Config) {
				c.Targets = []string{target}
				c.Clients = 3
				c.Requests = 6
				c.Duration = time.Minute
				c.Timeout = 5 * time.Second
				if tc.timeout > 0 {
					c.Timeout = tc.timeout
				}
			})
			if r.Requests != 6 || r.Errors != 6 || r.ErrorsByKind[tc.want.String()] != 6 {
				t.Fatalf("want 6 errors of kind %v, got %d requests, errors %v", tc.want, r.Requests, r.ErrorsByKind)
			}
			if r.Verdict != VerdictNoData {
				t.Fatalf("verdict %q, want %q", r.Verdict, VerdictNoData)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	for _, ka := range []bool{true, false} {
		t.Run(fmt.Sprint("keepalive=", ka), func(t *testing.T) {
			addr, conns := startServer(t, demobackend.New("b1"))
			r := run(t, context.Background(), func(c *Config) {
				c.Targets = []string{addr}
				c.Clients = 4
				c.Requests = 80
				c.Duration = time.Minute
				c.KeepAlive = ka
			})
			if r.OK != 80 {
				t.Fatalf("ok %d of 80: %v", r.OK, r.ErrorsByKind)
			}
			n := conns.Load()
			if ka && n > 4 {
				t.Fatalf("keep-alive on: %d connections for 4 clients", n)
			}
			if !ka && n != 80 {
				t.Fatalf("keep-alive off: %d connections for 80 requests", n)
			}
		})
	}
}

func TestOpenLoopRate(t *testing.T) {
	addr, _ := startServer(t, demobackend.New("b1"))
	r := run(t, context.Background(), func(c *Config) {
		c.Targets = []string{addr}
		c.Clients = 4
		c.Rate = 200
		c.Duration = time.Second
	})
	// The schedule holds exactly 200 sends in the second; a slow machine
	// may fall behind and send fewer before the deadline, never more.
	if r.Requests > 200 || r.Requests < 20 {
		t.Fatalf("%d requests at 200/s for 1s", r.Requests)
	}
	// No request starts after the deadline; the last ones end within Timeout.
	if r.Elapsed > time.Second+DefaultConfig().Timeout {
		t.Fatalf("open loop overran its duration: %v", r.Elapsed)
	}
}

func TestNoSourceBinding(t *testing.T) {
	bs := startBackends(t, "b1", "b2")
	p := startProxy(t, bs, rendezvous)
	r := run(t, context.Background(), func(c *Config) {
		c.Targets = []string{p.url}
		c.SourceCIDR = netip.Prefix{}
		c.Requests = 50
		c.Duration = time.Minute
	})
	if r.OK != 50 {
		t.Fatalf("ok %d", r.OK)
	}
	if seen := p.seen(); len(seen) != 1 {
		t.Fatalf("without source binding the proxy must see one client, saw %v", seen)
	}
}

func TestAbort(t *testing.T) {
	addr, _ := startServer(t, demobackend.New("b1"))
	cfg := DefaultConfig()
	cfg.Targets = []string{addr}
	cfg.Duration = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Report, 1)
	go func() {
		r, _ := k.Run(ctx)
		done <- r
	}()
	waitFor(t, 30*time.Second, "a first answer", func() bool { return k.Progress().OK > 0 })
	cancel()
	select {
	case r := <-done:
		if r == nil || !r.Aborted || r.OK == 0 {
			t.Fatalf("report after abort: %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
}

// With Config.TLS every request goes over HTTPS to a server the config
// trusts (a real TLS handshake per connection), and is refused by one it
// does not.
func TestTLS(t *testing.T) {
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"shop.test"}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var handshakes atomic.Int64
	srv := httptest.NewUnstartedServer(demobackend.New("b1"))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, VerifyConnection: func(tls.ConnectionState) error {
		handshakes.Add(1)
		return nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	r := run(t, context.Background(), func(c *Config) {
		c.Targets = []string{addr}
		c.Clients = 4
		c.Requests = 40
		c.Duration = time.Minute
		c.KeepAlive = true
		c.TLS = &tls.Config{RootCAs: ca.Pool, ServerName: "shop.test"}
	})
	if r.OK != 40 || handshakes.Load() == 0 || handshakes.Load() > 4 {
		t.Fatalf("ok %d of 40 (%v), %d handshakes for 4 keep-alive clients", r.OK, r.ErrorsByKind, handshakes.Load())
	}
	r = run(t, context.Background(), func(c *Config) {
		c.Targets = []string{addr}
		c.Clients = 2
		c.Requests = 4
		c.Duration = time.Minute
		c.TLS = &tls.Config{ServerName: "shop.test"} // the system roots: the test CA is not among them
	})
	if r.OK != 0 || r.Errors != 4 {
		t.Fatalf("untrusted server: ok %d, errors %d (%v)", r.OK, r.Errors, r.ErrorsByKind)
	}
}
