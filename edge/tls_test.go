package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tetherproxy/tether/internal/testcert"
)

type rig struct {
	t     *testing.T
	dir   string
	ca    *testcert.CA
	def   Pair
	sni   []Pair
	certs *Certs
	cfg   *tls.Config
	addr  string
	srv   *http.Server
	errs  *prometheus.Registry // tether_http2_errors_total
}

func write(t *testing.T, ca *testcert.CA, dir, base string, names ...string) Pair {
	t.Helper()
	c, k, err := ca.Write(dir, base, names, time.Now().Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return Pair{Cert: c, Key: k}
}

// newRig serves h (or one that answers with the protocol) over TLS with
// the edge's config on a loopback port.
func newRig(t *testing.T, h http.Handler) *rig {
	t.Helper()
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: t.TempDir(), ca: ca}
	r.def = write(t, ca, r.dir, "default", "default.test")
	r.sni = []Pair{
		write(t, ca, r.dir, "a", "a.example", "www.a.example"),
		write(t, ca, r.dir, "wild", "*.wild.example"),
	}
	if r.certs, err = NewCerts(r.def, r.sni, nil); err != nil {
		t.Fatal(err)
	}
	r.cfg = TLSConfig(r.certs, tls.VersionTLS12)
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.WriteString(w, req.Proto)
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: h, MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second}
	r.srv.ErrorLog = log.New(io.Discard, "", 0)
	r.errs = prometheus.NewRegistry()
	tl := ServeTLS(r.srv, ln, r.cfg, H2ErrorCounter(r.errs))
	go func() { _ = r.srv.Serve(tl) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

// handshake connects with the given SNI and returns the leaf's names.
// (The names are checked, not the chain: the default certificate does not
// verify for an unknown name.)
func (r *rig) handshake(sni string) []string {
	r.t.Helper()
	c, err := tls.Dial("tcp", r.addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		r.t.Fatalf("handshake %q: %v", sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames
}

func (r *rig) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.ca.Pool, ServerName: "a.example"}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	r.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func TestSNIPicksCertificate(t *testing.T) {
	r := newRig(t, nil)
	for _, tc := range []struct{ sni, want string }{
		{"a.example", "a.example"},
		{"WWW.A.EXAMPLE", "a.example"},
		{"x.wild.example", "*.wild.example"},
		{"deep.x.wild.example", "default.test"}, // a wildcard covers one label
		{"unknown.test", "default.test"},
		{"", "default.test"}, // no SNI
	} {
		if got := r.handshake(tc.sni); got[0] != tc.want {
			t.Errorf("SNI %q: served %v, want %s", tc.sni, got, tc.want)
		}
	}
}

func TestALPNServesHTTP2AndHTTP1(t *testing.T) {
	r := newRig(t, nil)
	for _, tc := range []struct {
		h2   bool
		want string
	}{{true, "HTTP/2.0"}, {false, "HTTP/1.1"}} {
		resp, err := r.client(tc.h2).Get("https://" + r.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want || resp.Proto != tc.want {
			t.Fatalf("h2=%v: served %q over %s, want %s", tc.h2, b, resp.Proto, tc.want)
		}
	}
}

func TestMinVersion(t *testing.T) {
	r := newRig(t, nil)
	r.cfg.MinVersion = tls.VersionTLS13 // what TETHER_TLS_MIN_VERSION=1.3 sets
	_, err := tls.Dial("tcp", r.addr, &tls.Config{ServerName: "a.example", RootCAs: r.ca.Pool, MaxVersion: tls.VersionTLS12})
	if err == nil {
		t.Fatal("a TLS 1.2 client was served by a 1.3-minimum listener")
	}
	c, err := tls.Dial("tcp", r.addr, &tls.Config{ServerName: "a.example", RootCAs: r.ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("version %x", v)
	}
	if _, err := ParseMinVersion("1.1"); err == nil {
		t.Fatal("1.1 accepted as a minimum")
	}
}

// A certificate swapped on disk is served to new handshakes while an open
// HTTP/2 connection keeps working.
func TestReloadKeepsOpenConnection(t *testing.T) {
	r := newRig(t, nil)
	cl := r.client(true)
	var conns []net.Conn
	get := func() {
		t.Helper()
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { conns = append(conns, i.Conn) },
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.addr+"/", nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("proto %s", resp.Proto)
		}
	}
	get()
	serialBefore := r.servedSerial("a.example")
	write(t, r.ca, r.dir, "a", "a.example", "www.a.example", "new.a.example")
	if err := r.certs.Poll(); err != nil {
		t.Fatal(err)
	}
	if got := r.handshake("new.a.example"); len(got) != 3 {
		t.Fatalf("new handshake served %v, want the new certificate", got)
	}
	if r.servedSerial("a.example") == serialBefore {
		t.Fatal("the old certificate is still served")
	}
	get() // on the connection opened before the swap
	if len(conns) != 2 || conns[0] != conns[1] {
		t.Fatalf("the second request did not reuse the open HTTP/2 connection")
	}
}

func (r *rig) servedSerial(sni string) string {
	c, err := tls.Dial("tcp", r.addr, &tls.Config{ServerName: sni, RootCAs: r.ca.Pool})
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// A broken or mismatched pair is refused and the pair in force kept; the
// files fixed later are loaded.
func TestReloadRefusesBadPair(t *testing.T) {
	r := newRig(t, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.certs)
	before := r.servedSerial("a.example")

	other := write(t, r.ca, t.TempDir(), "other", "a.example")
	key, _ := os.ReadFile(other.Key)
	if err := testcert.WriteFile(r.sni[0].Key, key); err != nil { // key of another certificate
		t.Fatal(err)
	}
	if err := r.certs.Poll(); !errors.Is(err, ErrCert) {
		t.Fatalf("mismatched pair: %v, want ErrCert", err)
	}
	if r.servedSerial("a.example") != before {
		t.Fatal("a mismatched pair replaced the certificate in force")
	}
	if st := r.certs.Status(); st[1].Error == "" {
		t.Fatalf("status does not show the refusal: %+v", st[1])
	}
	if err := os.WriteFile(r.sni[1].Cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.certs.Reload(r.def, r.sni); err == nil {
		t.Fatal("garbage certificate accepted")
	}
	if got := r.handshake("x.wild.example"); got[0] != "*.wild.example" {
		t.Fatalf("wildcard lost after a failed reload: %v", got)
	}
	if n := testutil.ToFloat64(r.certs.failures); n != 2 {
		t.Fatalf("failures counted %v, want 2", n)
	}
	// Fixed on disk: the next poll takes it (and does not retry the
	// unchanged garbage, whose refusal stays in the status).
	write(t, r.ca, r.dir, "a", "a.example")
	if err := r.certs.Poll(); err != nil {
		t.Fatal(err)
	}
	if st := r.certs.Status(); st[1].Error != "" || st[2].Error == "" {
		t.Fatalf("status after the fix: %+v", st)
	}
	if r.servedSerial("a.example") == before {
		t.Fatal("the fixed pair was not loaded")
	}
	// Metrics: one expiry gauge per name, about 90 days ahead.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tether_tls_cert_expiry_seconds" {
			continue
		}
		if len(mf.Metric) != 3 {
			t.Fatalf("%d expiry series, want 3", len(mf.Metric))
		}
		for _, m := range mf.Metric {
			if v := m.GetGauge().GetValue(); v < 89*86400 || v > 90*86400 {
				t.Fatalf("expiry %v s", v)
			}
		}
		return
	}
	t.Fatal("no tether_tls_cert_expiry_seconds")
}

func TestLoadSNI(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(p, []byte("tls:\n  - cert: a.pem\n    key: /abs/a.key\npools: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSNI(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Cert != filepath.Join(dir, "a.pem") || got[0].Key != "/abs/a.key" {
		t.Fatalf("%+v", got)
	}
	if err := os.WriteFile(p, []byte("tls:\n  - cert: a.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSNI(p); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("missing key: %v", err)
	}
}

func TestRedirectHTTPS(t *testing.T) {
	srv := &http.Server{Handler: RedirectHTTPS("8443")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct{ host, path, want string }{
		{"example.com", "/a/b?x=1&y=2", "https://example.com:8443/a/b?x=1&y=2"},
		{"example.com:8080", "/", "https://example.com:8443/"},
		{"[2001:db8::1]:80", "/p", "https://[2001:db8::1]:8443/p"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+tc.path, nil)
		req.Host = tc.host
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != tc.want {
			t.Fatalf("%s%s: %d %q, want 308 %q", tc.host, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
	}
}
