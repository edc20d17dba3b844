package main

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tetherproxy/tether/edge"
	"github.com/tetherproxy/tether/gossip"
	"github.com/tetherproxy/tether/proxy"
)

// edgeConfig is what a node facing the internet adds (docs/edge.md): the
// TLS listener, the HTTPS redirect, the PROXY protocol, the access log and
// the client prefix.
type edgeConfig struct {
	TLSListen     string    // host:port, "" = no TLS listener
	TLSDefault    edge.Pair // TETHER_TLS_CERT / TETHER_TLS_KEY
	TLSSNI        []edge.Pair
	TLSMinVersion uint16
	TicketRotate  time.Duration // session ticket key rotation (gossip's TicketKeyRotate)
	TicketKeep    int           // session ticket keys kept (gossip's TicketKeyKeep)
	HTTPSRedirect bool
	ProxyProtocol bool
	AccessLog     string // "" = off, "stdout", "stderr" or a path
	AccessFormat  string // "json" or "combined"
	ClientPrefix  proxy.ClientPrefix
}

func (s settings) parseEdge(c Config) (edgeConfig, error) {
	var e edgeConfig
	var err error
	if e.TLSListen = strings.TrimSpace(s.TLSListen); e.TLSListen != "" {
		if err := checkHostPort(e.TLSListen, false); err != nil {
			return e, bad("TLSListen", s.TLSListen, "%v", err)
		}
		if s.TLSCert == "" || s.TLSKey == "" {
			return e, bad("TLSListen", s.TLSListen, "needs TETHER_TLS_CERT and TETHER_TLS_KEY (the default certificate)")
		}
		e.TLSDefault = edge.Pair{Cert: s.TLSCert, Key: s.TLSKey}
		if err := edge.CheckPair(e.TLSDefault); err != nil {
			return e, bad("TLSCert", s.TLSCert, "%v", err)
		}
		if e.TLSSNI, err = edge.LoadSNI(c.RoutesFile); err != nil {
			return e, bad("RoutesFile", c.RoutesFile, "%v", err)
		}
		for _, p := range e.TLSSNI {
			if err := edge.CheckPair(p); err != nil {
				return e, bad("RoutesFile", c.RoutesFile, "tls: %v", err)
			}
		}
	} else if s.TLSCert != "" || s.TLSKey != "" {
		return e, bad("TLSCert", s.TLSCert, "set, but TETHER_TLS_LISTEN is not")
	}
	if e.TLSMinVersion, err = edge.ParseMinVersion(s.TLSMinVersion); err != nil {
		return e, bad("TLSMinVersion", s.TLSMinVersion, "%v", err)
	}
	if e.TicketRotate, err = time.ParseDuration(strings.TrimSpace(s.TLSTicketRotate)); err != nil || e.TicketRotate < time.Minute || e.TicketRotate > 24*time.Hour {
		return e, bad("TLSTicketRotate", s.TLSTicketRotate, "want a duration in 1m..24h, like 1h")
	}
	if e.TicketKeep, err = strconv.Atoi(strings.TrimSpace(s.TLSTicketKeep)); err != nil || e.TicketKeep < 1 || e.TicketKeep > gossip.MaxTicketKeys {
		return e, bad("TLSTicketKeep", s.TLSTicketKeep, "want a whole number in 1..%d", gossip.MaxTicketKeys)
	}
	if e.HTTPSRedirect, err = strconv.ParseBool(strings.TrimSpace(s.HTTPSRedirect)); err != nil {
		return e, bad("HTTPSRedirect", s.HTTPSRedirect, "want true or false")
	}
	if e.HTTPSRedirect && e.TLSListen == "" {
		return e, bad("HTTPSRedirect", s.HTTPSRedirect, "needs TETHER_TLS_LISTEN")
	}
	switch strings.ToLower(strings.TrimSpace(s.ProxyProtocol)) {
	case "on":
		e.ProxyProtocol = true
		if len(c.TrustedProxies) == 0 {
			return e, bad("ProxyProtocol", s.ProxyProtocol, "needs TETHER_TRUSTED_PROXIES (the balancers allowed to send the header)")
		}
	case "off", "":
	default:
		return e, bad("ProxyProtocol", s.ProxyProtocol, "want on or off")
	}
	switch a := strings.TrimSpace(s.AccessLog); strings.ToLower(a) {
	case "off", "":
	case "stdout", "stderr":
		e.AccessLog = strings.ToLower(a)
	default:
		e.AccessLog = a
	}
	switch e.AccessFormat = strings.ToLower(strings.TrimSpace(s.AccessLogFormat)); e.AccessFormat {
	case "json", "combined":
	default:
		return e, bad("AccessLogFormat", s.AccessLogFormat, "want json or combined")
	}
	if e.ClientPrefix, err = proxy.ParseClientPrefix(s.ClientPrefix); err != nil {
		return e, bad("ClientPrefix", s.ClientPrefix, "%v", err)
	}
	return e, nil
}

// tlsPort is the TLS listener's port, for the redirect.
func (e edgeConfig) tlsPort() string {
	_, p, _ := net.SplitHostPort(e.TLSListen)
	return p
}
