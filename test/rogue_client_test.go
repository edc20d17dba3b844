package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/test/fleet"
)

// recorder is a demo replica that remembers every request it was sent:
// the tests judge what reached the replica, not only what tether answered.
type recorder struct {
	*demobackend.Server
	url string

	mu   sync.Mutex
	reqs []seen
}

type seen struct {
	method, path, xff string
	body              int
}

func startRecorder(t *testing.T, name string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{Server: demobackend.New(name), url: "http://" + ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		n, _ := io.Copy(io.Discard, q.Body)
		if q.URL.Path != "/healthz" {
			r.mu.Lock()
			r.reqs = append(r.reqs, seen{q.Method, q.URL.Path, strings.Join(q.Header.Values("X-Forwarded-For"), ","), int(n)})
			r.mu.Unlock()
		}
		r.Server.ServeHTTP(w, q)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *recorder) paths() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

// rawConn dials the proxy from a chosen loopback source address.
func rawConn(t *testing.T, src netip.Addr, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange writes raw bytes and reads every response until the server
// closes the connection or goes quiet for a second. It returns the status
// codes in order and whether the server closed the connection.
func exchange(t *testing.T, c net.Conn, raw string) (codes []int, closed bool) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return codes, false
			}
			return codes, true // EOF or reset: closed
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

// TestRogueClients (issue 8): hostile clients against a 2-node fleet of
// real processes, judged at the replica (a recording demo backend) and
// through the admin API. node0 trusts nobody; node1 trusts 127.65.0.0/16
// (the control for the forwarding headers). Both cap their binding
// tables at 500 (TETHER_MAX_BINDINGS).
func TestRogueClients(t *testing.T) {
	rec := startRecorder(t, "a")
	f := fleet.StartEach(t, bin, 2, fleet.Options{Backends: "a=" + rec.url,
		Env: map[string]string{"TETHER_MAX_BINDINGS": "500"}},
		func(i int) map[string]string {
			if i == 1 {
				return map[string]string{"TETHER_TRUSTED_PROXIES": "127.65.0.0/16"}
			}
			return nil
		})
	untrusted, trusted := f.Nodes[0], f.Nodes[1]
	ctx := ctxTimeout(t, 3*time.Minute)

	bindingOf := func(n *fleet.Node, client string) (int, string) {
		var b struct {
			Replica string `json:"replica"`
		}
		code, body, err := n.Get("/api/v1/bindings/" + appHost + "/" + client)
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusOK {
			_ = json.Unmarshal(body, &b)
		}
		return code, b.Replica
	}

	t.Run("spoofed X-Forwarded-For", func(t *testing.T) {
		cases := []struct {
			name, header, value string
		}{
			{"xff", "X-Forwarded-For", "203.0.113.1"},
			{"xff chain", "X-Forwarded-For", "203.0.113.2, 198.51.100.2"},
			{"forwarded", "Forwarded", "for=203.0.113.3"},
			{"garbage", "X-Forwarded-For", "not-an-ip, 999.1.1.1"},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				src := fleet.ClientAddr(60_000 + i)
				c := rawConn(t, src, untrusted.Proxy)
				before := len(rec.paths())
				codes, _ := exchange(t, c, fmt.Sprintf("GET /spoof-%d HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nConnection: close\r\n\r\n", i, appHost, tc.header, tc.value))
				if len(codes) != 1 || codes[0] != http.StatusOK {
					t.Fatalf("answers %v", codes)
				}
				if code, _ := bindingOf(untrusted, src.String()); code != http.StatusOK {
					t.Fatalf("no binding under the TCP peer %s (%d)", src, code)
				}
				for _, spoof := range []string{"203.0.113.1", "203.0.113.2", "198.51.100.2", "203.0.113.3"} {
					if code, _ := bindingOf(untrusted, spoof); code != http.StatusNotFound {
						t.Fatalf("a binding under the spoofed %s (%d)", spoof, code)
					}
				}
				got := rec.paths()[before:]
				if len(got) != 1 || got[0].xff != src.String() {
					t.Fatalf("the replica saw %+v, want one request with X-Forwarded-For %s only", got, src)
				}
			})
		}
		// Control: the same header from a trusted proxy is believed, so the
		// checks above could fail.
		proxyAddr := netip.MustParseAddr("127.65.0.7")
		c := rawConn(t, proxyAddr, trusted.Proxy)
		codes, _ := exchange(t, c, "GET / HTTP/1.1\r\nHost: "+appHost+"\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
		if len(codes) != 1 || codes[0] != http.StatusOK {
			t.Fatalf("control answers %v", codes)
		}
		if code, _ := bindingOf(trusted, "203.0.113.9"); code != http.StatusOK {
			t.Fatalf("control: a trusted proxy's X-Forwarded-For was not believed (%d)", code)
		}
	})

	t.Run("request smuggling", func(t *testing.T) {
		smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + appHost + "\r\n\r\n"
		cases := []struct{ name, raw string }{
			{"CL.TE", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
			{"TE.CL", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
				fmt.Sprintf("%x", len(smuggled)) + "\r\n" + smuggled + "\r\n0\r\n\r\n"},
			{"two lengths", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n" + smuggled},
			{"TE with space before colon", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n" + smuggled},
			{"TE obfuscated", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nTransfer-Encoding: xchunked\r\nContent-Length: 0\r\n\r\n" + smuggled},
			{"TE list", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled},
			{"TE twice", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled},
			{"TE folded", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 0\r\n\r\n" + smuggled},
			{"CL signed", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nContent-Length: +44\r\n\r\n" + smuggled},
			{"bare LF chunk", "POST /front HTTP/1.1\r\nHost: " + appHost + "\r\nTransfer-Encoding: chunked\r\n\r\n0\n\n" + smuggled},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := rawConn(t, fleet.ClientAddr(61_000+i), untrusted.Proxy)
				before := len(rec.paths())
				codes, closed := exchange(t, c, tc.raw)
				for _, s := range rec.paths()[before:] {
					if s.path == "/smuggled" {
						t.Fatalf("the smuggled request reached the replica (answers %v)", codes)
					}
				}
				// Either refused, or served as one request and the
				// connection closed (RFC 9112 6.3): never a second answer.
				switch {
				case len(codes) == 1 && codes[0] >= 400 && codes[0] < 500 || len(codes) == 1 && codes[0] == 501:
				case len(codes) == 1 && closed:
				case len(codes) == 0 && closed:
				default:
					t.Fatalf("answers %v (closed %v): want one refusal or one answer and a closed connection", codes, closed)
				}
				t.Logf("answers %v, closed %v", codes, closed)
			})
		}
	})

	t.Run("oversized headers", func(t *testing.T) {
		c := rawConn(t, fleet.ClientAddr(62_000), untrusted.Proxy)
		big := strings.Repeat("x", 70<<10)
		codes, _ := exchange(t, c, "GET / HTTP/1.1\r\nHost: "+appHost+"\r\nX-Big: "+big+"\r\n\r\n")
		if len(codes) != 1 || codes[0] != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("answers %v, want 431", codes)
		}
	})

	t.Run("invalid hosts", func(t *testing.T) {
		hosts := []string{
			"Host: \r\n", "Host: bad host\r\n", "Host: a..b\r\n", "Host: .\r\n", "Host: a/b\r\n",
			"Host: shop.test:99999\r\n", "Host: [::1\r\n", "Host: " + strings.Repeat("a", 254) + "\r\n",
			"Host: shop.test\r\nHost: other.test\r\n", "Host: sh\x01op.test\r\n", "Host: shop.test@evil\r\n", "",
		}
		for i, h := range hosts {
			c := rawConn(t, fleet.ClientAddr(63_000+i), untrusted.Proxy)
			before := len(rec.paths())
			codes, _ := exchange(t, c, "GET /badhost HTTP/1.1\r\n"+h+"Connection: close\r\n\r\n")
			if len(codes) != 1 || codes[0] != http.StatusBadRequest {
				t.Errorf("%q: answers %v, want 400", h, codes)
			}
			if got := rec.paths()[before:]; len(got) != 0 {
				t.Errorf("%q reached the replica: %+v", h, got)
			}
		}
	})

	t.Run("slowloris", func(t *testing.T) {
		// 30 connections each send a header line a second and never end
		// the request: ReadHeaderTimeout (10 s) must cut every one, and
		// honest clients must be served meanwhile.
		const conns = 30
		type result struct {
			lasted time.Duration
			err    error
		}
		results := make(chan result, conns)
		start := time.Now()
		for i := 0; i < conns; i++ {
			c := rawConn(t, fleet.ClientAddr(64_000+i), untrusted.Proxy)
			go func() {
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+appHost+"\r\n"); err != nil {
					results <- result{0, err}
					return
				}
				buf := make([]byte, 1)
				for k := 0; k < 30; k++ {
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					if _, err := c.Read(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
						results <- result{time.Since(start), nil} // closed by the server
						return
					}
					if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", k); err != nil {
						results <- result{time.Since(start), nil}
						return
					}
				}
				results <- result{time.Since(start), errors.New("still open after 30 s")}
			}()
		}
		honest := newClients(t, 20, 65_000, false)
		if err := honest.each(4, func(i int, c *fleet.Client) error {
			_, err := c.Backend(ctx, untrusted.Proxy, appHost)
			return err
		}); err != nil {
			t.Fatalf("an honest client was not served during the slowloris: %v", err)
		}
		var longest time.Duration
		for i := 0; i < conns; i++ {
			r := <-results
			if r.err != nil {
				t.Fatalf("slow connection: %v", r.err)
			}
			longest = max(longest, r.lasted)
		}
		if longest < 9*time.Second || longest > 15*time.Second {
			t.Fatalf("slow connections cut after up to %v, want about ReadHeaderTimeout (10 s)", longest)
		}
		t.Logf("%d slow connections cut within %v", conns, longest.Round(100*time.Millisecond))
	})

	t.Run("flood of source addresses", func(t *testing.T) {
		const cap, flood = 500, 2000
		// Clients bound before the flood: eviction takes the flood's newest
		// binding before an older one, so they must all keep their replica.
		settled := newClients(t, 30, 90_000, false)
		want := make([]string, len(settled.c))
		if err := settled.each(8, func(i int, c *fleet.Client) error {
			var err error
			want[i], err = c.Backend(ctx, untrusted.Proxy, appHost)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		evict0 := metricSum(t, untrusted, "tether_binding_evictions_total")
		cs := newClients(t, flood, 100_000, false)
		if err := cs.each(32, func(i int, c *fleet.Client) error {
			_, err := c.Backend(ctx, untrusted.Proxy, appHost)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Nodes {
			waitFor(t, 20*time.Second, func() bool {
				return metricSum(t, n, "tether_binding_evictions_total") >= flood-cap
			}, func() string {
				return fmt.Sprintf("%s: %v evictions counted in /metrics, %v bindings held", n.Name,
					metricSum(t, n, "tether_binding_evictions_total"), metricSum(t, n, "tether_bindings_held"))
			})
			held := metricSum(t, n, "tether_bindings_held")
			t.Logf("%s: %v bindings held, %v evictions", n.Name, held, metricSum(t, n, "tether_binding_evictions_total"))
			if held > cap {
				t.Errorf("%s holds %v bindings, over the cap of %d", n.Name, held, cap)
			}
		}
		if d := metricSum(t, untrusted, "tether_binding_evictions_total") - evict0; d < flood-cap {
			t.Errorf("node0 counted %v evictions for %d clients over a cap of %d", d, flood, cap)
		}
		for _, n := range f.Nodes {
			lost := 0
			for i, c := range settled.c {
				if code, replica := bindingOf(n, c.Addr.String()); code != http.StatusOK || replica != want[i] {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("%s: %d of %d clients bound before the flood lost their binding", n.Name, lost, len(settled.c))
			}
		}
		for i, c := range settled.c {
			if got, err := c.Backend(ctx, untrusted.Proxy, appHost); err != nil || got != want[i] {
				t.Errorf("client %s bound before the flood: sent to %q (%v), was %q", c.Addr, got, err, want[i])
			}
		}
	})
}
