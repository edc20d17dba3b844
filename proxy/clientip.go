package proxy

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Trusted is the set of proxies whose forwarding headers are believed
// (TETHER_TRUSTED_PROXIES). The zero value trusts nobody.
type Trusted []netip.Prefix

// Contains reports whether a is inside one of the prefixes.
func (t Trusted) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address a binding is keyed by. It is the TCP peer,
// unless the peer is a trusted proxy: then it is the right-most address of
// X-Forwarded-For (xff, all header lines in order) that is not itself a
// trusted proxy. Only when xff is empty is RFC 7239 Forwarded (fwd) read
// the same way, through its for= parameters; a trusted proxy in front of
// tether must set or append X-Forwarded-For, or else strip it, since a client
// could otherwise send one of its own choosing.
//
// An entry that is not an IP address ("unknown", an obfuscated name,
// garbage) ends the walk: the last trusted hop before it is the client.
// When every hop is trusted, the left-most is the client. The result is
// always the peer or an address taken from the headers, IPv4-mapped
// addresses folded to IPv4, zones dropped.
func ClientIP(peer netip.Addr, xff, fwd []string, trusted Trusted) netip.Addr {
	peer = peer.Unmap().WithZone("")
	if len(trusted) == 0 || !trusted.Contains(peer) {
		return peer
	}
	if len(xff) > 0 {
		return walk(peer, xff, trusted, xffEntries)
	}
	if len(fwd) > 0 {
		return walk(peer, fwd, trusted, forwardedFors)
	}
	return peer
}

// walk visits the header lines right to left; each splits its entries
// right to left through next, which returns an entry and the rest of the
// line before it (more=false when the line is used up).
func walk(cur netip.Addr, lines []string, trusted Trusted, next func(string) (entry, rest string, more bool)) netip.Addr {
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for more := true; more; {
			var e string
			e, line, more = next(line)
			if e == "" {
				continue // "a,,b" or trailing comma: skip blank entries
			}
			a, ok := parseNode(e)
			if !ok {
				return cur
			}
			cur = a
			if !trusted.Contains(a) {
				return a
			}
		}
	}
	return cur
}

// xffEntries splits the right-most entry off an X-Forwarded-For line.
func xffEntries(line string) (string, string, bool) {
	i := strings.LastIndexByte(line, ',')
	if i < 0 {
		return strings.TrimSpace(line), "", false
	}
	return strings.TrimSpace(line[i+1:]), line[:i], true
}

// forwardedFors splits the right-most element off a Forwarded line and
// returns its for= value (unquoted), or "-" when the element has none, so
// that the walk stops there as it would at an unknown hop.
func forwardedFors(line string) (string, string, bool) {
	i := lastUnquoted(line, ',')
	elem, rest, more := line, "", false
	if i >= 0 {
		elem, rest, more = line[i+1:], line[:i], true
	}
	elem = strings.TrimSpace(elem)
	if elem == "" {
		return "", rest, more
	}
	for elem != "" {
		var pair string
		if j := firstUnquoted(elem, ';'); j >= 0 {
			pair, elem = elem[:j], elem[j+1:]
		} else {
			pair, elem = elem, ""
		}
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
		}
		if v == "" {
			return "-", rest, more
		}
		return v, rest, more
	}
	return "-", rest, more
}

func lastUnquoted(s string, sep byte) int {
	q, last := false, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			q = !q
		case sep:
			if !q {
				last = i
			}
		}
	}
	return last
}

func firstUnquoted(s string, sep byte) int {
	q := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			q = !q
		case sep:
			if !q {
				return i
			}
		}
	}
	return -1
}

// parseNode reads an address as proxies write it: "1.2.3.4", "1.2.3.4:80",
// "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80". A zone is dropped.
func parseNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

// peerAddr parses http.Request.RemoteAddr without allocating.
// requestPeer is peerAddr of r.RemoteAddr; on the connection loop it is
// parsed once per connection.
func requestPeer(r *http.Request) (netip.Addr, bool) {
	if rc, ok := r.Context().(*reqCtx); ok && rc.lc.remote == r.RemoteAddr {
		lc := rc.lc
		if !lc.peerParsed {
			lc.peer, lc.peerOK = peerAddr(lc.remote)
			lc.peerParsed = true
		}
		return lc.peer, lc.peerOK
	}
	return peerAddr(r.RemoteAddr)
}

func peerAddr(remote string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, err := netip.ParseAddr(remote)
		return a.Unmap(), err == nil
	}
	return ap.Addr().Unmap(), true
}

// ClientPrefix is how much of a client's address keys its binding
// (TETHER_CLIENT_PREFIX): the first V4 bits of an IPv4 address, the first
// V6 bits of an IPv6 address. The default, 32 and 64, keys an IPv4 client
// by its address and an IPv6 client by its /64: a host's privacy addresses
// (RFC 8981) rotate inside one /64, and a /64 is one site's subnet.
type ClientPrefix struct{ V4, V6 int }

// DefaultClientPrefix is 32,64.
var DefaultClientPrefix = ClientPrefix{32, 64}

// ParseClientPrefix reads "v4bits,v6bits" (e.g. "32,64", "24,48").
func ParseClientPrefix(s string) (ClientPrefix, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return ClientPrefix{}, errors.New("want IPv4 bits,IPv6 bits (like 32,64)")
	}
	v4, err1 := strconv.Atoi(strings.TrimSpace(a))
	v6, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || v4 < 8 || v4 > 32 || v6 < 16 || v6 > 128 {
		return ClientPrefix{}, errors.New("want IPv4 bits 8..32, IPv6 bits 16..128 (like 32,64)")
	}
	return ClientPrefix{v4, v6}, nil
}

// Mask returns a's network address under the prefix (a itself when the
// prefix is the whole address or p is zero). a must be unmapped.
func (p ClientPrefix) Mask(a netip.Addr) netip.Addr {
	bits := p.V6
	if a.Is4() {
		bits = p.V4
	}
	if bits <= 0 || bits >= a.BitLen() {
		return a
	}
	pf, err := a.Prefix(bits)
	if err != nil {
		return a
	}
	return pf.Addr()
}
