package web

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/tetherproxy/tether/stickydb"
)

// errBadInput is wrapped by every parse error; its text names the field.
var errBadInput = errors.New("web: bad input")

func badField(field, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", errBadInput, field, fmt.Sprintf(format, a...))
}

// inputMessage strips the sentinel prefix for the operator.
func inputMessage(err error) string {
	return strings.TrimPrefix(err.Error(), errBadInput.Error()+": ")
}

// Filter is a bindings search, as typed in the form or the query string.
type Filter struct {
	Client  string // IP or CIDR prefix
	Host    string
	Backend string
	Deleted bool
	Limit   int
	Cursor  string
	// Sort orders the matches: "" (key order, paged by cursor), "left"
	// (time left, soonest first), "backend" or "host" (then client).
	Sort string
}

// parseFilter reads client, host, backend, deleted, limit and cursor.
func (s *Server) parseFilter(v url.Values) (Filter, stickydb.Query, error) {
	f := Filter{
		Client:  strings.TrimSpace(v.Get("client")),
		Host:    strings.TrimSpace(v.Get("host")),
		Backend: strings.TrimSpace(v.Get("backend")),
		Cursor:  v.Get("cursor"),
		Limit:   s.cfg.PageSize,
	}
	q := stickydb.Query{Cursor: f.Cursor}
	if f.Client != "" {
		p, err := parseClientPrefix(f.Client)
		if err != nil {
			return f, q, err
		}
		if p.IsSingleIP() {
			p = netip.PrefixFrom(s.clientKey(p.Addr()), p.Bits())
		}
		q.Client = p
	}
	if f.Host != "" {
		h, err := parseHost(f.Host)
		if err != nil {
			return f, q, err
		}
		f.Host, q.Host = h, h
	}
	if f.Backend != "" {
		if len(f.Backend) > 255 {
			return f, q, badField("backend", "longer than 255 bytes")
		}
		q.Replica = f.Backend
	}
	switch d := strings.ToLower(v.Get("deleted")); d {
	case "", "0", "false", "off", "no":
	case "1", "true", "on", "yes":
		f.Deleted, q.Deleted = true, true
	default:
		return f, q, badField("deleted", "%q is not a boolean", d)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > s.cfg.MaxPageSize {
			return f, q, badField("limit", "%q is not a number from 1 to %d", l, s.cfg.MaxPageSize)
		}
		f.Limit = n
	}
	q.Limit = f.Limit
	switch so := strings.ToLower(strings.TrimSpace(v.Get("sort"))); so {
	case "", "key":
	case "left", "backend", "host":
		f.Sort = so
	default:
		return f, q, badField("sort", "%q: want left, backend or host", so)
	}
	if len(f.Cursor) > 512 {
		return f, q, badField("cursor", "too long")
	}
	return f, q, nil
}

// parseClientPrefix accepts an address ("10.1.2.3", "2001:db8::1") or a
// CIDR prefix ("10.1.0.0/16"); host bits of a prefix are masked.
func parseClientPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, badField("client", "%q is not an IP address or CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, badField("client", "%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseHost normalises a Host as the proxy does: lower case, no port.
func parseHost(s string) (string, error) {
	h := strings.ToLower(strings.TrimSuffix(s, "."))
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[:i], ":") {
		if _, err := strconv.Atoi(h[i+1:]); err == nil {
			h = h[:i]
		}
	}
	if _, err := stickydb.NewKey(netip.IPv4Unspecified(), h); err != nil {
		return "", badField("host", "%q is not a valid host name", s)
	}
	return h, nil
}

// clientKey is the address a client's binding is keyed by.
func (s *Server) clientKey(a netip.Addr) netip.Addr {
	if s.src.ClientKey == nil {
		return a
	}
	return s.src.ClientKey(a)
}

// parseKey builds the key of /bindings/{host}/{client}; client may be any
// address inside the client's prefix.
func (s *Server) parseKey(host, client string) (stickydb.Key, error) {
	h, err := parseHost(host)
	if err != nil {
		return stickydb.Key{}, err
	}
	a, err := netip.ParseAddr(client)
	if err != nil {
		return stickydb.Key{}, badField("client", "%q is not an IP address", client)
	}
	k, err := stickydb.NewKey(s.clientKey(a.Unmap().WithZone("")), h)
	if err != nil {
		return stickydb.Key{}, badField("client", "%q with host %q is not a valid key", client, host)
	}
	return k, nil
}

// checkReplica validates an operator's rebind target against the pool
// that serves host, when the proxy's pools are known.
func (s *Server) checkReplica(host, replica string) error {
	if replica == "" {
		return badField("replica", "required")
	}
	if len(replica) > 255 {
		return badField("replica", "longer than 255 bytes")
	}
	if s.src.Backends == nil {
		return nil
	}
	bs := s.src.Backends.Backends()
	pool, ok := poolFor(bs, host)
	for _, b := range bs {
		if b.Name == replica && (!ok || b.Pool == pool) {
			return nil
		}
	}
	if ok {
		return badField("replica", "%q is not a backend of pool %q, which serves %s", replica, pool, host)
	}
	return badField("replica", "%q is not a known backend", replica)
}
