package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/stickydb"
)

// ErrClosed: the proxy was closed.
var ErrClosed = errors.New("proxy: closed")

var errBodyRead = errors.New("proxy: request body already sent")

// Proxy is the sticky reverse proxy of one node. It is an http.Handler;
// NewServer wraps it in a server with the configured timeouts.
type Proxy struct {
	cfg       Config
	db        Bindings
	log       zerolog.Logger
	now       func() time.Time
	realClock bool // Now is time.Now: one clock read serves bindings and latency
	trusted   Trusted
	transport *http.Transport
	buffers   *bufferPool
	errLog    *log.Logger
	m         *metrics
	checker   *http.Client

	catchUp     func(context.Context) error // Config.CatchUp
	catchUpWait time.Duration
	caughtUp    atomic.Bool

	table atomic.Pointer[table]

	mu     sync.Mutex // reloads, drain changes, checkers, Close
	closed bool
}

// New builds a proxy and starts the health checks of its replicas. Close
// stops them.
func New(cfg Config) (*Proxy, error) {
	realClock := cfg.Now == nil
	cfg.fill()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	db := cfg.Bindings
	if cfg.BindQuota.Burst > 0 {
		if db, err = newQuotaBindings(db, cfg.BindQuota, cfg.Registerer); err != nil {
			return nil, err
		}
	}
	p := &Proxy{
		cfg:         cfg,
		db:          db,
		catchUp:     cfg.CatchUp,
		catchUpWait: cfg.CatchUpWait,
		log:         cfg.Logger.With().Str("component", "proxy").Logger(),
		now:         cfg.Now,
		realClock:   realClock,
		trusted:     append(Trusted(nil), cfg.TrustedProxies...),
		transport:   newTransport(cfg),
		buffers:     newBufferPool(cfg.BufferSize, 256),
		m:           m,
	}
	p.errLog = log.New(debugWriter{p.log}, "", 0)
	p.checker = &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.mu.Lock()
	p.install(cfg.Routes.clone())
	p.mu.Unlock()
	t := p.table.Load()
	ev := p.log.Info().Int("pools", len(t.pools))
	n := 0
	for _, pl := range t.pools {
		n += len(pl.backends)
	}
	ev.Int("backends", n).Int("trusted_proxies", len(p.trusted)).Msg("proxy ready")
	return p, nil
}

