package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/syncbuf"
	"github.com/tetherproxy/tether/internal/testcert"
)

// tlsListener is a proxy's TLS listener served as tether serve serves it:
// the loop in front, net/http's server (HTTP/1.1 and HTTP/2 by ALPN)
// behind. conns records, per connection state, the type of the
// connection the hook was given: the loop's (*tls.Conn) or one handed
// over (*tlsHandoffConn).
type tlsListener struct {
	addr   string
	client *tls.Config
	mu     sync.Mutex
	conns  []string
	logs   syncbuf.Buffer
}

func (l *tlsListener) states() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.conns...)
}

// How a test serves TLS.
type tlsMode int

const (
	tlsStd          tlsMode = iota // net/http's server alone (TETHER_FORWARDING=stdlib)
	tlsLoopListener                // the loop behind tls.NewListener: tls.Conn over the accepted connection
	tlsLoopRaw                     // the loop making the TLS connections (LoopServer.TLSConfig), as tether serves
)

func (m tlsMode) String() string { return [...]string{"std", "tls listener", "raw"}[m] }

// newTLSServe serves p's TLS listener as mode says.
func newTLSServe(t *testing.T, p *Proxy, mode tlsMode, mod func(*http.Server)) *tlsListener {
	t.Helper()
	ca := testCA(t)
	certPEM, keyPEM, err := ca.Issue([]string{"l.example"}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l := &tlsListener{client: &tls.Config{RootCAs: ca.Pool, ServerName: "l.example"}}
	srv := p.NewServer()
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv.Protocols = protos
	srv.ErrorLog = log.New(&l.logs, "", 0)
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		l.mu.Lock()
		l.conns = append(l.conns, fmt.Sprintf("%s %s", reflect.TypeOf(c), st))
		l.mu.Unlock()
	}
	if mod != nil {
		mod(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	serve, shutdown := srv.Serve, srv.Shutdown
	var sln net.Listener = tls.NewListener(ln, srv.TLSConfig)
	if mode != tlsStd {
		ls := NewLoopServer(srv)
		serve, shutdown = ls.Serve, ls.Shutdown
		if mode == tlsLoopRaw {
			ls.TLSConfig, sln = srv.TLSConfig, ln
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = serve(sln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdown(ctx)
		<-done
	})
	return l
}

var (
	caOnce sync.Once
	ca     *testcert.CA
	caErr  error
)

// testCA is the CA of every test TLS listener, so that one client
// configuration trusts them all.
func testCA(t *testing.T) *testcert.CA {
	caOnce.Do(func() { ca, caErr = testcert.NewCA() })
	if caErr != nil {
		t.Fatal(caErr)
	}
	return ca
}

// echoProto is a replica that answers with what it saw of the request's
// scheme and with the body's length.
func echoProto(t *testing.T) string {
	return serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "proto=%s body=%d", r.Header.Get("X-Forwarded-Proto"), len(b))
	}))
}

// Over TLS, HTTP/1.1 is served by the loop and a request it does not take
// (a body) by net/http after a handover on the same connection, both with
// the TLS state (X-Forwarded-Proto: https); HTTP/2 goes to net/http whole.
func TestLoopTLS(t *testing.T) {
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"e": echoProto(t)})}}, nil)
	for _, mode := range []tlsMode{tlsLoopRaw, tlsLoopListener} {
		t.Run(mode.String(), func(t *testing.T) { testLoopTLS(t, newTLSServe(t, r.p, mode, nil)) })
	}
}

func testLoopTLS(t *testing.T, l *tlsListener) {

	h1 := &http.Transport{TLSClientConfig: l.client, MaxConnsPerHost: 1, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	defer h1.CloseIdleConnections()
	c1 := &http.Client{Transport: h1, Timeout: 10 * time.Second}
	url := "https://" + l.addr + "/"
	for i, tc := range []struct{ method, body, want string }{
		{"GET", "", "proto=https body=0"},
		{"GET", "", "proto=https body=0"},
		{"POST", "hello", "proto=https body=5"},
		{"GET", "", "proto=https body=0"},
	} {
		req, _ := http.NewRequest(tc.method, url, strings.NewReader(tc.body))
		if tc.body == "" {
			req.Body = nil
		}
		req.Host = "l.example"
		res, err := c1.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Proto != "HTTP/1.1" || string(b) != tc.want {
			t.Fatalf("request %d (%s): %d %s %q, want 200 HTTP/1.1 %q", i, tc.method, res.StatusCode, res.Proto, b, tc.want)
		}
	}
	h1.CloseIdleConnections()

	// One connection: the loop's (two GETs, and the POST's first bytes),
	// then net/http's from the POST on.
	deadline := time.Now().Add(5 * time.Second)
	var st []string
	for {
		st = l.states()
		if len(st) > 0 && strings.HasSuffix(st[len(st)-1], "closed") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []string{"*tls.Conn new", "*tls.Conn active", "*tls.Conn idle", "*tls.Conn active", "*tls.Conn idle", "*tls.Conn active",
		"*proxy.tlsHandoffConn new", "*proxy.tlsHandoffConn active", "*proxy.tlsHandoffConn idle",
		"*proxy.tlsHandoffConn active", "*proxy.tlsHandoffConn idle", "*proxy.tlsHandoffConn closed"}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("connection states:\n%s\nwant:\n%s", strings.Join(st, "\n"), strings.Join(want, "\n"))
	}

	h2 := &http.Transport{TLSClientConfig: l.client, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = "l.example"
	res, err := (&http.Client{Transport: h2, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Proto != "HTTP/2.0" || string(b) != "proto=https body=0" {
		t.Fatalf("h2: %d %s %q", res.StatusCode, res.Proto, b)
	}
}

// The handshake is net/http's: plain HTTP on the TLS port gets its 400,
// a failed handshake is logged, and a client that starts none is cut at
// the handshake timeout.
func TestLoopTLSHandshake(t *testing.T) {
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"e": echoProto(t)})}}, nil)
	for _, mode := range []tlsMode{tlsLoopRaw, tlsLoopListener} {
		t.Run(mode.String(), func(t *testing.T) {
			testLoopTLSHandshake(t, newTLSServe(t, r.p, mode, func(s *http.Server) { s.ReadHeaderTimeout = 300 * time.Millisecond }))
		})
	}
}

