package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/procstat"
	"github.com/tetherproxy/tether/stickydb"
)

// benchBackend is a minimal replica (a fixed 2-byte body), so the
// benchmarks measure the proxy, not the replica.
func benchBackend(b *testing.B) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("ok")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Backend"] = []string{"a"}
		w.Header()["Content-Type"] = []string{"text/plain"}
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }
}

func benchProxy(b *testing.B, backendURL string) *Proxy { return benchProxyWith(b, backendURL, nil) }

func benchProxyWith(b *testing.B, backendURL string, mod func(*Config)) *Proxy {
	db, err := stickydb.New(stickydb.DefaultConfig("bench"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(backendURL)
	cfg := DefaultConfig()
	cfg.Bindings = db
	cfg.Routes = Routes{Pools: []Pool{{Name: DefaultPool, Backends: []Backend{{Name: "a", URL: u, Weight: 1}},
		Health: HealthCheck{Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1}}}}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(c int)           { d.code = c }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// rawBackend is a replica that answers every request on a keep-alive
// connection with the same fixed response and allocates nothing per
// request, so that a benchmark's allocs/op are the proxy's alone.
func rawBackend(b *testing.B) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: a\r\nContent-Length: 2\r\n\r\nok")
	var conns sync.WaitGroup
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for { // the request head: up to a blank line
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), func() { ln.Close(); conns.Wait() }
}

// rawClient sends GET / with Host bench.example on one keep-alive
// connection and reads the response, allocating nothing per request.
type rawClient struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

func newRawClient(b *testing.B, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return &rawClient{c: c, br: bufio.NewReader(c),
		req: []byte("GET / HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")}
}

// do returns the status code; the body must have a Content-Length.
func (rc *rawClient) do() (int, error) {
	if _, err := rc.c.Write(rc.req); err != nil {
		return 0, err
	}
	status, n := 0, -1
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if status == 0 && len(line) > 12 {
			status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
		}
		if len(line) > 16 && strings.EqualFold(string(line[:15]), "content-length:") {
			n, _ = strconv.Atoi(strings.TrimSpace(string(line[15:])))
		}
	}
	if n < 0 {
		return status, fmt.Errorf("no Content-Length")
	}
	_, err := rc.br.Discard(n)
	return status, err
}

func (rc *rawClient) close() { rc.c.Close() }

var forwardings = []string{ForwardFast, ForwardStdlib}

// BenchmarkServeHTTPHit: the proxy's handler for a bound client, called
// directly (no client socket), forwarding over a real loopback connection
// to a replica that allocates nothing: allocs/op is the proxy's whole cost
// per request, forwarding included, in each Forwarding mode.
func BenchmarkServeHTTPHit(b *testing.B) {
	be, stop := rawBackend(b)
	defer stop()
	for _, fw := range forwardings {
		b.Run(fw, func(b *testing.B) {
			p := benchProxyWith(b, be, func(c *Config) { c.Forwarding = fw })
			defer p.Close()
			req, _ := http.NewRequest(http.MethodGet, "http://bench.example/", nil)
			req.RemoteAddr = "192.0.2.1:5555"
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			w := &discardWriter{h: http.Header{}}
			p.ServeHTTP(w, req) // bind
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clear(w.h)
				p.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// BenchmarkServerHit: one keep-alive client through the proxy's
// http.Server to a replica, both sides allocation-free: allocs/op is
// net/http's server plus the proxy, the whole per-request cost of a node.
func BenchmarkServerHit(b *testing.B) {
	be, stop := rawBackend(b)
	defer stop()
	for _, fw := range forwardings {
		b.Run(fw, func(b *testing.B) {
			p := benchProxyWith(b, be, func(c *Config) { c.Forwarding = fw })
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := p.NewServer()
			go func() { _ = srv.Serve(ln) }()
			defer func() { _ = srv.Close(); _ = p.Close() }()
			rc := newRawClient(b, ln.Addr().String())
			defer rc.close()
			if code, err := rc.do(); err != nil || code != 200 {
				b.Fatalf("status %d, %v", code, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if code, err := rc.do(); err != nil || code != 200 {
					b.Fatalf("status %d, %v", code, err)
				}
			}
		})
	}
}

// BenchmarkSelectHit: the sticky part alone (Host, client IP, key, Touch,
// replica lookup): what tether adds to a plain reverse proxy.
func BenchmarkSelectHit(b *testing.B) {
	be, stop := benchBackend(b)
	defer stop()
	p := benchProxy(b, be)
	defer p.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://bench.example:8080/", nil)
	req.RemoteAddr = "192.0.2.1:5555"
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		host, _ := NormalizeHost(req.Host)
		pl := p.table.Load().route(host)
		peer, _ := peerAddr(req.RemoteAddr)
		k, _ := stickydb.NewKey(ClientIP(peer, req.Header["X-Forwarded-For"], nil, p.trusted), host)
		if be, _ := p.choose(context.Background(), pl, k, now); be == nil {
			b.Fatal("no backend")
		}
	}
}

// BenchmarkEndToEnd: requests/s through real loopback listeners, same
// load for each target in the same run: direct to the replica, through a
// minimal httputil.ReverseProxy, through tether, and through HAProxy with
// a source-IP stick table when haproxy is installed. Clients keep their
// connections alive and come from 64 distinct source addresses.
// Compare ns/op (lower is better) or the req/s metric.
func BenchmarkEndToEnd(b *testing.B) {
	be, stop := benchBackend(b)
	defer stop()
	targets := []struct {
		name  string
		start func(b *testing.B) (string, func())
	}{
		{"direct", func(*testing.B) (string, func()) { return be, func() {} }},
		{"minimal", func(b *testing.B) (string, func()) { return minimalProxy(b, be) }},
		{"tether", func(b *testing.B) (string, func()) {
			p := benchProxy(b, be)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := p.NewServer()
			go func() { _ = srv.Serve(ln) }()
			return "http://" + ln.Addr().String(), func() { _ = srv.Close(); _ = p.Close() }
		}},
		{"tether-loop", func(b *testing.B) (string, func()) {
			p := benchProxy(b, be)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ls := NewLoopServer(p.NewServer())
			go func() { _ = ls.Serve(ln) }()
			return "http://" + ln.Addr().String(), func() { _ = ls.Close(); _ = p.Close() }
		}},
		{"haproxy", func(b *testing.B) (string, func()) { u, s, _ := startHAProxy(b, be); return u, s }},
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			target, stopT := tg.start(b)
			defer stopT()
			loadRun(b, target)
		})
	}
}

// loadRun sends b.N GETs from 64 keep-alive clients with distinct source
// addresses.
func loadRun(b *testing.B, target string) {
	const clients = 64
	var next atomic.Int64
	trs := make([]*http.Transport, clients)
	for i := range trs {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 30, 0, byte(i+1))}}
		trs[i] = &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, DisableCompression: true}
	}
	defer func() {
		for _, t := range trs {
			t.CloseIdleConnections()
		}
	}()
	req := func(tr *http.Transport) {
		r, _ := http.NewRequest(http.MethodGet, target+"/", nil)
		r.Host = "bench.example"
		res, err := tr.RoundTrip(r)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	for _, tr := range trs { // warm: connect and bind every client
		req(tr)
	}
	b.SetParallelism((clients + 1) / 2) // RunParallel starts SetParallelism*GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		tr := trs[int(next.Add(1)-1)%clients]
		for pb.Next() {
			req(tr)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// minimalProxy is the baseline of issue 3: httputil.ReverseProxy with a
// Rewrite and the default transport tuned only in its idle pool.
func minimalProxy(b *testing.B, backend string) (string, func()) {
	u, _ := url.Parse(backend)
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() }, Transport: tr}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close(); tr.CloseIdleConnections() }
}

