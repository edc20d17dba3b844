//go:build linux

package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/tetherproxy/tether/internal/connlimit"
)

// The raw mode is for sockets the loop may read itself: a plain TCP
// connection, and the connection limiter's wrapper, which tether's
// listener always puts around it (it holds no bytes of its own). A wrapper
// that may hold bytes the socket no longer has (PROXY protocol, on the
// limiter or not) is read through its Read. tether serve's own listener
// stack is what the first case checks: without it the raw mode would
// never run outside tests.
func TestLoopRawModeByListener(t *testing.T) {
	limited := func(ln net.Listener) net.Listener {
		l, err := connlimit.New(ln, connlimit.Config{MaxConns: 16})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, tc := range []struct {
		name string
		wrap func(net.Listener) net.Listener
		raw  bool
		pp   bool // the client sends a PROXY header
		tls  bool // the loop makes TLS connections (LoopServer.TLSConfig)
	}{
		{"tcp", func(ln net.Listener) net.Listener { return ln }, true, false, false},
		{"connlimit", limited, true, false, false},
		{"proxyproto", func(ln net.Listener) net.Listener { return &proxyproto.Listener{Listener: ln} }, false, true, false},
		{"proxyproto over connlimit", func(ln net.Listener) net.Listener {
			return &proxyproto.Listener{Listener: limited(ln)}
		}, false, true, false},
		{"tls over connlimit", limited, true, false, true},
		{"tls over proxyproto", func(ln net.Listener) net.Listener { return &proxyproto.Listener{Listener: ln} }, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw := "no"
				if ctx, ok := r.Context().(*reqCtx); ok && ctx.lc.fd >= 0 {
					raw = "yes"
				}
				_, _ = io.WriteString(w, raw)
			})
			state := func(c net.Conn, s http.ConnState) { connlimit.SetState(c, s) }
			raw := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			pp := ""
			if tc.pp {
				pp = "PROXY TCP4 192.0.2.1 127.0.0.1 5555 80\r\n"
			}
			var got string
			if tc.tls {
				addr, cfg := rvServeTLS(t, h, func(s *http.Server) { s.ConnState = state }, tc.wrap)
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, pp)
				tc := tls.Client(c, cfg)
				_, _ = io.WriteString(tc, raw)
				b, _ := io.ReadAll(tc)
				got = string(b)
			} else {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				wl := tc.wrap(ln)
				ls := NewLoopServer(&http.Server{Handler: h, ConnState: state})
				go func() { _ = ls.Serve(wl) }()
				t.Cleanup(func() { _ = ls.Close() })
				got = rvExchange(t, ln.Addr().String(), pp+raw, false)
			}
			want := map[bool]string{true: "yes", false: "no"}[tc.raw]
			if !strings.HasSuffix(got, "\r\n\r\n"+want) {
				t.Fatalf("raw mode: want %q, got response %q", want, got)
			}
		})
	}
}
