package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tetherproxy/tether/edge"
	"github.com/tetherproxy/tether/internal/connlimit"
	"github.com/tetherproxy/tether/proxy"
	"github.com/tetherproxy/tether/web"
)

// edgeNode holds the edge parts of a running node (docs/edge.md).
type edgeNode struct {
	access    *edge.AccessLog  // nil when off
	certs     *edge.Certs      // nil without a TLS listener
	tickets   *edge.TicketKeys // nil without a TLS listener
	tlsServer *http.Server
	tlsLn     net.Listener
}

// certPoll is how often the certificate files are checked for a change.
const certPoll = 2 * time.Second

// startEdge loads the TLS certificates and opens the access log, before
// the proxy that writes to it and the admin that lists them.
func startEdge(ctx context.Context, n *node) error {
	e := n.cfg.Edge
	if e.TLSListen != "" {
		certs, err := edge.NewCerts(e.TLSDefault, e.TLSSNI, &n.log)
		if err != nil {
			return err
		}
		n.registry.MustRegister(certs)
		n.edge.certs = certs
	}
	return startAccessLog(ctx, n)
}

// startAccessLog opens the access log; SIGUSR1 reopens it.
func startAccessLog(_ context.Context, n *node) error {
	e := n.cfg.Edge
	if e.AccessLog == "" {
		return nil
	}
	a, err := edge.OpenAccessLog(e.AccessLog, e.AccessFormat, n.cfg.NodeName, &n.log, n.registry)
	if err != nil {
		return err
	}
	n.edge.access = a
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-usr1:
				if err := a.Reopen(); err != nil {
					n.log.Error().Err(err).Msg("access log reopen failed; the old file stays in use")
				} else {
					n.log.Info().Str("access_log", e.AccessLog).Msg("access log reopened")
				}
			}
		}
	}()
	n.onShutdown("access log", func(context.Context) error {
		signal.Stop(usr1)
		close(stop)
		return a.Close()
	})
	return nil
}

// edgeListener wraps a proxy listener in the PROXY protocol when it is on.
func (n *node) edgeListener(ln net.Listener) net.Listener {
	if n.cfg.Edge.ProxyProtocol {
		ln = edge.ProxyProtocol(ln, n.cfg.TrustedProxies.Contains)
	}
	return ln
}

// edgeServer sets what the edge needs on a proxy server: the TCP peer for
// the access log and, on the plain listener, the redirect to https.
func (n *node) edgeServer(srv *http.Server, plain bool) {
	srv.ConnContext = edge.ConnContext
	if plain && n.cfg.Edge.HTTPSRedirect {
		srv.Handler = edge.RedirectHTTPS(n.cfg.Edge.tlsPort())
	}
}

// startTLS opens the TLS listener (HTTP/1.1 and HTTP/2) when configured,
// and polls the certificate files.
func startTLS(ctx context.Context, n *node) error {
	e := n.cfg.Edge
	if e.TLSListen == "" {
		return nil
	}
	certs := n.edge.certs
	ln, err := net.Listen("tcp", e.TLSListen)
	if err != nil {
		return err
	}
	srv := n.proxy.NewServer()
	lim, err := n.tlsLimits(ln, srv)
	if err != nil {
		_ = ln.Close()
		return err
	}
	n.edgeServer(srv, false)
	tcfg := edge.TLSConfig(certs, e.TLSMinVersion)
	n.edge.tickets.Attach(tcfg)
	if n.cfg.GossipKey == nil {
		n.log.Warn().Msg("TLS session ticket keys are this node's own: the gossip has no key (TETHER_GOSSIP_KEY), and ticket keys never travel in the clear; a client resumes its TLS session only on the node that gave it its ticket")
	} else {
		n.log.Info().Int64("rotate_ms", e.TicketRotate.Milliseconds()).Int("keep", e.TicketKeep).
			Msg("TLS session ticket keys shared fleet-wide over the encrypted gossip: a client resumes on any node")
	}
	plain := n.edgeListener(lim)
	tl := edge.ServeTLS(srv, plain, tcfg, edge.H2ErrorCounter(n.registry))
	n.edge.tlsServer, n.edge.tlsLn = srv, ln
	pollCtx, stopPoll := context.WithCancel(context.Background())
	go edge.PollCerts(pollCtx, certs, certPoll)
	// HTTP/1.1 over TLS is served by the proxy's connection loop, as on
	// the plain listener (the loop makes the TLS connections over plain's
	// own, so it reads their sockets itself); HTTP/2 and the rest go to
	// srv.
	serve := func() error { return srv.Serve(tl) }
	shutdown, closeAll := srv.Shutdown, srv.Close
	if n.cfg.Forwarding == proxy.ForwardFast {
		ls := proxy.NewLoopServer(srv)
		ls.TLSConfig = tcfg
		serve = func() error { return ls.Serve(plain) }
		shutdown, closeAll = ls.Shutdown, ls.Close
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case n.failed <- fmt.Errorf("TLS listener: %w", err):
			default:
			}
		}
	}()
	n.onShutdown("TLS listener", func(ctx context.Context) error {
		stopPoll()
		ctx, cancel := context.WithTimeout(ctx, drainTimeout)
		defer cancel()
		err := shutdown(ctx)
		if err != nil {
			_ = closeAll()
		}
		return err
	})
	n.log.Info().Str("tls_listen", ln.Addr().String()).Int("certificates", len(certs.Status())).
		Bool("proxy_protocol", e.ProxyProtocol).Msg("TLS listener serving")
	return nil
}

// reloadEdge re-reads the certificates (SIGHUP): the default pair and the
// routes file's tls: list.
func (n *node) reloadEdge() error {
	if n.edge.certs == nil {
		return nil
	}
	sni, err := edge.LoadSNI(n.cfg.RoutesFile)
	if err != nil {
		n.log.Error().Err(err).Msg("certificate reload refused; the certificates in force stay")
		return err
	}
	return n.edge.certs.Reload(n.cfg.Edge.TLSDefault, sni)
}

// adminCerts shows the TLS listener's certificates on the admin overview.
type adminCerts struct{ c *edge.Certs }

func (a adminCerts) Certificates() []web.Certificate {
	var out []web.Certificate
	for _, c := range a.c.Status() {
		out = append(out, web.Certificate{File: c.Cert, Names: c.Names, NotAfter: c.NotAfter, Default: c.Default, Error: c.Error})
	}
	return out
}

// tlsLimits puts the connection limits (limits.go) on the TLS listener
// too: the same caps, counted apart from the plain listener's (its
// tether_conns_* metrics are the plain listener's only).
func (n *node) tlsLimits(ln net.Listener, srv *http.Server) (net.Listener, error) {
	l := n.cfg.Limits
	maxConns := l.MaxConns
	if maxConns == 0 {
		fd, _ := connlimit.RaiseFDLimit()
		maxConns = connlimit.DefaultMaxConns(fd)
	}
	lim, err := connlimit.New(ln, connlimit.Config{
		MaxConns: maxConns, MaxPerSource: l.MaxConnsPerSource, Exempt: n.cfg.TrustedProxies.Contains,
		IdleTimeout: srv.IdleTimeout, TunnelIdleTimeout: l.TunnelIdleTimeout, Logger: &n.log,
	})
	if err != nil {
		return nil, err
	}
	srv.ConnState = lim.ConnState
	return lim, nil
}
