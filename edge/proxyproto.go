package edge

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyHeaderTimeout bounds the wait for a PROXY header (and, from an
// untrusted source, for the first bytes that show there is none).
const ProxyHeaderTimeout = 10 * time.Second

// ProxyProtocol wraps ln for TETHER_PROXY_PROTOCOL=on: a connection from a
// trusted source (trusted returns true for its address) must open with a
// PROXY protocol v1 or v2 header, and the header's source address becomes
// the connection's RemoteAddr; one without a header is closed at its first
// read. A connection from any other source is served as it is, unless it
// opens with a PROXY header: then it is closed (a client must not choose
// its own address). A LOCAL header (a balancer's health check) keeps the
// balancer's address.
func ProxyProtocol(ln net.Listener, trusted func(netip.Addr) bool) net.Listener {
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: ProxyHeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if a, ok := addrOf(o.Upstream); ok && trusted(a) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.REJECT, nil
		},
	}
}

func addrOf(a net.Addr) (netip.Addr, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return ap.Addr().Unmap(), ap.Addr().IsValid()
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap(), err == nil
}

type peerKey struct{}

// ConnContext is http.Server.ConnContext: it keeps the TCP peer's address
// (the balancer's when a PROXY header named the client) for TCPPeer.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, TCPPeerOf(c))
}

// TCPPeerOf returns the address of the socket's peer under the TLS and
// PROXY layers.
func TCPPeerOf(c net.Conn) net.Addr {
	for {
		switch t := c.(type) {
		case *tls.Conn:
			c = t.NetConn()
		case *proxyproto.Conn:
			return t.Raw().RemoteAddr()
		case interface{ NetConn() net.Conn }:
			c = t.NetConn() // e.g. a connection the proxy's loop handed to net/http
		default:
			return c.RemoteAddr()
		}
	}
}

// TCPPeer returns the TCP peer stored by ConnContext, or nil.
func TCPPeer(ctx context.Context) net.Addr {
	a, _ := ctx.Value(peerKey{}).(net.Addr)
	return a
}
