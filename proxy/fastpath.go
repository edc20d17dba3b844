package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
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
// the client's header (res nil, see parseHead), any other into res. An idle
// connection found closed (or with stray bytes) as the request goes out is
// dropped unsent, and the next one tried. A request whose sending failed,
// or whose reused connection failed before any byte of the response came
// (the replica closed it while it was idle), is sent once more on a new
// connection, the idle pool dropped: GET and HEAD are safe to repeat.
func (p *Proxy) roundTripFast(rw *respWriter, r *http.Request, b *backend, conn *tokens) (*fastConn, *http.Response, plainHead, error) {
	ctx := r.Context()
	cp := b.conns
	for try := 0; ; try++ {
		var (
			c     *fastConn
			res   *http.Response
			ph    plainHead
			err   error
			clean bool // nothing of the response came
		)
		now := time.Now()
		if try == 0 {
			for c = cp.get(now); c != nil; c = cp.get(now) {
				c.reused = true
				if res, ph, clean, err = p.send(ctx, rw, r, b, conn, c, now); err != errIdleGone {
					break
				}
				c.close()
			}
		}
		if c == nil {
			if c, err = cp.dial(ctx); err != nil {
				return nil, nil, plainHead{}, err
			}
			res, ph, clean, err = p.send(ctx, rw, r, b, conn, c, time.Now())
		}
		if err == nil {
			return c, res, ph, nil
		}
		c.unwatch()
		c.close()
		if ce := ctx.Err(); ce != nil {
			return nil, nil, plainHead{}, ce
		}
		if try == 0 && (isWriteError(err) || c.reused && clean && !isTimeout(err)) && err != errInvalidRequest {
			cp.closeIdle()
			continue
		}
		return nil, nil, plainHead{}, err
	}
}

// send gives c the deadlines of a request sent at now and exchanges r on
// it; clean reports that no byte of a response was read.
func (p *Proxy) send(ctx context.Context, rw *respWriter, r *http.Request, b *backend, conn *tokens, c *fastConn, now time.Time) (*http.Response, plainHead, bool, error) {
	first, last := p.armDeadline(c, now) // before the probe: an expired deadline fails it
	read := c.cr.n
	res, ph, err := p.exchange(ctx, rw, r, b, conn, c, first, last)
	return res, ph, c.cr.n == read, err
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

// isWriteError reports whether err is or wraps a *writeError.
func isWriteError(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}
func (e *writeError) Unwrap() error { return e.err }

// exchange writes r on c and reads the final response's headers.
func (p *Proxy) exchange(ctx context.Context, rw *respWriter, r *http.Request, b *backend, conn *tokens, c *fastConn, first, last time.Time) (*http.Response, plainHead, error) {
	if err := p.writeRequest(c.bw, r, b, conn); err != nil {
		return nil, plainHead{}, err
	}
	var err error
	flushed := false
	if c.flushWait != nil && c.br.Buffered() == 0 {
		flushed, err = c.flushWait(c.reused)
		if err != nil && (err == errIdleGone || isWriteError(err)) {
			return nil, plainHead{}, err
		}
	}
	if !flushed {
		if c.reused && !c.probe() {
			return nil, plainHead{}, errIdleGone
		}
		if err := c.bw.Flush(); err != nil {
			return nil, plainHead{}, &writeError{err}
		}
		err = nil
	}
	if err == nil {
		_, err = c.br.Peek(1)
	}
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
		connLines := rawConnection(c.br)
		res, err := http.ReadResponse(c.br, r)
		c.cr.lim = math.MaxInt64
		if err != nil {
			return nil, plainHead{}, err
		}
		if _, ok := res.Header["Connection"]; !ok && len(connLines) > 0 {
			// http.ReadResponse drops the Connection lines of a response
			// that says close, and with them the fields they name, which
			// a proxy must remove (RFC 9110 7.6.1): put them back for
			// copyResponseFast.
			res.Header["Connection"] = connLines
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

// rawConnection returns the values of the Connection lines of the response
// head in br's buffer, when the whole head is there.
func rawConnection(br *bufio.Reader) []string {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		return nil
	}
	var out []string
	for _, line := range bytes.Split(buf[:end], crlf) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Connection")) {
			out = append(out, string(bytes.TrimSpace(value)))
		}
	}
	return out
}

// headerBuffered reports whether a whole header block (up to its blank
// line) is in the read buffer, so reading it cannot block. A head with
// bare LF line ends is taken as never whole: it gets the long deadline.
func headerBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.Contains(buf, crlfcrlf)
}
