package main

import (
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
)

// memberMeta is what a node tells the fleet about itself in memberlist's
// member metadata (at most 512 bytes): where its admin listens, so that
// peers' admin pages can link to it and ask it in a fleet lookup.
type memberMeta struct {
	Admin string `json:"admin,omitempty"` // TETHER_ADMIN_LISTEN as configured
}

// encodeMemberMeta is this node's metadata; nil when there is nothing to
// say.
func encodeMemberMeta(cfg Config) []byte {
	if cfg.AdminListen == "" {
		return nil
	}
	b, err := json.Marshal(memberMeta{Admin: cfg.AdminListen})
	if err != nil || len(b) > 512 {
		return nil
	}
	return b
}

// memberAdminURL turns a member's metadata into the URL of its admin
// page, seen from another host: an unspecified listen host (":9090",
// "0.0.0.0:9090") becomes the member's gossip address; a loopback admin of
// a member whose gossip is not on loopback is reachable from nowhere else
// and gives "". So does anything malformed.
func memberAdminURL(meta []byte, gossipAddr string) string {
	var m memberMeta
	if len(meta) == 0 || json.Unmarshal(meta, &m) != nil || m.Admin == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(m.Admin)
	if err != nil {
		return ""
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return ""
	}
	gossipHost, _, err := net.SplitHostPort(gossipAddr)
	if err != nil {
		return ""
	}
	g, err := netip.ParseAddr(gossipHost)
	if err != nil {
		return ""
	}
	a, err := netip.ParseAddr(host)
	switch {
	case host == "" || (err == nil && a.IsUnspecified()):
		host = g.String()
	case err != nil:
		// A name: use it as configured.
	case a.IsLoopback() && !g.IsLoopback():
		return ""
	}
	return "http://" + net.JoinHostPort(host, port)
}
