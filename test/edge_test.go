package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/tetherproxy/tether/internal/testcert"
	"github.com/tetherproxy/tether/test/fleet"
)

// echoBackends start replicas that answer with what they saw: X-Backend
// (their name), X-Seen-Proto, X-Seen-Xff and X-Seen-Host.
func echoBackends(t *testing.T, names ...string) string {
	t.Helper()
	var spec []string
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-Backend", name)
			h.Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
			h.Set("X-Seen-Xff", r.Header.Get("X-Forwarded-For"))
			h.Set("X-Seen-Host", r.Host)
			_, _ = io.WriteString(w, "hello from "+name+"\n")
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		spec = append(spec, name+"=http://"+ln.Addr().String())
	}
	return strings.Join(spec, ",")
}

// edgeSite is a TLS setup on disk: a CA, the default pair and two SNI
// pairs listed in a routes file.
type edgeSite struct {
	dir, routes string
	ca          *testcert.CA
	def, a      [2]string // cert, key
}

func newEdgeSite(t *testing.T) *edgeSite {
	t.Helper()
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	s := &edgeSite{dir: t.TempDir(), ca: ca}
	s.def = s.write(t, "default", "default.test", "127.0.0.1")
	s.a = s.write(t, "a", "a.example")
	s.write(t, "wild", "*.wild.example")
	s.routes = filepath.Join(s.dir, "routes.yaml")
	routes := "tls:\n  - {cert: a.pem, key: a.key}\n  - {cert: wild.pem, key: wild.key}\n"
	if err := os.WriteFile(s.routes, []byte(routes), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "ca.pem"), ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *edgeSite) write(t *testing.T, base string, names ...string) [2]string {
	t.Helper()
	c, k, err := s.ca.Write(s.dir, base, names, time.Now().Add(60*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return [2]string{c, k}
}

func (s *edgeSite) env(tlsAddr string) map[string]string {
	return map[string]string{
		"TETHER_TLS_LISTEN": tlsAddr, "TETHER_TLS_CERT": s.def[0], "TETHER_TLS_KEY": s.def[1],
		"TETHER_ROUTES_FILE": s.routes,
	}
}

// dialFrom dials addr from a given loopback source address.
func dialFrom(src netip.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	return d.DialContext
}

// httpsClient is an HTTP/2 (h2 true) or HTTP/1.1 client over TLS from src.
func (s *edgeSite) httpsClient(t *testing.T, src netip.Addr, h2 bool) *http.Client {
	tr := &http.Transport{DialContext: dialFrom(src), ForceAttemptHTTP2: h2,
		TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool}}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, url, host string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func servedCert(t *testing.T, addr, sni string) (names []string, serial string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake %q: %v", sni, err)
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	return leaf.DNSNames, leaf.SerialNumber.String()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// balancer is the trusted source address PROXY headers come from.
var balancer = netip.MustParseAddr("127.0.0.9")

// proxied sends one HTTP/1.1 request over a connection from src that
// starts with a PROXY header naming client (v1 or v2), optionally inside
// TLS, and returns the response (nil if the connection was closed).
func proxied(t *testing.T, src netip.Addr, addr string, version byte, client string, tlsName string, ca *testcert.CA) (*http.Response, error) {
	t.Helper()
	c, err := dialFrom(src)(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if client != "" {
		ap := netip.MustParseAddrPort(client)
		dst := netip.MustParseAddrPort(addr)
		h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(ap), net.TCPAddrFromAddrPort(dst))
		if _, err := h.WriteTo(c); err != nil {
			return nil, err
		}
	}
	var rw net.Conn = c
	if tlsName != "" {
		tc := tls.Client(c, &tls.Config{ServerName: tlsName, RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		rw = tc
	}
	if _, err := fmt.Fprintf(rw, "GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), nil)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// One node with a TLS listener, SNI certificates from the routes file,
// the PROXY protocol on both listeners and an access log file.
func TestEdgeNode(t *testing.T) {
	site := newEdgeSite(t)
	tlsAddr := fleet.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	env := site.env(tlsAddr)
	env["TETHER_PROXY_PROTOCOL"] = "on"
	env["TETHER_TRUSTED_PROXIES"] = balancer.String() + "/32"
	env["TETHER_ACCESS_LOG"] = logPath
	f := fleet.StartEach(t, bin, 1, fleet.Options{Backends: echoBackends(t, "r1", "r2", "r3", "r4"), Env: env}, nil)
	n := f.Nodes[0]
	httpsURL := "https://" + tlsAddr + "/"

	t.Run("sni", func(t *testing.T) {
		for sni, want := range map[string]string{"a.example": "a.example", "x.wild.example": "*.wild.example", "other.test": "default.test", "": "default.test"} {
			if got, _ := servedCert(t, tlsAddr, sni); got[0] != want {
				t.Errorf("SNI %q: served %v, want %s", sni, got, want)
			}
		}
		// The admin lists each certificate's names and expiry.
		var certs struct {
			Certificates []struct {
				Names    []string
				Default  bool
				DaysLeft int `json:"days_left"`
			}
		}
		if err := n.JSON("/api/v1/certificates", &certs); err != nil {
			t.Fatal(err)
		}
		if c := certs.Certificates; len(c) != 3 || !c[0].Default || c[1].Names[0] != "a.example" || c[2].Names[0] != "*.wild.example" || c[1].DaysLeft != 59 {
			t.Fatalf("admin certificates: %+v", c)
		}
		code, page, err := n.Get("/")
		if err != nil || code != 200 || !bytes.Contains(page, []byte("*.wild.example")) {
			t.Fatalf("overview: %d %v, certificates missing", code, err)
		}
	})

	t.Run("curl http2", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Fatal("curl is needed (apt-get install curl)")
		}
		_, port, _ := net.SplitHostPort(tlsAddr)
		out, err := exec.Command("curl", "--http2", "-sS", "--max-time", "20", "--cacert", filepath.Join(site.dir, "ca.pem"),
			"--resolve", "a.example:"+port+":127.0.0.1", "-D", "-", "-o", "/dev/null",
			"https://a.example:"+port+"/some/path?q=1").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		s := strings.ToLower(string(out))
		for _, want := range []string{"http/2 200", "x-seen-proto: https", "x-seen-host: a.example:" + port, "x-backend: r"} {
			if !strings.Contains(s, want) {
				t.Fatalf("curl response lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("one replica over h1, https and h2", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 12; i++ {
			src := netip.AddrFrom4([4]byte{127, 64, 12, byte(1 + i)})
			plain := &http.Client{Transport: &http.Transport{DialContext: dialFrom(src)}, Timeout: 20 * time.Second}
			var got []string
			for _, tc := range []struct {
				c     *http.Client
				url   string
				proto string
			}{{plain, "http://" + n.Proxy + "/", "HTTP/1.1"}, {site.httpsClient(t, src, false), httpsURL, "HTTP/1.1"}, {site.httpsClient(t, src, true), httpsURL, "HTTP/2.0"}} {
				resp := get(t, tc.c, tc.url, appHost)
				if resp.StatusCode != 200 || resp.Proto != tc.proto {
					t.Fatalf("%s: %d over %s, want 200 over %s", tc.url, resp.StatusCode, resp.Proto, tc.proto)
				}
				if want := map[bool]string{true: "https", false: "http"}[strings.HasPrefix(tc.url, "https")]; resp.Header.Get("X-Seen-Proto") != want {
					t.Fatalf("%s: backend saw X-Forwarded-Proto %q", tc.url, resp.Header.Get("X-Seen-Proto"))
				}
				if resp.Header.Get("X-Seen-Host") != appHost || resp.Header.Get("X-Seen-Xff") != src.String() {
					t.Fatalf("backend saw Host %q, XFF %q", resp.Header.Get("X-Seen-Host"), resp.Header.Get("X-Seen-Xff"))
				}
				got = append(got, resp.Header.Get("X-Backend"))
			}
			plain.CloseIdleConnections()
			if got[0] != got[1] || got[1] != got[2] {
				t.Fatalf("client %s reached %v over h1, https, h2", src, got)
			}
			seen[got[0]] = true
		}
		if len(seen) < 2 {
			t.Fatalf("12 clients all on %v: stickiness is not by client", seen)
		}
	})

	t.Run("proxy protocol", func(t *testing.T) {
		for _, tc := range []struct {
			name, addr string
			version    byte
			client     string
			sni        string
		}{
			{"v1 plain", n.Proxy, 1, "203.0.113.7:40000", ""},
			{"v2 plain", n.Proxy, 2, "[2001:db8:7:7::1]:40000", ""},
			{"v1 tls", tlsAddr, 1, "203.0.113.8:40000", "a.example"},
			{"v2 tls", tlsAddr, 2, "198.51.100.9:40000", "a.example"},
		} {
			resp, err := proxied(t, balancer, tc.addr, tc.version, tc.client, tc.sni, site.ca)
			if err != nil {
				t.Fatalf("%s from the trusted balancer: %v", tc.name, err)
			}
			want := netip.MustParseAddrPort(tc.client).Addr().String()
			if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Xff") != want {
				t.Fatalf("%s: %d, backend saw client %q, want %s", tc.name, resp.StatusCode, resp.Header.Get("X-Seen-Xff"), want)
			}
			var page struct {
				Bindings []struct{ Client, Host, Replica string }
			}
			if err := n.JSON("/api/v1/bindings?client="+want+"&host="+appHost, &page); err != nil {
				t.Fatal(err)
			}
			key := want
			if strings.Contains(want, ":") {
				key = "2001:db8:7:7::" // the /64 (TETHER_CLIENT_PREFIX default)
			}
			if len(page.Bindings) != 1 || page.Bindings[0].Client != key || page.Bindings[0].Replica != resp.Header.Get("X-Backend") {
				t.Fatalf("%s: binding %+v, want client %s on %s", tc.name, page.Bindings, key, resp.Header.Get("X-Backend"))
			}
		}
		// Refused: a header from an untrusted source, and no header from
		// the trusted one.
		untrusted := netip.MustParseAddr("127.64.99.1")
		for _, tc := range []struct {
			name   string
			src    netip.Addr
			addr   string
			client string
			sni    string
		}{
			{"untrusted header plain", untrusted, n.Proxy, "203.0.113.66:1", ""},
			{"untrusted header tls", untrusted, tlsAddr, "203.0.113.66:1", "a.example"},
			{"trusted without header", balancer, n.Proxy, "", ""},
			{"trusted without header tls", balancer, tlsAddr, "", "a.example"},
		} {
			if resp, err := proxied(t, tc.src, tc.addr, 2, tc.client, tc.sni, site.ca); err == nil {
				t.Fatalf("%s: served (%d, client %q); want the connection closed", tc.name, resp.StatusCode, resp.Header.Get("X-Seen-Xff"))
			}
		}
		// An untrusted client without a header is an ordinary client.
		if resp, err := proxied(t, untrusted, n.Proxy, 0, "", "", nil); err != nil || resp.Header.Get("X-Seen-Xff") != untrusted.String() {
			t.Fatalf("plain client from an untrusted address: %v %v", resp, err)
		}
	})

	t.Run("prefix keys", func(t *testing.T) {
		// Privacy addresses rotating inside one /64 keep their replica.
		var first string
		for i, c := range []string{"[2001:db8:1:2::1]:1", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:2", "[2001:db8:1:2:ffff::9]:3"} {
			resp, err := proxied(t, balancer, n.Proxy, 2, c, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = resp.Header.Get("X-Backend")
			} else if got := resp.Header.Get("X-Backend"); got != first {
				t.Fatalf("%s reached %s, its /64 is on %s", c, got, first)
			}
		}
		// The admin finds the binding by any address of the prefix.
		var page struct {
			Bindings []struct{ Client, Replica string }
		}
		if err := n.JSON("/api/v1/bindings?client=2001:db8:1:2:1234::5&host="+appHost, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Bindings) != 1 || page.Bindings[0].Client != "2001:db8:1:2::" || page.Bindings[0].Replica != first {
			t.Fatalf("search by an address in the /64: %+v", page.Bindings)
		}
		code, body, err := n.Get("/api/v1/bindings/" + appHost + "/2001:db8:1:2:9::9")
		if err != nil || code != 200 || !strings.Contains(string(body), first) {
			t.Fatalf("lookup by an address in the /64: %d %s %v", code, body, err)
		}
	})

	t.Run("access log", func(t *testing.T) {
		h2 := site.httpsClient(t, netip.MustParseAddr("127.64.13.1"), true)
		get(t, h2, httpsURL+"logged?x=1", appHost)
		var line map[string]any
		waitUntil(t, "the HTTP/2 request in the access log", func() bool {
			line = findLine(t, logPath, func(m map[string]any) bool { return m["uri"] == "/logged?x=1" })
			return line != nil
		})
		for _, k := range []string{"time", "node", "client", "peer", "host", "method", "uri", "proto", "tls", "sni", "status",
			"bytes_in", "bytes_out", "duration_ms", "pool", "backend", "binding"} {
			if _, ok := line[k]; !ok {
				t.Fatalf("access log line lacks %q: %v", k, line)
			}
		}
		if line["proto"] != "HTTP/2.0" || line["client"] != "127.64.13.1" || line["node"] != n.Name || line["tls"] != "1.3" ||
			line["status"] != float64(200) || line["binding"] != "new" || line["bytes_out"].(float64) <= 0 {
			t.Fatalf("access log line: %v", line)
		}
		// PROXY: the client from the header, the balancer as the peer.
		if _, err := proxied(t, balancer, tlsAddr, 2, "192.0.2.44:5", "a.example", site.ca); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the proxied request in the access log", func() bool {
			line = findLine(t, logPath, func(m map[string]any) bool { return m["client"] == "192.0.2.44" })
			return line != nil
		})
		if !strings.HasPrefix(line["peer"].(string), balancer.String()+":") || line["sni"] != "a.example" {
			t.Fatalf("proxied line: %v", line)
		}
		// logrotate: move the file, SIGUSR1, the next lines go to a new file.
		if err := os.Rename(logPath, logPath+".1"); err != nil {
			t.Fatal(err)
		}
		if err := n.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a new access log file after SIGUSR1", func() bool {
			get(t, h2, httpsURL+"after-reopen", appHost)
			return findLine(t, logPath, func(m map[string]any) bool { return m["uri"] == "/after-reopen" }) != nil
		})
	})

	t.Run("certificate reload", func(t *testing.T) {
		h2 := site.httpsClient(t, netip.MustParseAddr("127.64.14.1"), true)
		var conns []net.Conn
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { conns = append(conns, i.Conn) }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://a.example/", nil)
		h2.Transport.(*http.Transport).DialTLSContext = nil
		h2.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialFrom(netip.MustParseAddr("127.64.14.1"))(ctx, network, tlsAddr)
		}
		do := func() {
			resp, err := h2.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("proto %s", resp.Proto)
			}
		}
		do()
		_, before := servedCert(t, tlsAddr, "a.example")
		site.write(t, "a", "a.example", "new.a.example") // swapped on disk (rename)
		waitUntil(t, "the new certificate on new handshakes", func() bool {
			names, _ := servedCert(t, tlsAddr, "a.example")
			return len(names) == 2
		})
		do()
		if len(conns) != 2 || conns[0] != conns[1] {
			t.Fatal("the HTTP/2 connection opened before the swap did not carry on")
		}
		_, good := servedCert(t, tlsAddr, "a.example")
		if good == before {
			t.Fatal("serial unchanged")
		}
		// A broken pair: refused, the last good one kept, through SIGHUP too.
		if err := testcert.WriteFile(site.a[1], []byte("-----BEGIN EC PRIVATE KEY-----\nbroken\n-----END EC PRIVATE KEY-----\n")); err != nil {
			t.Fatal(err)
		}
		if err := n.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the refusal in the log", func() bool { return strings.Contains(n.Log(), "certificate refused") })
		if _, now := servedCert(t, tlsAddr, "a.example"); now != good {
			t.Fatal("a broken pair replaced the certificate in force")
		}
		code, body, err := n.Get("/metrics")
		if err != nil || code != 200 || !bytes.Contains(body, []byte(`tether_tls_cert_expiry_seconds{name="a.example"}`)) {
			t.Fatalf("metrics: %d %v", code, err)
		}
	})
}

// findLine returns the first JSON line of the file that match accepts.
func findLine(t *testing.T, path string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("access log line is not JSON: %v: %s", err, l)
		}
		if match(m) {
			return m
		}
	}
	return nil
}

// The plain listener redirects to https with 308, same host and path.
func TestEdgeRedirect(t *testing.T) {
	site := newEdgeSite(t)
	tlsAddr := fleet.FreePort(t)
	env := site.env(tlsAddr)
	env["TETHER_HTTPS_REDIRECT"] = "true"
	f := fleet.StartEach(t, bin, 1, fleet.Options{Backends: echoBackends(t, "r1"), Env: env}, nil)
	_, port, _ := net.SplitHostPort(tlsAddr)
	cl := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp := get(t, cl, "http://"+f.Nodes[0].Proxy+"/cart?id=7", "shop.test")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://shop.test:"+port+"/cart?id=7" {
		t.Fatalf("%d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := get(t, site.httpsClient(t, fleet.ClientAddr(1), true), "https://"+tlsAddr+"/", "shop.test"); resp.StatusCode != 200 {
		t.Fatalf("https: %d", resp.StatusCode)
	}
}
