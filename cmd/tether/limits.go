package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tetherproxy/tether/internal/connlimit"
	"github.com/tetherproxy/tether/proxy"
	"github.com/tetherproxy/tether/web"
)

// limits are the settings against hostile clients (docs/security.md).
type limits struct {
	MaxConns          int // 0: from the file-descriptor limit (connlimit.DefaultMaxConns)
	MaxConnsPerSource int // 0: no per-source cap
	BodyTimeout       time.Duration
	WriteTimeout      time.Duration
	TunnelIdleTimeout time.Duration
	BindBurst         int     // proxy.BindQuota.Burst; 0 = no quota
	BindRate          float64 // proxy.BindQuota.PerSecond
	AllowTrace        bool
	GossipInsecure    bool
}

// parseLimits reads the settings of limits into c, refuses a predictable
// admin token, and checks that gossip on a non-loopback address has a key
// (or the explicit override).
func (s settings) parseLimits(c *Config) error {
	var err error
	l := &c.Limits
	if l.MaxConns, err = strconv.Atoi(strings.TrimSpace(s.MaxConns)); err != nil || l.MaxConns < 0 {
		return bad("MaxConns", s.MaxConns, "want a whole number >= 0 (0 = from the file-descriptor limit)")
	}
	if l.MaxConnsPerSource, err = strconv.Atoi(strings.TrimSpace(s.MaxConnsPerSource)); err != nil || l.MaxConnsPerSource < 0 {
		return bad("MaxConnsPerSource", s.MaxConnsPerSource, "want a whole number >= 0 (0 = no per-source cap)")
	}
	if l.BindBurst, err = strconv.Atoi(strings.TrimSpace(s.BindBurst)); err != nil || l.BindBurst < 0 {
		return bad("BindBurst", s.BindBurst, "want a whole number >= 0 (0 = no quota)")
	}
	if l.BindRate, err = strconv.ParseFloat(strings.TrimSpace(s.BindRate), 64); err != nil || !(l.BindRate > 0) || l.BindRate > 1e6 {
		return bad("BindRate", s.BindRate, "want a number of bindings per second > 0")
	}
	for _, d := range []struct {
		field, value string
		to           *time.Duration
	}{
		{"BodyTimeout", s.BodyTimeout, &l.BodyTimeout},
		{"WriteTimeout", s.WriteTimeout, &l.WriteTimeout},
		{"TunnelIdleTimeout", s.TunnelIdleTimeout, &l.TunnelIdleTimeout},
	} {
		v, err := time.ParseDuration(strings.TrimSpace(d.value))
		if err != nil || v < 0 {
			return bad(d.field, d.value, "want a duration >= 0 (like 30s; 0 = off)")
		}
		*d.to = v
	}
	for _, b := range []struct {
		field, value string
		to           *bool
	}{{"AllowTrace", s.AllowTrace, &l.AllowTrace}, {"GossipInsecure", s.GossipInsecure, &l.GossipInsecure}} {
		v, err := strconv.ParseBool(strings.TrimSpace(b.value))
		if err != nil {
			return bad(b.field, b.value, "want true or false")
		}
		*b.to = v
	}
	if c.AdminToken != "" {
		if err := web.CheckToken(c.AdminToken); err != nil {
			return bad("AdminToken", c.AdminToken, "%v", err)
		}
	}
	if host, _, _ := net.SplitHostPort(c.GossipBind); !isLoopback(host) && c.GossipKey == nil && !l.GossipInsecure {
		return bad("GossipBind", c.GossipBind, "not a loopback address, so TETHER_GOSSIP_KEY (--gossip-key) is required: "+
			"without it anyone who reaches the port joins the fleet, reads every binding and moves clients "+
			"(TETHER_GOSSIP_INSECURE=true overrides, for a network nobody else can reach)")
	}
	return nil
}

// proxyLimits puts the request rules and timeouts into the proxy's config
// (0 in the settings means off; in proxy.Config a negative value does).
func (l limits) proxyLimits(pc *proxy.Config) {
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	pc.Rules.AllowTrace = l.AllowTrace
	pc.BindQuota.Burst, pc.BindQuota.PerSecond = l.BindBurst, l.BindRate
	if l.BindBurst == 0 {
		pc.BindQuota.Burst = -1
	}
	pc.Timeouts.BodyIdle = off(l.BodyTimeout)
	pc.Timeouts.WriteIdle = off(l.WriteTimeout)
}

// limitListener wraps the proxy's TCP listener in the connection limits
// and hooks them to the server. The source the per-source cap counts is
// the TCP peer at accept; trusted proxies (a balancer, a PROXY-protocol
// sender) are exempt, the global cap bounds them too.
func (n *node) limitListener(ln net.Listener, srv *http.Server) (net.Listener, error) {
	fd, err := connlimit.RaiseFDLimit()
	if err != nil {
		n.log.Warn().Err(err).Uint64("fd_limit", fd).Msg("could not raise the open-files limit")
	}
	l := n.cfg.Limits
	maxConns := l.MaxConns
	if maxConns == 0 {
		maxConns = connlimit.DefaultMaxConns(fd)
	}
	trusted := n.cfg.TrustedProxies
	lim, err := connlimit.New(ln, connlimit.Config{
		MaxConns: maxConns, MaxPerSource: l.MaxConnsPerSource, Exempt: trusted.Contains,
		IdleTimeout: srv.IdleTimeout, TunnelIdleTimeout: l.TunnelIdleTimeout,
		Registerer: n.registry, Logger: &n.log,
	})
	if err != nil {
		return nil, err
	}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		lim.ConnState(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
	n.log.Info().Int("max_conns", maxConns).Int("max_conns_per_source", l.MaxConnsPerSource).Uint64("fd_limit", fd).
		Str("body_timeout", l.BodyTimeout.String()).Str("write_timeout", l.WriteTimeout.String()).
		Str("tunnel_idle_timeout", l.TunnelIdleTimeout.String()).Bool("allow_trace", l.AllowTrace).
		Int("bind_burst", l.BindBurst).Float64("bind_rate", l.BindRate).Msg("client limits")
	return lim, nil
}
