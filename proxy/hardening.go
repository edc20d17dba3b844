package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Request rules shared by every server loop (net/http's and a faster one):
// what is refused before routing, and the admin cookies that never reach a
// replica. See docs/security.md.

// AdminCookiePrefix starts the name of every cookie the admin listener
// sets (web uses it). Browsers send cookies by host, not by port, so the
// admin's session would otherwise ride along on requests to the proxy port
// of the same host and reach the replicas; the proxy removes them.
const AdminCookiePrefix = "tether_admin_"

// RequestRules are the checks a request passes before routing.
type RequestRules struct {
	// AllowTrace forwards TRACE (it echoes the request, cookies included,
	// back to the client: off by default).
	AllowTrace bool
	// MaxConnectionTokens bounds the options a Connection header may list
	// (each names a field to remove, which costs a pass over the header).
	// Default 16.
	MaxConnectionTokens int
}

// Check returns 0 for a request that may go on, or the status and the
// one-line reason to refuse it with. It does not allocate.
func (rr RequestRules) Check(method string, connection []string) (int, string) {
	switch method {
	case http.MethodConnect:
		return http.StatusMethodNotAllowed, "tether: CONNECT is not supported (not a forward proxy)\n"
	case http.MethodTrace:
		if !rr.AllowTrace {
			return http.StatusMethodNotAllowed, "tether: TRACE is disabled\n"
		}
	}
	if len(connection) > 0 && rr.MaxConnectionTokens > 0 {
		n := 0
		for _, v := range connection {
			n += strings.Count(v, ",") + 1
		}
		if n > rr.MaxConnectionTokens {
			return http.StatusBadRequest, "tether: too many Connection options\n"
		}
	}
	return 0, ""
}

// StripAdminCookies removes the admin listener's cookies from h's Cookie
// fields (dropping fields left empty). The common case, no such cookie, is
// one substring search per Cookie field and no allocation.
func StripAdminCookies(h http.Header) {
	vv := h["Cookie"]
	found := false
	for _, v := range vv {
		if strings.Contains(v, AdminCookiePrefix) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	out := make([]string, 0, len(vv))
	for _, v := range vv {
		var kept []string
		for _, c := range strings.Split(v, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(c), "=")
			if !strings.HasPrefix(name, AdminCookiePrefix) && strings.TrimSpace(c) != "" {
				kept = append(kept, strings.TrimSpace(c))
			}
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}

// Timeouts against clients that send or read too slowly. Each is an idle
// limit, renewed as bytes flow, so long streams and uploads keep working
// while traffic moves (tunnels: connlimit's TunnelIdleTimeout).
type Timeouts struct {
	// BodyIdle cuts a request body with no byte for this long; with
	// MinBodyRate (bytes/s) the body must also average that rate after the
	// first BodyIdle. Defaults 30s and 256 B/s (0 takes the default, a
	// negative value turns the limit off).
	BodyIdle    time.Duration
	MinBodyRate int64
	// WriteIdle cuts a response the client does not read: a write to the
	// client that cannot finish in this long fails. Default 30s (negative:
	// off).
	WriteIdle time.Duration
}

// deadlineBody renews the connection's read deadline before each read of
// a request body.
type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	to    Timeouts
	start time.Time
	n     int64
	done  atomic.Bool // the handler returned: the connection may serve another request
	armed atomic.Bool // the transport reads from its own goroutine
	eof   atomic.Bool // read to the end
	fail  atomic.Bool // a read failed (the deadline passed)
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		return b.ReadCloser.Read(p)
	}
	now := time.Now()
	dl := now.Add(b.to.BodyIdle)
	if b.to.MinBodyRate > 0 {
		if r := b.start.Add(b.to.BodyIdle + time.Duration(b.n)*time.Second/time.Duration(b.to.MinBodyRate)); r.Before(dl) {
			dl = r
		}
	}
	_ = b.rc.SetReadDeadline(dl)
	b.armed.Store(true)
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof.Store(true)
		b.disarm()
	} else if err != nil {
		b.fail.Store(true)
	}
	return n, err
}

// disarm clears the read deadline once the body is read: net/http watches
// the connection for a closing client while the handler runs, and a
// deadline there would cancel the request.
func (b *deadlineBody) disarm() {
	if b.armed.Swap(false) {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

// writeDeadline renews the client connection's write deadline before a
// write, at most every quarter of WriteIdle.
func (w *respWriter) writeDeadline() {
	if w.writeIdle <= 0 {
		return
	}
	now := time.Now()
	if now.Add(w.writeIdle - w.writeIdle/4).Before(w.wdl) {
		return
	}
	w.wdl = now.Add(w.writeIdle)
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(w.wdl)
}

// clearDeadlines undoes what the request set, before the connection serves
// its next request (net/http resets read deadlines itself, but not write
// deadlines when http.Server.WriteTimeout is 0).
func (w *respWriter) clearDeadlines(body *deadlineBody) {
	if body != nil {
		body.done.Store(true)
		switch {
		case body.fail.Load():
			// net/http would read up to 256 KiB of what is left to keep
			// the connection: not from a client too slow to send it.
			body.armed.Store(false)
			_ = body.rc.SetReadDeadline(time.Now())
		case !body.eof.Load():
			// The replica answered without reading it all; what net/http
			// drains after the handler comes within BodyIdle.
			body.armed.Store(false)
			_ = body.rc.SetReadDeadline(time.Now().Add(body.to.BodyIdle))
		default:
			body.disarm()
		}
	}
	if !w.wdl.IsZero() {
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Time{})
		w.wdl = time.Time{}
	}
}
