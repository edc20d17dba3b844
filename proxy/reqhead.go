package proxy

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
)

// parseRequestHead reads the plain kind of request head for the server's
// own connection loop (server.go) into r, as net/http's server would have
// read it, with one allocation for the head's text (every string of r
// points into it). Plain means: "GET" or "HEAD", an origin-form target of
// printable ASCII without a fragment, "HTTP/1.1", CRLF line ends only;
// every field name a token, every value free of control characters
// (obs-text allowed, as there); no folded line; exactly one Host, of the
// characters of a host name, an IPv4 or a bracketed IPv6 address and a
// port; no Content-Length, Transfer-Encoding, Expect, Upgrade or Trailer
// field. head is the block up to and including its blank line.
//
// Anything else returns false, and the connection goes to net/http's
// server with every byte read so far (server.go): framing and refusals —
// smuggling shapes, bad fields, limits — stay net/http's for every request
// this parser does not fully understand. FuzzRequestHead holds it to that:
// whatever it accepts, http.ReadRequest reads to the same request.
//
// r, u and h are reused across requests (h cleared by the caller); vals is
// scratch space for the values' slices, returned for the next request.
func parseRequestHead(head []byte, r *http.Request, u *url.URL, h http.Header, vals []string) ([]string, bool) {
	vals = vals[:0]
	line, _, _ := bytes.Cut(head, crlf)
	var method string
	var at int // where the target starts
	switch {
	case bytes.HasPrefix(line, []byte("GET /")):
		method, at = http.MethodGet, 4
	case bytes.HasPrefix(line, []byte("HEAD /")):
		method, at = http.MethodHead, 5
	default:
		return vals, false
	}
	sp := bytes.IndexByte(line[at:], ' ')
	if sp < 0 || string(line[at+sp+1:]) != "HTTP/1.1" {
		return vals, false
	}
	tEnd := at + sp
	qAt, simple := -1, true
	for i := at; i < tEnd; i++ {
		c := line[i]
		if c <= ' ' || c >= 0x7f || c == '#' {
			return vals, false
		}
		if qAt < 0 {
			if c == '?' {
				qAt = i
			} else if !plainPathChar[c] {
				simple = false
			}
		}
	}
	s := string(head) // the one allocation: every string below is a part of it
	target := s[at:tEnd]
	if simple {
		*u = url.URL{Path: target}
		if qAt >= 0 {
			u.Path, u.RawQuery = s[at:qAt], s[qAt+1:tEnd]
			u.ForceQuery = u.RawQuery == ""
		}
	} else {
		pu, err := url.ParseRequestURI(target)
		if err != nil {
			return vals, false
		}
		*u = *pu
	}
	host, hosts := "", 0
	for off := len(line) + 2; ; {
		i := bytes.Index(head[off:], crlf)
		if i < 0 {
			return vals, false
		}
		if i == 0 {
			if off+2 != len(head) || hosts != 1 {
				return vals, false
			}
			break
		}
		l := head[off : off+i]
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || hasCTLBytes(l[colon+1:]) {
			return vals, false // no name, a folded line, a bad value
		}
		valid, canonical := checkFieldName(l[:colon])
		if !valid {
			return vals, false
		}
		k := s[off : off+colon]
		if !canonical {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		raw := l[colon+1:]
		lead := 0
		for lead < len(raw) && (raw[lead] == ' ' || raw[lead] == '\t') {
			lead++
		}
		vs := off + colon + 1 + lead
		val := s[vs : vs+len(trimOWS(raw))]
		switch k {
		case "Host":
			if !plainHost(val) {
				return vals, false
			}
			host = val
			hosts++
			off += i + 2
			continue
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Trailer":
			return vals, false
		}
		if old, ok := h[k]; ok {
			h[k] = append(old, val)
		} else {
			vals = append(vals, val)
			h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
		off += i + 2
	}
	r.Method = method
	r.URL = u
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = h
	r.Host = host
	r.RequestURI = target
	r.Body = http.NoBody
	r.ContentLength = 0
	r.Close = valuesHaveToken(h["Connection"], "close")
	return vals, true
}

// plainPathChar marks the bytes a path may hold and stay as it is through
// url.URL's parsing (unescaped and escaped alike: no RawPath).
var plainPathChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// plainHost: a Host value of letters, digits and ".-_:[]", non-empty, at
// most 255 bytes (a subset of what httpguts.ValidHostHeader takes).
func plainHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
