package connlimit

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs an HTTP server on a limited loopback listener. Handler "/"
// answers "ok"; "/tunnel" hijacks and echoes.
func serve(t *testing.T, cfg Config) (*Listener, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(inner, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		select { // held active until the client goes or the test ends
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/tunnel", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		_, _ = io.Copy(c, brw)
	})
	srv := &http.Server{Handler: mux, ConnState: l.ConnState, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l, inner.Addr().String()
}

// dialFrom opens a connection from a chosen loopback source address.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends one keep-alive request on c; ok means "ok" came back.
func get(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	b, _ := io.ReadAll(res.Body)
	return string(b) == "ok"
}

// refused: a connection from src is closed at once (a reset may come
// before the dial returns).
func refused(t *testing.T, src, addr string) bool {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return strings.Contains(err.Error(), "reset")
	}
	defer c.Close()
	return closedByPeer(c, 5*time.Second)
}

// closedByPeer waits (bounded) until the server closes c.
func closedByPeer(c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func waitOpen(t *testing.T, l *Listener, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Open() != want {
		if time.Now().After(deadline) {
			t.Fatalf("open = %d, want %d", l.Open(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPerSourceCap(t *testing.T) {
	l, addr := serve(t, Config{MaxConns: 100, MaxPerSource: 2})
	a1, a2 := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)
	if !get(a1) || !get(a2) {
		t.Fatal("the first two connections of a source were not served")
	}
	if !refused(t, "127.0.0.1", addr) {
		t.Fatal("a third connection from the same source was not closed")
	}
	b := dialFrom(t, "127.0.0.2", addr)
	if !get(b) {
		t.Fatal("another source was refused")
	}
	if !get(a1) {
		t.Fatal("an admitted connection stopped working")
	}
	a1.Close()
	waitOpen(t, l, 2)
	if a4 := dialFrom(t, "127.0.0.1", addr); !get(a4) {
		t.Fatal("the source's place was not given back on close")
	}
}

func TestExemptSourceSkipsPerSourceCap(t *testing.T) {
	_, addr := serve(t, Config{MaxConns: 100, MaxPerSource: 1, Exempt: func(a netip.Addr) bool { return a.IsLoopback() }})
	for i := 0; i < 3; i++ {
		if !get(dialFrom(t, "127.0.0.1", addr)) {
			t.Fatalf("exempt source refused at connection %d", i+1)
		}
	}
}

// TestGlobalCapReclaimsIdle: at the cap, a new client gets the place of the
// longest-idle keep-alive connection; with none idle it is refused.
func TestGlobalCapReclaimsIdle(t *testing.T) {
	l, addr := serve(t, Config{MaxConns: 2})
	old := dialFrom(t, "127.0.0.1", addr)
	if !get(old) { // served, now idle
		t.Fatal("not served")
	}
	time.Sleep(20 * time.Millisecond) // distinct idle times
	newer := dialFrom(t, "127.0.0.1", addr)
	if !get(newer) {
		t.Fatal("not served")
	}
	third := dialFrom(t, "127.0.0.1", addr)
	if !get(third) {
		t.Fatal("a new client was not served at the cap although a connection was idle")
	}
	if !closedByPeer(old, 5*time.Second) {
		t.Fatal("the longest-idle connection was not the one closed")
	}
	if !get(newer) {
		t.Fatal("a more recently used connection was closed")
	}
	// Now both places are held by connections in the middle of a request
	// (active, not idle).
	waitOpen(t, l, 2)
	for _, c := range []net.Conn{newer, third} {
		if _, err := io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if !refused(t, "127.0.0.1", addr) {
		t.Fatal("a connection beyond the cap was not refused while none was idle")
	}
}

func TestIdleTimeoutShrinksUnderPressure(t *testing.T) {
	l := &Listener{cfg: Config{MaxConns: 100, IdleTimeout: 100 * time.Second, MinIdleTimeout: 2 * time.Second}}
	for _, tc := range []struct {
		open int
		want time.Duration
	}{{0, 100 * time.Second}, {50, 100 * time.Second}, {70, 51 * time.Second}, {90, 2 * time.Second}, {100, 2 * time.Second}} {
		l.open = tc.open
		if got := l.idleTimeoutLocked(); got != tc.want {
			t.Errorf("open %d: idle timeout %v, want %v", tc.open, got, tc.want)
		}
	}
}

// TestIdleSweptUnderPressure: a real listener 95 % full closes idle
// connections after MinIdleTimeout, not IdleTimeout.
func TestIdleSweptUnderPressure(t *testing.T) {
	l, addr := serve(t, Config{MaxConns: 20, IdleTimeout: time.Hour, MinIdleTimeout: 200 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	var cs []net.Conn
	for i := 0; i < 19; i++ {
		c := dialFrom(t, "127.0.0.1", addr)
		if !get(c) {
			t.Fatal("not served")
		}
		cs = append(cs, c)
	}
	// Some idle connection is closed (the oldest idle one first, which need
	// not be cs[0]: the server marks them idle in its own order).
	closed := false
	for deadline := time.Now().Add(10 * time.Second); !closed && time.Now().Before(deadline); {
		for _, c := range cs {
			if closedByPeer(c, 10*time.Millisecond) {
				closed = true
				break
			}
		}
	}
	if !closed {
		t.Fatal("idle connections kept under pressure")
	}
	if n := l.Open(); n >= 19 {
		t.Fatalf("open = %d after the sweep", n)
	}
}

func TestTunnelIdleTimeout(t *testing.T) {
	_, addr := serve(t, Config{MaxConns: 10, TunnelIdleTimeout: 400 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	open := func() (net.Conn, *bufio.Reader) {
		c := dialFrom(t, "127.0.0.1", addr)
		io.WriteString(c, "GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", res, err)
		}
		return c, br
	}
	busy, bbr := open()
	quiet, _ := open()
	// The busy tunnel echoes a line every 100 ms for 1.2 s (3x the limit).
	for i := 0; i < 12; i++ {
		io.WriteString(busy, "ping\n")
		_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, err := bbr.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("busy tunnel cut after %d round trips: %q %v", i, line, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !closedByPeer(quiet, 5*time.Second) {
		t.Fatal("the quiet tunnel was not closed")
	}
}

func TestSetStateThroughTLS(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(inner, Config{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	srv.Listener.Close()
	srv.Listener = l
	srv.Config.ConnState = l.ConnState
	srv.StartTLS()
	defer srv.Close()
	get := func(c *http.Client) error {
		res, err := c.Get(srv.URL)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, err = io.ReadAll(res.Body)
		return err
	}
	c1 := srv.Client()
	if err := get(c1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		n := l.idle.Len()
		l.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the TLS connection was never seen idle")
		}
	}
	// A second client: the cap is 1, so it gets in only if the first
	// client's TLS connection was seen idle through the *tls.Conn.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	c2 := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	if err := get(c2); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Fatal(err)
	} else if err != nil {
		t.Fatal("the idle TLS connection was not reclaimed: ", err)
	}
	c1.Transport.(*http.Transport).CloseIdleConnections()
}

func TestDefaultMaxConns(t *testing.T) {
	for _, tc := range []struct {
		fd   uint64
		want int
	}{{0, 4096}, {1024, 384}, {20000, 9488}, {1 << 20, 523776}} {
		if got := DefaultMaxConns(tc.fd); got != tc.want {
			t.Errorf("DefaultMaxConns(%d) = %d, want %d", tc.fd, got, tc.want)
		}
	}
}