// startHAProxy runs HAProxy in front of backend with a source-IP stick
// table (its sticky-session setup), one process, two threads.
func startHAProxy(b *testing.B, backend string) (string, func(), int) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		b.Skip("haproxy not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // HAProxy binds it; a race with another process is unlikely on loopback
	dir := b.TempDir()
	cfg := fmt.Sprintf(`global
  nbthread 2
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind %s
  default_backend be
backend be
  stick-table type ip size 1m expire 30m
  stick on src
  http-reuse always
  server a %s
`, addr, strings.TrimPrefix(backend, "http://"))
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", path, "-db")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatalf("haproxy did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, cmd.Process.Pid
}

// BenchmarkCompare is BenchmarkEndToEnd made robust to a shared machine:
// the targets take turns in short rounds (so a burst of load from other
// processes hits all of them alike), and the medians over the rounds are
// reported: req/s and p50/p99 latency per target, and tether's ratio to
// each. Run with -benchtime 1x; ROUNDS and ROUND_MS tune it.
func BenchmarkCompare(b *testing.B) {
	be, stop := benchBackend(b)
	defer stop()
	type target struct {
		name string
		url  string
		stop func()
		pid  int // a separate process whose CPU time per request is measured
	}
	var targets []target
	targets = append(targets, target{"direct", be, func() {}, 0})
	u, s := minimalProxy(b, be)
	targets = append(targets, target{"minimal", u, s, 0})
	p := benchProxy(b, be)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := p.NewServer()
	go func() { _ = srv.Serve(ln) }()
	targets = append(targets, target{"tether", "http://" + ln.Addr().String(), func() { _ = srv.Close(); _ = p.Close() }, 0})
	if u, s, pid, ok := startTetherBinary(b, be); ok {
		targets = append(targets, target{"tetherbin", u, s, pid})
	}
	if _, err := exec.LookPath("haproxy"); err == nil {
		u, s, pid := startHAProxy(b, be)
		targets = append(targets, target{"haproxy", u, s, pid})
	}
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	rounds, roundDur := envInt("ROUNDS", 7), time.Duration(envInt("ROUND_MS", 400))*time.Millisecond
	rps := map[string][]float64{}
	p50 := map[string][]float64{}
	p99 := map[string][]float64{}
	cpu := map[string][]float64{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for _, t := range targets {
				c0 := procCPU(t.pid)
				n, lat := loadFor(b, t.url, roundDur)
				if t.pid != 0 && n > 0 {
					cpu[t.name] = append(cpu[t.name], (procCPU(t.pid)-c0).Seconds()/n*1e6)
				}
				rps[t.name] = append(rps[t.name], n/roundDur.Seconds())
				p50[t.name] = append(p50[t.name], quantile(lat, 0.50))
				p99[t.name] = append(p99[t.name], quantile(lat, 0.99))
			}
		}
	}
	for _, t := range targets {
		b.ReportMetric(median(rps[t.name]), t.name+"_req/s")
		b.ReportMetric(median(p50[t.name])*1e3, t.name+"_p50_ms")
		b.ReportMetric(median(p99[t.name])*1e3, t.name+"_p99_ms")
		if cpu[t.name] != nil {
			b.ReportMetric(median(cpu[t.name]), t.name+"_cpu_us/req")
		}
	}
	for _, t := range targets {
		if t.name != "tether" && t.name != "tetherbin" {
			b.ReportMetric(median(rps["tether"])/median(rps[t.name]), "tether/"+t.name)
			if rps["tetherbin"] != nil {
				b.ReportMetric(median(rps["tetherbin"])/median(rps[t.name]), "tetherbin/"+t.name)
			}
		}
	}
}

