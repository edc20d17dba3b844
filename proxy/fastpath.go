package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"
)

// The fast path: tether's own HTTP/1.1 forwarding for plain requests.
//
// httputil.ReverseProxy with http.Transport costs, per request, a deep copy
// of the request (Clone, then WithContext for its trace hook), header map
// passes (hop-by-hop removal on both sides, a copy of the response
// headers), and on the transport side two goroutines per connection (a
// write loop and a read loop) that every request hands its work to and
// back through channels. On a loaded machine those handoffs are most of
// the cost: goroutine wakeups, futex sleeps, runtime scheduling.
//
// For a GET or HEAD without a body or an upgrade, to an http:// replica,
// tether does the same work itself on the request's goroutine: it writes
// the request ReverseProxy would have written (the same Rewrite: path
// joined to the replica's, the client's Host kept, X-Forwarded-For/-Host/
// -Proto as SetXForwarded sets them, trusted peers' forwarding headers kept,
// hop-by-hop and Connection-listed headers dropped) straight from the
// incoming request into the connection's buffer, reads the response with
// http.ReadResponse (the standard library's parser and framing rules: no
// second parser to get wrong), and copies it out as ReverseProxy does
// (hop-by-hop headers dropped, trailers, event streams and unknown-length
// bodies flushed as they come, a failed copy aborting the client
// connection). Its connections come from a keep-alive pool per replica
// (connpool.go). Anything else — a request body, an upgrade, a query
// ReverseProxy would re-encode, an https replica, a periodic FlushInterval
// — takes ReverseProxy, as does every request with Forwarding "stdlib".
//
// Timeouts and cancellation without a goroutine: one deadline covers the
// write and the first watchAfter of the wait for the response; a response
// later than that arms a cancellation watch (context.AfterFunc closing the
// connection when the client goes away) and the deadline moves to
// ResponseHeaderTimeout. A body not already in the buffer is read with no
// deadline under the same watch. So a fast response costs one deadline and
// no watch; a slow one notices a client that left within watchAfter.

// Forwarding modes (Config.Forwarding).
const (
	ForwardFast   = "fast"
	ForwardStdlib = "stdlib"
)

// watchAfter is how long a request waits for its response before it
// watches for the client going away.
const watchAfter = 250 * time.Millisecond

// reencodesQueries: with GODEBUG urlmaxqueryparams set, ReverseProxy
// re-encodes every query; the fast path then leaves all queries to it.
var reencodesQueries = strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams")

// fastEligible reports whether r can take the fast path to b.
func fastEligible(r *http.Request, b *backend) bool {
	switch {
	case b.conns == nil, r.ProtoMajor != 1,
		r.Method != http.MethodGet && r.Method != http.MethodHead,
		r.ContentLength != 0, r.Body != nil && r.Body != http.NoBody,
		r.URL.Opaque != "", r.Header["Upgrade"] != nil,
		!queryIsClean(r.URL.RawQuery):
		return false
	}
	return true
}

// queryIsClean reports whether ReverseProxy would send the query as it is
// (its cleanQueryParams returns it unchanged).
func queryIsClean(s string) bool {
	if s == "" {
		return true
	}
	if reencodesQueries || strings.Count(s, "&")+1 > 10000 {
		return false
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return false
			}
			i += 3
		default:
			i++
		}
	}
	return true
}

// forwardFast forwards r to b on the fast path.
func (p *Proxy) forwardFast(rw *respWriter, r *http.Request, b *backend) {
	var conn tokens
	conn.parse(r.Header["Connection"])
	c, res, ph, err := p.roundTripFast(rw, r, b, &conn)
	if err != nil {
		p.errorHandler(rw, r, err)
		return
	}
	if res == nil {
		p.copyPlain(rw, r, c, ph)
		return
	}
	p.copyResponseFast(rw, r, c, res)
}

// roundTripFast sends r on a pooled or new connection and reads the
// response headers (forwarding 1xx responses): a plain head straight into
// the client's header (res nil, see parseHead), any other into res. A
// request whose sending failed, or whose reused connection failed before
// any byte of the response came (the replica closed it while it was
// idle), is sent once more on a new connection, the idle pool dropped:
// GET and HEAD are safe to repeat.
func (p *Proxy) roundTripFast(rw *respWriter, r *http.Request, b *backend, conn *tokens) (*fastConn, *http.Response, plainHead, error) {
	ctx := r.Context()
	cp := b.conns
	for try := 0; ; try++ {
		now := time.Now()
		var c *fastConn
		var first, last time.Time
		if try == 0 {
			for c = cp.get(now); c != nil; c = cp.get(now) {
				first, last = p.armDeadline(c, now) // before the probe: an expired deadline fails it
				if c.probe() {
					c.reused = true
					break
				}
				c.close()
			}
		}
		if c == nil {
			var err error
			if c, err = cp.dial(ctx); err != nil {
				return nil, nil, plainHead{}, err
			}
			now = time.Now()
			first, last = p.armDeadline(c, now)
		}
		read := c.cr.n
		res, ph, err := p.exchange(ctx, rw, r, b, conn, c, first, last)
		if err == nil {
			return c, res, ph, nil
		}
		c.unwatch()
		c.close()
		if ce := ctx.Err(); ce != nil {
			return nil, nil, plainHead{}, ce
		}
		var we *writeError
		if try == 0 && (errors.As(err, &we) || c.reused && c.cr.n == read && !isTimeout(err)) && err != errInvalidRequest {
			cp.closeIdle()
			continue
		}
		return nil, nil, plainHead{}, err
	}
}

