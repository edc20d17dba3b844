package proxy

import (
	"net/textproto"
	"strings"
)

// tokens holds the header names listed in a Connection header: removed
// from the message as hop-by-hop (RFC 9110, 7.6.1).
type tokens struct {
	fixed [8]string
	n     int
	more  []string // past 8
}

func (t *tokens) parse(values []string) {
	for _, v := range values {
		t.parseOne(v)
	}
}

func (t *tokens) parseOne(v string) {
	for len(v) > 0 {
		var f string
		f, v, _ = strings.Cut(v, ",")
		if f = textproto.TrimString(f); f == "" {
			continue
		}
		if t.n < len(t.fixed) {
			t.fixed[t.n] = f
			t.n++
		} else {
			t.more = append(t.more, f)
		}
	}
}

// hopByHop reports whether a proxy must not forward the field with
// canonical name k: a hop-by-hop field, or one the Connection header lists.
func (t *tokens) hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return t.has(k)
}

// has reports whether the canonical header name k is listed. A listed
// name matches as http.Header.Del would match it: ASCII case-insensitively
// when it is a valid field name, not at all otherwise.
func (t *tokens) has(k string) bool {
	for i := 0; i < t.n; i++ {
		if asciiFold(t.fixed[i], k) {
			return true
		}
	}
	for _, f := range t.more {
		if asciiFold(f, k) {
			return true
		}
	}
	return false
}

// asciiFold compares a listed name with a canonical header name; k has
// only token characters, so a non-ASCII or non-token byte in f never
// matches.
func asciiFold(f, k string) bool {
	if len(f) != len(k) {
		return false
	}
	for i := 0; i < len(f); i++ {
		a, b := f[i], k[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// valuesHaveToken is httpguts.HeaderValuesContainsToken: a
// comma-separated token equal, ASCII case-insensitively, to token.
func valuesHaveToken(values []string, token string) bool {
	for _, v := range values {
		if valueHasToken(v, token) {
			return true
		}
	}
	return false
}

func valueHasToken(v, token string) bool {
	for len(v) > 0 {
		var f string
		f, v, _ = strings.Cut(v, ",")
		if asciiFold(strings.Trim(f, " \t"), token) {
			return true
		}
	}
	return false
}
