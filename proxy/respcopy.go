package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

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
		if conn.hopByHop(k) {
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