// armDeadline gives c the deadlines of a request sent at now. Reading:
// first for the first wait, last for the response headers; first is
// now+watchAfter, or the read deadline c already has when that falls
// between now+watchAfter/2 and now+watchAfter (a read deadline that
// strikes early only arms the watch sooner), so a busy connection sets it
// once every watchAfter/2 rather than once a request. When
// ResponseHeaderTimeout is no longer than watchAfter, first is last.
// Writing: a deadline between now+ResponseHeaderTimeout/2 and last, only
// against a replica that stops reading; never a short one, which a
// request stalled by a busy machine between here and its write would
// run into.
func (p *Proxy) armDeadline(c *fastConn, now time.Time) (first, last time.Time) {
	rht := p.cfg.ResponseHeaderTimeout
	last = now.Add(rht)
	if c.wdl.IsZero() || c.wdl.After(last) || c.wdl.Before(now.Add(rht/2)) {
		_ = c.nc.SetWriteDeadline(last)
		c.wdl = last
	}
	if rht <= watchAfter {
		c.setReadDeadline(last)
		return last, last
	}
	first = now.Add(watchAfter)
	if !c.rdl.IsZero() && !c.rdl.After(first) && !c.rdl.Before(now.Add(watchAfter/2)) {
		return c.rdl, last
	}
	c.setReadDeadline(first)
	return first, last
}

// writeError marks an error that came from sending the request: nothing
// of it can have been answered, so it may go again on a new connection.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// exchange writes r on c and reads the final response's headers.
func (p *Proxy) exchange(ctx context.Context, rw *respWriter, r *http.Request, b *backend, conn *tokens, c *fastConn, first, last time.Time) (*http.Response, plainHead, error) {
	if err := p.writeRequest(c.bw, r, b, conn); err != nil {
		return nil, plainHead{}, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, plainHead{}, &writeError{err}
	}
	_, err := c.br.Peek(1)
	if err != nil && first.Before(last) && isTimeout(err) {
		// Slow replica: watch the client from now on, wait up to the
		// header timeout.
		if ctx.Err() != nil {
			return nil, plainHead{}, ctx.Err()
		}
		c.stop = context.AfterFunc(ctx, c.abort)
		c.setReadDeadline(last)
		_, err = c.br.Peek(1)
	}
	if err != nil {
		return nil, plainHead{}, err
	}
	if ph, ok := parseHead(c.br, r.Method, rw.Header()); ok {
		return nil, ph, nil
	}
	for {
		if !headerBuffered(c.br) {
			c.setReadDeadline(last) // headers arriving in pieces
		}
		c.cr.lim = c.cr.n + maxResponseHeaderBytes
		res, err := http.ReadResponse(c.br, r)
		c.cr.lim = math.MaxInt64
		if err != nil {
			return nil, plainHead{}, err
		}
		if res.StatusCode < 100 || res.StatusCode > 199 || res.StatusCode == http.StatusSwitchingProtocols {
			return res, plainHead{}, nil
		}
		// An informational response: pass it on as ReverseProxy does
		// (its Got1xxResponse trace hook), then read the next. As there,
		// their number is not bounded, their time is: all of them and the
		// final response's headers come within ResponseHeaderTimeout.
		h := rw.Header()
		copyHeaderShared(h, res.Header)
		rw.WriteHeader(res.StatusCode)
		clear(h)
	}
}

