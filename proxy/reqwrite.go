package proxy

import (
	"bufio"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// writeRequest writes what ReverseProxy (Rewrite with SetURL and
// SetXForwarded, the client's Host kept) and http.Request.Write would send
// for r. Write errors stick in bw and come out of Flush; a header name or
// value that http.Transport would refuse (not from net/http's server,
// which refuses them itself) is errInvalidRequest.
func (p *Proxy) writeRequest(bw *bufio.Writer, r *http.Request, b *backend, conn *tokens) error {
	if hasCTL(r.URL.RawQuery) {
		return errInvalidRequest
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	path, rawPath := joinURLPath(b.url, r.URL)
	u := url.URL{Path: path, RawPath: rawPath}
	ep := u.EscapedPath()
	if ep == "" {
		ep = "/"
	}
	bw.WriteString(ep)
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	h := r.Header
	teTrailers := false
	for k, vv := range h {
		switch k {
		case "User-Agent": // its first value only, as Request.Write has it
			if len(vv) > 0 && !conn.has(k) {
				if v := textproto.TrimString(vv[0]); v != "" {
					if hasCTL(v) {
						return errInvalidRequest
					}
					writeField(bw, k, v)
				}
			}
			continue
		case "Te":
			teTrailers = valuesHaveToken(vv, "trailers")
			continue
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Trailer", "Transfer-Encoding", "Upgrade", // hop-by-hop
			"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", // Rewrite's own
			"Host", "Content-Length": // not written
			continue
		}
		if conn.has(k) {
			continue
		}
		if !validFieldName(k) {
			return errInvalidRequest
		}
		for _, v := range vv {
			v = textproto.TrimString(v)
			if hasCTL(v) {
				return errInvalidRequest
			}
			writeField(bw, k, v)
		}
	}
	if teTrailers {
		bw.WriteString("Te: trailers\r\n")
	}
	trusted := false
	if len(p.trusted) > 0 {
		if peer, ok := requestPeer(r); ok && p.trusted.Contains(peer) {
			trusted = true
			for _, v := range h["Forwarded"] {
				v = textproto.TrimString(v)
				if hasCTL(v) {
					return errInvalidRequest
				}
				writeField(bw, "Forwarded", v)
			}
		}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		if trusted {
			for _, v := range h["X-Forwarded-For"] {
				if hasCTL(v) {
					return errInvalidRequest
				}
				bw.WriteString(v)
				bw.WriteString(", ")
			}
		}
		if hasCTL(ip) {
			return errInvalidRequest
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	if hasCTL(r.Host) {
		return errInvalidRequest
	}
	writeField(bw, "X-Forwarded-Host", r.Host)
	if r.TLS == nil {
		bw.WriteString("X-Forwarded-Proto: http\r\n\r\n")
	} else {
		bw.WriteString("X-Forwarded-Proto: https\r\n\r\n")
	}
	return nil
}

// hasCTL: a control character other than tab (or DEL), which no header
// value, query or Host may carry (httpguts.ValidHeaderFieldValue).
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// validFieldName: a non-empty token (httpguts.ValidHeaderFieldName).
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// tokenChar marks the characters of an RFC 9110 token.
var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// asciiOnly: a replica's host that needs no IDNA conversion (http.Transport
// converts others; those take ReverseProxy).
func asciiOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// singleJoiningSlash and joinURLPath are httputil's (unexported there):
// how SetURL joins the replica's path and the request's.
func singleJoiningSlash(a, b string) string {
	aslash := strings.HasSuffix(a, "/")
	bslash := strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

func joinURLPath(a, b *url.URL) (path, rawpath string) {
	if a.RawPath == "" && b.RawPath == "" {
		return singleJoiningSlash(a.Path, b.Path), ""
	}
	apath := a.EscapedPath()
	bpath := b.EscapedPath()
	aslash := strings.HasSuffix(apath, "/")
	bslash := strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return a.Path + b.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return a.Path + "/" + b.Path, apath + "/" + bpath
	}
	return a.Path + b.Path, apath + bpath
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