func newTransport(cfg Config) *http.Transport {
	return &http.Transport{
		Proxy: nil, // never an environment proxy between tether and its replicas
		DialContext: (&net.Dialer{
			Timeout:   cfg.DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no global cap: MaxIdleConnsPerHost bounds each replica
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       cfg.IdleConnTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The client's Accept-Encoding passes through; the transport must
		// not add gzip and decompress behind the client's back.
		DisableCompression: true,
		WriteBufferSize:    16 << 10,
		ReadBufferSize:     16 << 10,
	}
}

// NewServer returns an http.Server serving the proxy with the configured
// timeouts (ReadHeaderTimeout cuts off slow-header clients). The caller
// sets Addr or calls Serve with its own listener.
func (p *Proxy) NewServer() *http.Server {
	return &http.Server{
		Handler:           p,
		ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
		ReadTimeout:       p.cfg.ReadTimeout,
		WriteTimeout:      p.cfg.WriteTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ErrorLog:          p.errLog,
	}
}

// Close stops the health checks and closes idle replica connections.
// In-flight requests are not interrupted (shut the server down first).
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if t := p.table.Load(); t != nil {
		for _, pl := range t.pools {
			for _, b := range pl.backends {
				p.stopChecker(b)
			}
		}
	}
	if t := p.table.Load(); t != nil {
		for _, pl := range t.pools {
			for _, b := range pl.backends {
				if b.conns != nil {
					b.conns.close()
				}
			}
		}
	}
	p.transport.CloseIdleConnections()
	p.checker.CloseIdleConnections()
	return nil
}

// ServeHTTP implements http.Handler: request -> key -> binding -> replica.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := p.now()
	start := now
	if !p.realClock {
		start = time.Now()
	}
	if len(r.TransferEncoding) > 0 {
		// net/http drops Content-Length when Transfer-Encoding is present
		// but keeps the connection open, so the handler cannot tell a
		// request that carried both (a CL.TE smuggling attempt, RFC 9112
		// 6.3: "MUST close the connection after responding"). Close after
		// every request with a transfer coding: bytes pipelined behind it
		// are never read as a request.
		w.Header().Set("Connection", "close")
	}
	if code, msg := p.cfg.Rules.Check(r.Method, r.Header["Connection"]); code != 0 {
		w.Header().Set("Connection", "close")
		p.reject(w, r, code, msg, start)
		return
	}
	StripAdminCookies(r.Header)
	host, ok := NormalizeHost(r.Host)
	if !ok {
		p.reject(w, r, http.StatusBadRequest, "tether: invalid or missing Host\n", start)
		return
	}
	pl := p.table.Load().route(host)
	if pl == nil {
		p.reject(w, r, http.StatusNotFound, "tether: no route for this Host\n", start)
		return
	}
	peer, ok := requestPeer(r)
	if !ok {
		p.reject(w, r, http.StatusBadRequest, "tether: no client address\n", start)
		return
	}
	client := peer
	if len(p.trusted) > 0 {
		client = ClientIP(peer, r.Header["X-Forwarded-For"], r.Header["Forwarded"], p.trusted)
	}
	k, err := stickydb.NewKey(p.cfg.ClientPrefix.Mask(client), host)
	if err != nil {
		p.reject(w, r, http.StatusBadRequest, "tether: invalid Host\n", start)
		return
	}
	b, out := p.choose(r.Context(), pl, k, now)
	p.m.pick[out].Inc()
	if b == nil {
		p.reject(w, r, http.StatusServiceUnavailable, "tether: no healthy backend\n", start)
		return
	}

	rw := getWriter(w)
	rw.writeIdle = p.cfg.Timeouts.WriteIdle
	var slow *deadlineBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body := r.Body
		if p.cfg.Timeouts.BodyIdle > 0 {
			slow = &deadlineBody{ReadCloser: body, rc: http.NewResponseController(w), to: p.cfg.Timeouts, start: time.Now()}
			body = slow
		}
		rw.body = &trackBody{rc: body}
		r.Body = rw.body
	}

	p.forward(rw, r, b)
	if rw.retry {
		// The replica refused the connection and the request is untouched:
		// move the client (generation + 1) and try once more.
		rw.retry, rw.retried, rw.err = false, true, nil
		p.m.retries.Inc()
		nb, _ := p.rebind(pl, k, b.name, now, outRebindRefused)
		p.m.pick[outRebindRefused].Inc()
		if nb == nil || nb == b {
			rw.be = nil
			http.Error(rw, "tether: no healthy backend", http.StatusServiceUnavailable)
		} else {
			b = nb
			p.forward(rw, r, b)
		}
	}
	status := rw.status
	if status == 0 {
		status = http.StatusSwitchingProtocols // hijacked by an upgrade: ReverseProxy wrote 101 itself
		if rw.err != nil {
			status = 499 // the client went away before an answer
		}
	}
	if b == nil || rw.be == nil {
		p.m.noBackend[classOf(status)].Inc()
	} else {
		b.m.requests[classOf(status)].Inc()
		b.m.latency.Observe(time.Since(start).Seconds())
	}
	if e := p.log.Debug(); e.Enabled() {
		e.Str("host", host).Stringer("client", client).Str("method", r.Method).Str("path", r.URL.Path).
			Int("status", status).Str("pool", pl.name).Str("backend", b.name).Dur("took_ms", time.Since(start)).
			AnErr("error", rw.err).Msg("request")
	}
	rw.clearDeadlines(slow)
	if p.cfg.AccessLog != nil {
		e := &rw.log
		*e = AccessEntry{Request: r, Start: start, Duration: time.Since(start), Client: client, Status: status,
			BytesOut: rw.n, Pool: pl.name, Outcome: outcomeLog[out]}
		if rw.body != nil {
			e.BytesIn = rw.body.n.Load()
		}
		if b != nil {
			e.Backend = b.name
		}
		if rw.retried {
			e.Outcome = "rebind"
		}
		p.cfg.AccessLog.Log(e)
	}
	putWriter(rw)
}