func testLoopTLSHandshake(t *testing.T, l *tlsListener) {

	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: l.example\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "HTTP/1.0 400 Bad Request\r\n" {
		t.Fatalf("plain HTTP on the TLS port: %q, %v", line, err)
	}

	idle, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a client that sends nothing: %v, want EOF at the handshake timeout", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("cut after %v, before the 300ms handshake timeout", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.logs.String(), "client sent an HTTP request to an HTTPS server") ||
		strings.Count(l.logs.String(), "http: TLS handshake error from 127.0.0.1:") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("handshake errors not logged: %q", l.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rvServeTLS serves h through the loop making TLS connections
// (LoopServer.TLSConfig) over wrap(a loopback listener), as tether's TLS
// listener is served, and returns its address and a client configuration.
func rvServeTLS(t *testing.T, h http.Handler, mod func(*http.Server), wrap func(net.Listener) net.Listener) (string, *tls.Config) {
	t.Helper()
	certPEM, keyPEM, err := testCA(t).Issue([]string{"l.example"}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	if mod != nil {
		mod(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := NewLoopServer(srv)
	ls.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}
	var wl net.Listener = ln
	if wrap != nil {
		wl = wrap(ln)
	}
	go func() { _ = ls.Serve(wl) }()
	t.Cleanup(func() { _ = ls.Close() })
	return ln.Addr().String(), &tls.Config{RootCAs: testCA(t).Pool, ServerName: "l.example"}
}

// dialTLS dials addr and completes the handshake.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) net.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A client that leaves while its request is served cancels the request's
// context: over TLS it leaves with a close_notify before its FIN, whose
// first byte must not be taken for the next request's (the raw mode's
// watch reads the socket under the TLS layer).
func TestLoopTLSClientLeaves(t *testing.T) {
	started := make(chan struct{}, 1)
	cancelled := make(chan time.Duration, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- time.Since(t0)
		case <-time.After(5 * time.Second):
			cancelled <- -1
		}
	})
	ta, cfg := rvServeTLS(t, h, nil, nil)
	la, _ := rvServeBoth(t, h, nil)
	for _, tc := range []struct {
		name string
		dial func() net.Conn
	}{
		{"tls", func() net.Conn { return dialTLS(t, ta, cfg) }},
		{"plain", func() net.Conn {
			c, err := net.Dial("tcp", la)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.dial()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			<-started
			time.Sleep(50 * time.Millisecond) // the handler waits on Done: the watch runs
			_ = c.Close()                     // over TLS: close_notify, then FIN
			if d := <-cancelled; d < 0 {
				t.Fatal("the client left, the request's context was not cancelled within 5s")
			}
		})
	}
}

// A handler that aborts (http.ErrAbortHandler) while the client watch
// runs still closes the connection: in the raw mode the watch reads a
// descriptor of its own of the socket, which must be closed too, or the
// socket stays open under it.
func TestLoopAbortWhileWatching(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.Context().Done() // starts the watch
		time.Sleep(20 * time.Millisecond)
		panic(http.ErrAbortHandler)
	})
	srv := func(s *http.Server) { s.ErrorLog = log.New(io.Discard, "", 0) }
	la, _ := rvServeBoth(t, h, srv)
	ta, cfg := rvServeTLS(t, h, srv, nil)
	for _, tc := range []struct {
		name string
		dial func() net.Conn
	}{
		{"plain", func() net.Conn {
			c, err := net.Dial("tcp", la)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"tls", func() net.Conn { return dialTLS(t, ta, cfg) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.dial()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			start := time.Now()
			if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Fatalf("after the handler aborted: read %d byte(s), %v after %v; want the connection closed", n, err, time.Since(start))
			}
		})
	}
}
