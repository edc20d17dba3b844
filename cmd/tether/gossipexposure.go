package main

import (
	"net"
	"net/netip"
	"strings"

	"github.com/rs/zerolog"
)

// checkGossipExposure is the one place that judges a gossip listener
// without a key. Anyone who reaches an unencrypted gossip port can write
// bindings into the fleet, so a node whose gossip listens beyond loopback
// without TETHER_GOSSIP_KEY says so, once, at start. It returns an error
// when the node must not start (it never does: validation refuses such a
// node unless TETHER_GOSSIP_INSECURE=true, and then this is the warning).
func checkGossipExposure(cfg Config, log zerolog.Logger) error {
	if cfg.GossipKey != nil || loopbackOnly(cfg.GossipBind) {
		return nil
	}
	log.Warn().Str("gossip_bind", cfg.GossipBind).
		Msg("INSECURE: gossip listens beyond loopback without TETHER_GOSSIP_KEY (TETHER_GOSSIP_INSECURE=true): anyone who reaches this port can join the fleet, read every client's binding, drain replicas and move clients; set a key (head -c 16 /dev/urandom | base64, the same on every node)")
	return nil
}

// loopbackOnly reports whether hostport binds to loopback addresses only.
// An empty host or an unspecified address (0.0.0.0, ::) binds every
// interface; a name counts as loopback only if all it resolves to is.
func loopbackOnly(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.IsLoopback()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}