// loadFor runs 64 keep-alive clients from distinct source addresses
// against target for d; it returns the requests done and their latencies
// in seconds.
func loadFor(b *testing.B, target string, d time.Duration) (float64, []float64) {
	const clients = 64
	type res struct {
		n   int
		lat []float64
	}
	out := make(chan res, clients)
	deadline := time.Now().Add(d)
	for i := 0; i < clients; i++ {
		go func(i int) {
			dl := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 31, 0, byte(i+1))}}
			tr := &http.Transport{DialContext: dl.DialContext, MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			r := res{lat: make([]float64, 0, 4096)}
			req, _ := http.NewRequest(http.MethodGet, target+"/", nil)
			req.Host = "bench.example"
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := tr.RoundTrip(req)
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.lat = append(r.lat, time.Since(t0).Seconds())
				r.n++
			}
			out <- r
		}(i)
	}
	var n int
	var lat []float64
	for i := 0; i < clients; i++ {
		r := <-out
		n += r.n
		lat = append(lat, r.lat...)
	}
	return float64(n), lat
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1))]
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// startTetherBinary builds cmd/tether and runs it as its own process in
// front of backend, as HAProxy runs: then the proxy does not share a Go
// runtime (scheduler, GC) with the load generator. ok is false when the
// build fails (the comparison then goes without it).
func startTetherBinary(b *testing.B, backend string) (string, func(), int, bool) {
	bin := filepath.Join(b.TempDir(), "tether")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/tether").CombinedOutput(); err != nil {
		b.Logf("no tether binary: %v\n%s", err, out)
		return "", nil, 0, false
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--admin-listen", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = []string{"TETHER_BACKENDS=a=" + backend, "TETHER_NODE_NAME=bench", "GOMAXPROCS=2"}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatalf("tether did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, cmd.Process.Pid, true
}

// procCPU returns the user+system CPU time of process pid so far (0 for
// pid 0 or when /proc cannot tell). CPU per request is the fair measure on
// a machine shared with other work: it does not depend on the share of the
// cores the process got.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := procstat.CPUTime(pid)
	return d
}