// headerBuffered reports whether a whole header block (up to its blank
// line) is in the read buffer, so reading it cannot block. A head with
// bare LF line ends is taken as never whole: it gets the long deadline.
func headerBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.Contains(buf, crlfcrlf)
}

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
		if peer, ok := peerAddr(r.RemoteAddr); ok && p.trusted.Contains(peer) {
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

// copyResponseFast sends res to the client as ReverseProxy does, then
// returns c to its pool when the response ended cleanly.
func (p *Proxy) copyResponseFast(rw *respWriter, r *http.Request, c *fastConn, res *http.Response) {
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Nothing asked for an upgrade (those take ReverseProxy).
		c.unwatch()
		c.close()
		p.errorHandler(rw, r, errUnexpectedUpgrade)
		return
	}
	h := rw.Header()
	var conn tokens
	conn.parse(res.Header["Connection"])
	for k, vv := range res.Header {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		if conn.has(k) {
			continue
		}
		if old, ok := h[k]; ok {
			h[k] = append(old, vv...)
		} else {
			h[k] = vv
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	rw.WriteHeader(res.StatusCode)

	flushEach := p.cfg.FlushInterval < 0 || res.ContentLength == -1
	if ct := res.Header["Content-Type"]; len(ct) > 0 && isEventStream(ct[0]) {
		flushEach = true
	}
	if res.Body != http.NoBody && (res.ContentLength < 0 || int64(c.br.Buffered()) < res.ContentLength) {
		// The body is still on its way: read it without a deadline,
		// watching the client.
		c.setReadDeadline(time.Time{})
		if c.stop == nil {
			c.stop = context.AfterFunc(r.Context(), c.abort)
		}
	}
	if flushEach {
		// The headers go out now, as ReverseProxy's latency writer sends
		// them: its flush timer (set to fire at once) races the first
		// write there, and mostly wins.
		rw.Flush()
	}
	buf := p.buffers.Get()
	err := p.copyBody(rw, res.Body, buf, flushEach, r.Context())
	p.buffers.Put(buf)
	if err != nil {
		// Not res.Body.Close: it would read the rest of the body.
		c.unwatch()
		c.close()
		if r.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler) // the only way left to tell the client
		}
		return
	}
	_ = res.Body.Close() // read to the end: fills res.Trailer
	if c.unwatch() && !res.Close && c.br.Buffered() == 0 {
		c.pool.put(c, time.Now())
	} else {
		c.close()
	}
	if len(res.Trailer) > 0 {
		rw.Flush() // forces chunking, so that trailers can follow
	}
	if len(res.Trailer) == announced {
		copyHeaderShared(h, res.Trailer)
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			h.Add(k, v)
		}
	}
}

// copyPlain sends the body of a plain response (its head is already in
// the client's header) and returns c to its pool when it ended cleanly.
func (p *Proxy) copyPlain(rw *respWriter, r *http.Request, c *fastConn, ph plainHead) {
	rw.WriteHeader(ph.status)
	flushEach := p.cfg.FlushInterval < 0 || ph.eventStream
	var err error
	switch {
	case ph.length == 0:
	case ph.length <= int64(c.br.Buffered()):
		// The whole body is in the buffer: hand it over from there.
		if flushEach {
			rw.Flush() // headers first (see copyResponseFast)
		}
		b, _ := c.br.Peek(int(ph.length))
		_, err = rw.Write(b)
		_, _ = c.br.Discard(len(b))
		if flushEach && err == nil {
			rw.Flush()
		}
	default:
		// Still on its way: read it without a deadline, watching the
		// client.
		c.setReadDeadline(time.Time{})
		if c.stop == nil {
			c.stop = context.AfterFunc(r.Context(), c.abort)
		}
		if flushEach {
			rw.Flush() // headers first (see copyResponseFast)
		}
		c.body = plainBody{br: c.br, n: ph.length}
		buf := p.buffers.Get()
		err = p.copyBody(rw, &c.body, buf, flushEach, r.Context())
		p.buffers.Put(buf)
	}
	if err != nil {
		c.unwatch()
		c.close()
		if r.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	if c.unwatch() && !ph.close && c.br.Buffered() == 0 {
		c.pool.put(c, time.Now())
	} else {
		c.close()
	}
}

// copyBody is ReverseProxy's copyBuffer, flushing after every write when
// flushEach.
func (p *Proxy) copyBody(dst *respWriter, src io.Reader, buf []byte, flushEach bool, ctx context.Context) error {
	for {
		nr, rerr := src.Read(buf)
		if rerr != nil && rerr != io.EOF {
			if ce := ctx.Err(); ce != nil {
				rerr = ce // the watch closed the connection: the client left
			} else if e := p.log.Debug(); e.Enabled() {
				e.Err(rerr).Msg("read error during body copy")
			}
		}
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
			if flushEach {
				dst.Flush()
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

// copyHeaderShared adds src's values to dst, sharing src's slices when dst
// has none of its own (src is not used after).
func copyHeaderShared(dst, src http.Header) {
	for k, vv := range src {
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv
		}
	}
}

// isEventStream reports whether a Content-Type is text/event-stream
// (ReverseProxy flushes those at once). It errs toward yes: a malformed
// value ReverseProxy would not recognise may still flush, never the other
// way round.
func isEventStream(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

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
		if i := strings.IndexByte(v, ','); i >= 0 {
			f, v = v[:i], v[i+1:]
		} else {
			f, v = v, ""
		}
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
		if i := strings.IndexByte(v, ','); i >= 0 {
			f, v = v[:i], v[i+1:]
		} else {
			f, v = v, ""
		}
		if asciiFold(strings.Trim(f, " \t"), token) {
			return true
		}
	}
	return false
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
