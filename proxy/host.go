package proxy

import (
	"net/netip"
	"strings"
)

// maxHostLen is the longest normalised Host accepted: a full DNS name.
// stickydb refuses longer hosts, so the proxy must too.
const maxHostLen = 253

// NormalizeHost turns a Host header (or a host named in the routes file)
// into the form bindings and routes are keyed by: lower case, without a
// port, without a trailing dot, IPv6 literals in brackets and in canonical
// form ("[2001:db8::1]"). ok is false for anything a Host cannot be: empty,
// bad characters, empty or over-long labels, a bad port, an IPv6 literal
// without brackets or with a zone. It allocates only when the host has to
// change (upper case, an IPv6 literal not in canonical form).
func NormalizeHost(h string) (host string, ok bool) {
	if h == "" {
		return "", false
	}
	if h[0] == '[' {
		return normalizeIPv6(h)
	}
	if i := strings.IndexByte(h, ':'); i >= 0 {
		if !validPort(h[i+1:]) {
			return "", false
		}
		h = h[:i]
	}
	if len(h) > 1 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if len(h) == 0 || len(h) > maxHostLen {
		return "", false
	}
	upper, label := false, 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == '.':
			if label == 0 {
				return "", false // empty label: ".a", "a..b"
			}
			label = 0
			continue
		default:
			return "", false
		}
		label++
		if label > 63 {
			return "", false
		}
	}
	if label == 0 {
		return "", false
	}
	if upper {
		h = strings.ToLower(h)
	}
	return h, true
}

// normalizeIPv6 handles "[v6]" and "[v6]:port".
func normalizeIPv6(h string) (string, bool) {
	end := strings.IndexByte(h, ']')
	if end < 0 {
		return "", false
	}
	if rest := h[end+1:]; rest != "" {
		if rest[0] != ':' || !validPort(rest[1:]) {
			return "", false
		}
	}
	lit := h[1:end]
	a, err := netip.ParseAddr(lit)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return "", false
	}
	var buf [64]byte
	if canon := a.AppendTo(buf[:0]); string(canon) != lit {
		return "[" + string(canon) + "]", true
	}
	return h[:end+1], true
}

// validPort accepts "" (RFC 3986 allows "host:") or a decimal port up to
// 65535.
func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}
