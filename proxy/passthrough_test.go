package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serveOn runs h on a fresh loopback listener and returns its URL.
func serveOn(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func poolAt(t *testing.T, name string, urls map[string]string) Pool {
	t.Helper()
	p := Pool{Name: name, Health: HealthCheck{Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1}} // TCP checks
	for n, raw := range urls {
		u, err := ParseBackendURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		p.Backends = append(p.Backends, Backend{Name: n, URL: u, Weight: 1})
	}
	return p
}

// Trusted peers' X-Forwarded-For is believed (right-most untrusted
// address keys the binding and is passed on); an untrusted peer's is
// replaced by the peer's address.
func TestForwardedFor(t *testing.T) {
	echo := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s host=%s xfh=%s", strings.Join(r.Header.Values("X-Forwarded-For"), "|"), r.Host, r.Header.Get("X-Forwarded-Host"))
	}))
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"e": echo})}}, func(c *Config) {
		c.TrustedProxies = Trusted{netip.MustParsePrefix("127.0.0.2/32")}
	})
	do := func(from, xff string) string {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/", nil)
		req.Host = "Fwd.Example:81"
		req.Header.Set("X-Forwarded-For", xff)
		res, err := clientFrom(t, from).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return readAll(res)
	}
	if got := do("127.0.0.2", "6.6.6.6, 203.0.113.7"); got != "xff=6.6.6.6, 203.0.113.7, 127.0.0.2 host=Fwd.Example:81 xfh=Fwd.Example:81" {
		t.Fatalf("trusted: %q", got)
	}
	if b := r.binding("203.0.113.7", "fwd.example"); b.Replica != "e" {
		t.Fatalf("trusted: binding %+v", b)
	}
	if got := do("127.0.0.3", "203.0.113.8"); got != "xff=127.0.0.3 host=Fwd.Example:81 xfh=Fwd.Example:81" {
		t.Fatalf("untrusted: %q", got)
	}
	r.binding("127.0.0.3", "fwd.example")
	k, _ := mkKey("203.0.113.8", "fwd.example")
	if _, ok := r.db.Lookup(k); ok {
		t.Fatal("an untrusted client's X-Forwarded-For made a binding")
	}
}

// WebSocket upgrades pass through: an echo round trip through the proxy.
func TestWebSocketEcho(t *testing.T) {
	ws := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"w": ws})}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/ws", &websocket.DialOptions{HTTPClient: clientFrom(t, "127.0.0.5")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("got %q", got)
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	if b := r.binding("127.0.0.5", r.url[len("http://"):strings.LastIndexByte(r.url, ':')]); b.Replica != "w" {
		t.Fatalf("binding %+v", b)
	}
}

// A streamed response reaches the client chunk by chunk: the replica waits
// for the client to see the first chunk before it sends the second.
func TestStreamingFlushes(t *testing.T) { eachForwarding(t, testStreamingFlushes) }

func testStreamingFlushes(t *testing.T, fw string) {
	seen := make(chan struct{})
	stream := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-seen:
		case <-time.After(5 * time.Second):
			return // the proxy held the first chunk back
		}
		fmt.Fprint(w, "data: two\n\n")
	}))
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"s": stream})}}, withForwarding(fw, nil))
	req, _ := http.NewRequest(http.MethodGet, r.url+"/events", nil)
	res, err := clientFrom(t, "127.0.0.6").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first chunk: %q %v", line, err)
	}
	close(seen)
	rest, _ := br.ReadString(0)
	if rest != "\ndata: two\n\n" {
		t.Fatalf("rest: %q", rest)
	}
}

// A replica that fails before its response: 502; one too slow to send
// headers: 504. Short plain-text bodies; metrics count them.
func TestBackendFailureStatuses(t *testing.T) { eachForwarding(t, testBackendFailureStatuses) }