// forward sends r to b through b's ReverseProxy.
func (p *Proxy) forward(rw *respWriter, r *http.Request, b *backend) {
	rw.be = b
	b.inflight.Add(1)
	b.requests.Add(1)
	defer func() {
		b.inflight.Add(-1)
		if e := recover(); e != nil {
			// ReverseProxy aborts the client connection (http.ErrAbortHandler)
			// when the replica fails after its headers went out: nothing
			// else can tell the client. Count it, then let it abort.
			b.m.requests[5].Inc()
			p.log.Debug().Str("pool", b.pool).Str("backend", b.name).Interface("panic", e).Msg("response cut off")
			panic(e)
		}
	}()
	if fastEligible(r, b) {
		p.forwardFast(rw, r, b)
	} else {
		b.rp.ServeHTTP(rw, r)
	}
}

// reject answers a request that reaches no replica: a one-line plain-text
// reason.
func (p *Proxy) reject(w http.ResponseWriter, r *http.Request, code int, msg string, start time.Time) {
	h := w.Header()
	h["Content-Type"] = plainText
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
	p.m.noBackend[classOf(code)].Inc()
	if p.cfg.AccessLog != nil {
		client, _ := requestPeer(r)
		p.cfg.AccessLog.Log(&AccessEntry{Request: r, Start: start, Duration: time.Since(start), Client: client,
			Status: code, BytesOut: int64(len(msg)), Outcome: "none"})
	}
	if e := p.log.Debug(); e.Enabled() {
		e.Str("host", r.Host).Str("remote", r.RemoteAddr).Str("method", r.Method).
			Int("status", code).Dur("took_ms", time.Since(start)).Msg("request rejected")
	}
}

var (
	plainText = []string{"text/plain; charset=utf-8"}
	nosniff   = []string{"nosniff"}
)

// newReverseProxy builds b's ReverseProxy: one per replica, so that the
// Rewrite function knows its target without a per-request context value.
func (p *Proxy) newReverseProxy(b *backend) *httputil.ReverseProxy {
	target := b.url
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // replicas see the Host the client asked for
			if len(p.trusted) > 0 {
				if peer, ok := requestPeer(pr.In); ok && p.trusted.Contains(peer) {
					// The peer is a trusted proxy: keep its forwarding
					// headers; SetXForwarded appends the peer.
					pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
					if f := pr.In.Header["Forwarded"]; f != nil {
						pr.Out.Header["Forwarded"] = f
					}
				}
			}
			pr.SetXForwarded()
			if tb, ok := pr.In.Body.(*trackBody); ok {
				// Lets the transport resend the body on a fresh connection
				// when a stale keep-alive one took nothing.
				body := pr.Out.Body
				pr.Out.GetBody = func() (io.ReadCloser, error) {
					if tb.read.Load() {
						return nil, errBodyRead
					}
					return body, nil
				}
			}
		},
		Transport:     p.transport,
		FlushInterval: p.cfg.FlushInterval,
		BufferPool:    p.buffers,
		ErrorLog:      p.errLog,
		ErrorHandler:  p.errorHandler,
	}
}

// errorHandler is ReverseProxy's ErrorHandler: called when no response
// came from the replica (or an upgrade failed). A refused connection marks
// the replica down (passive check) and, if the request can still be sent
// elsewhere, asks ServeHTTP for the one retry instead of answering.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	rw, ok := w.(*respWriter)
	if !ok {
		http.Error(w, "tether: bad gateway", http.StatusBadGateway)
		return
	}
	rw.err = err
	if rw.written {
		return
	}
	if r.Context().Err() != nil {
		// The client is gone (a dial it aborted says nothing about the
		// replica); nobody reads an answer.
		return
	}
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		if rw.be != nil {
			p.markDown(rw.be, "connection failed: "+op.Err.Error())
		}
		if !rw.retried && rw.bodyUnread() {
			rw.retry = true
			return
		}
		http.Error(rw, "tether: backend refused the connection", http.StatusBadGateway)
	case isTimeout(err):
		http.Error(rw, "tether: backend timed out", http.StatusGatewayTimeout)
	default:
		http.Error(rw, "tether: backend failed", http.StatusBadGateway)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// debugWriter sends the standard library's log lines (http.Server,
// ReverseProxy) to zerolog at debug: they are per connection or per
// request (TLS handshake errors, aborted copies), too many for info.
type debugWriter struct{ l zerolog.Logger }

func (d debugWriter) Write(b []byte) (int, error) {
	if e := d.l.Debug(); e.Enabled() {
		e.Msg(string(trimNL(b)))
	}
	return len(b), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// String is for logs.
func (b *backend) String() string { return fmt.Sprintf("%s/%s", b.pool, b.name) }
