package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
)

// parseHead reads the plain kind of final response straight into the
// client's header, as http.ReadResponse followed by ReverseProxy's
// hop-by-hop removal and header copy would leave it, but with two
// allocations instead of about ten. Plain means: the whole head is in the
// read buffer with CRLF line ends; "HTTP/1.1" and a status from 200 to
// 599; no Transfer-Encoding, no Pragma, no folded line; every field name a
// token and every value free of control characters; and the body framed
// by exactly one valid Content-Length, or absent by the request method
// (HEAD) or the status (204, 304). Anything else — and anything
// ReadResponse would refuse — returns ok false having consumed and
// written nothing, and ReadResponse reads the head instead: the framing
// rules that matter against response splitting stay the standard
// library's for every response this parser does not fully understand.

// plainHead is a final response head read by parseHead.
type plainHead struct {
	status      int
	length      int64 // the body's length; 0 when there is none
	close       bool  // Connection: close
	eventStream bool  // Content-Type text/event-stream: flush as it comes
}

// maxPlainLines bounds the header fields parseHead handles.
const maxPlainLines = 64

var crlfcrlf = []byte("\r\n\r\n")

func parseHead(br *bufio.Reader, method string, h http.Header) (ph plainHead, ok bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 || len(buf) < 16 {
		return ph, false
	}
	head := buf[:end+2] // through the last field's CRLF
	// Status line: "HTTP/1.1 ddd[ reason]".
	line, rest, _ := bytes.Cut(head, crlf)
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return ph, false
	}
	d0, d1, d2 := line[9]-'0', line[10]-'0', line[11]-'0'
	if d0 < 2 || d0 > 5 || d1 > 9 || d2 > 9 || hasCTLBytes(line[12:]) {
		return ph, false
	}
	ph.status = int(d0)*100 + int(d1)*10 + int(d2)
	// First pass: check every line, find the framing fields.
	var (
		lines    [maxPlainLines][2]int // name end, line end (offsets in rest)
		odd      uint64                // lines whose name is not in canonical form
		n        int
		clSeen   bool
		connAt   [4]int // lines of Connection fields
		nConn    int
		typeLine = -1 // the first Content-Type line
	)
	for off := 0; off < len(rest); {
		i := bytes.Index(rest[off:], crlf)
		if i < 0 || n == maxPlainLines {
			return ph, false
		}
		l := rest[off : off+i]
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || hasCTLBytes(l[colon+1:]) {
			return ph, false // no name, a folded line, a bad value
		}
		valid, canonical := checkFieldName(l[:colon])
		if !valid {
			return ph, false
		}
		name, value := l[:colon], trimOWS(l[colon+1:])
		switch {
		case foldEq(name, "Content-Length"):
			if clSeen {
				return ph, false // ReadResponse's rules for several
			}
			clSeen = true
			cl, ok := parseLength(value)
			if !ok {
				return ph, false
			}
			ph.length = cl
		case foldEq(name, "Transfer-Encoding"), foldEq(name, "Pragma"):
			return ph, false
		case foldEq(name, "Connection"):
			if nConn == len(connAt) {
				return ph, false
			}
			connAt[nConn] = n
			nConn++
		case foldEq(name, "Content-Type"):
			if typeLine < 0 {
				typeLine = n
			}
		}
		lines[n] = [2]int{off + colon, off + i}
		if !canonical {
			odd |= 1 << n
		}
		n++
		off += i + 2
	}
	bodyless := method == http.MethodHead || ph.status == http.StatusNoContent || ph.status == http.StatusNotModified
	switch {
	case bodyless:
		ph.length = 0
	case !clSeen:
		return ph, false // read until close: ReadResponse's case
	}
	// Second pass: the fields into h, sharing one string.
	s := string(rest)
	value := func(j int) string { return textproto.TrimString(s[lines[j][0]+1 : lines[j][1]]) }
	var conn tokens
	for _, j := range connAt[:nConn] {
		v := value(j)
		conn.parseOne(v)
		if valueHasToken(v, "close") {
			ph.close = true
		}
	}
	if typeLine >= 0 {
		ph.eventStream = isEventStream(value(typeLine))
	}
	vals := make([]string, n)
	fresh := len(h) == 0 // then a name can only repeat within this head
	var seen [maxPlainLines]string
	for j := 0; j < n; j++ {
		start := 0
		if j > 0 {
			start = lines[j-1][1] + 2
		}
		k := s[start:lines[j][0]]
		if odd&(1<<j) != 0 {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		if conn.hopByHop(k) {
			continue
		}
		v := value(j)
		repeat := !fresh
		for _, o := range seen[:j] {
			if o == k {
				repeat = true
				break
			}
		}
		seen[j] = k
		if repeat {
			if old, ok := h[k]; ok {
				h[k] = append(old, v)
				continue
			}
		}
		vals[j] = v
		h[k] = vals[j : j+1 : j+1]
	}
	_, _ = br.Discard(end + 4)
	return ph, true
}

var crlf = []byte("\r\n")

// parseLength is http's parseContentLength for one value: decimal
// digits only, at most 18 of them (no overflow).
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func hasCTLBytes(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// checkFieldName reports whether k is a token (a valid field name) and
// whether it is already in textproto's canonical form (upper case at the
// start and after each hyphen, lower case elsewhere).
func checkFieldName(k []byte) (valid, canonical bool) {
	if len(k) == 0 {
		return false, false
	}
	canonical, upper := true, true
	for _, c := range k {
		if c >= 0x80 || !tokenChar[c] {
			return false, false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	return true, canonical
}

// foldEq compares a field name with a canonical one, ASCII
// case-insensitively, without allocating.
func foldEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// plainBody reads a Content-Length body from the connection's buffer; a
// connection that ends early is io.ErrUnexpectedEOF, as http's body
// reader has it.
type plainBody struct {
	br *bufio.Reader
	n  int64
}

func (b *plainBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