func testBackendFailureStatuses(t *testing.T, fw string) {
	hang := make(chan struct{})
	defer close(hang)
	bad := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/drop":
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		case "/cut":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("0123456789"))
			w.(http.Flusher).Flush()
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		case "/slow":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
	}))
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"bad": bad})}}, withForwarding(fw, func(c *Config) {
		c.ResponseHeaderTimeout = 200 * time.Millisecond
	}))
	c := clientFrom(t, "127.0.0.7")
	if code, _, body := r.get(c, "f.example", "/drop"); code != http.StatusBadGateway || body != "tether: backend failed\n" {
		t.Fatalf("dropped: %d %q", code, body)
	}
	if code, _, body := r.get(c, "f.example", "/slow"); code != http.StatusGatewayTimeout || body != "tether: backend timed out\n" {
		t.Fatalf("slow: %d %q", code, body)
	}
	// Cut off after the headers: the client's connection is aborted (the
	// only signal left), and nothing stays counted as in flight. A fresh
	// connection, or the client would resend the GET on a new one.
	req, _ := http.NewRequest(http.MethodGet, r.url+"/cut", nil)
	req.Host = "f.example"
	if res, err := clientFrom(t, "127.0.0.77").Do(req); err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Fatal("a cut-off response reached the client whole")
		}
	}
	waitFor(t, "in-flight back to 0", 5*time.Second, func() bool { return r.status(DefaultPool, "bad").InFlight == 0 })
	if s := r.status(DefaultPool, "bad"); !s.Healthy {
		t.Fatal("a replica that accepts connections was marked down")
	}
	if n := testutil.ToFloat64(r.p.m.requests.WithLabelValues(DefaultPool, "bad", "5xx")); n != 3 {
		t.Fatalf("5xx count %v, want 3", n)
	}
}

func TestMetrics(t *testing.T) {
	bs := startBackends(t, "a")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, []string{"m.example"}, bs, "a")}}, nil)
	c := clientFrom(t, "127.0.0.8")
	for i := 0; i < 3; i++ {
		r.get(c, "m.example", "/")
	}
	r.p.Reload(Routes{Pools: []Pool{poolOf(t, "other", []string{"o.example"}, bs, "a")}})
	r.get(c, "m.example", "/") // now 404
	want := map[string]float64{
		`tether_proxy_requests_total{backend="",class="4xx",pool=""}`: 1,
		`tether_proxy_selections_total{outcome="bind"}`:               1,
		`tether_proxy_selections_total{outcome="hit"}`:                2,
	}
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var sawHealth, sawLatency, staleA bool
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			if m.Counter != nil {
				got[key] = m.GetCounter().GetValue()
			}
			switch mf.GetName() {
			case "tether_proxy_backend_healthy":
				sawHealth = sawHealth || m.GetGauge().GetValue() == 1
			case "tether_proxy_request_duration_seconds":
				sawLatency = sawLatency || m.GetHistogram().GetSampleCount() > 0
			case "tether_proxy_requests_total":
				staleA = staleA || strings.Contains(key, `pool="default"`)
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if !sawHealth || staleA {
		t.Errorf("health gauge seen %v; series of the removed pool kept %v", sawHealth, staleA)
	}
	_ = sawLatency // the removed backend's histogram went with it
}

// A replica kept by name with a new URL: its client stays bound (the name
// did not change), requests go to the new URL, and its metric series live on.
func TestReloadURLChange(t *testing.T) {
	bs := startBackends(t, "one", "two")
	pl := poolOf(t, DefaultPool, nil, bs, "one")
	r := newRig(t, Routes{Pools: []Pool{pl}}, nil)
	c := clientFrom(t, "127.0.0.10")
	if _, be, _ := r.get(c, "u.example", "/"); be != "one" {
		t.Fatalf("served by %q", be)
	}
	g0 := r.binding("127.0.0.10", "u.example").Generation
	pl2 := poolOf(t, DefaultPool, nil, bs, "two")
	pl2.Backends[0].Name = "one" // same replica name, new address
	if err := r.p.Reload(Routes{Pools: []Pool{pl2}}); err != nil {
		t.Fatal(err)
	}
	if _, be, _ := r.get(c, "u.example", "/"); be != "two" {
		t.Fatalf("after the URL change served by %q", be)
	}
	if b := r.binding("127.0.0.10", "u.example"); b.Replica != "one" || b.Generation != g0 {
		t.Fatalf("binding %+v", b)
	}
	mfs, _ := r.reg.Gather()
	var got float64
	for _, mf := range mfs {
		if mf.GetName() != "tether_proxy_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			if ls["backend"] == "one" && ls["class"] == "2xx" {
				got = m.GetCounter().GetValue()
			}
		}
	}
	if got != 2 {
		t.Fatalf("exported 2xx count of replica one = %v, want 2", got)
	}
}
