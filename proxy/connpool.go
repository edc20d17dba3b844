package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/url"
	"sync"
	"time"
)

// The fast path's connections to one replica (see fastpath.go): a
// keep-alive pool per replica, most recently used last. A connection is
// used by one request at a time, on the request's own goroutine; nothing
// reads it while it is idle, so as it is reused it is probed for a close or
// stray bytes from the replica (in flushWait's RawRead, before the request
// is sent; probeFunc's own where there is none).

var (
	errPoolClosed        = errors.New("proxy: connection pool closed")
	errResponseTooLarge  = errors.New("proxy: replica's response headers exceed the limit")
	errIdleGone          = errors.New("proxy: idle connection closed or sent data: not used")
	errUnexpectedUpgrade = errors.New("proxy: replica switched protocols without an upgrade request")
	errInvalidRequest    = errors.New("proxy: request has a header field or query http.Transport would refuse")
)

const (
	// maxResponseHeaderBytes is http.Transport's default
	// MaxResponseHeaderBytes, the bound on one response's header block.
	maxResponseHeaderBytes = 10 << 20
	// connReadBuffer and connWriteBuffer size each connection's buffers: a
	// typical response header fits one read; a longer one is read in
	// several, a longer request header written in several.
	connReadBuffer  = 8 << 10
	connWriteBuffer = 4 << 10
)

// hostPort is the address to dial for an http:// URL, as http.Transport's
// canonicalAddr has it: port 80 when none is given.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// connPool holds one replica's idle connections.
type connPool struct {
	addr    string // host:port
	dialer  *net.Dialer
	max     int           // idle connections kept
	idleFor time.Duration // an idle connection unused this long is closed

	mu     sync.Mutex
	idle   []*fastConn // oldest first
	closed bool
	sweep  *time.Timer // armed while idle is not empty
}

func newConnPool(addr string, cfg *Config) *connPool {
	return &connPool{
		addr:    addr,
		dialer:  &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		max:     cfg.MaxIdleConnsPerHost,
		idleFor: cfg.IdleConnTimeout,
	}
}

// get returns an idle connection (reused true) or nil when there is none
// fit for use. Connections idle too long are closed on the way.
func (cp *connPool) get(now time.Time) *fastConn {
	cp.mu.Lock()
	n := len(cp.idle)
	if n == 0 {
		cp.mu.Unlock()
		return nil
	}
	c := cp.idle[n-1]
	cp.idle[n-1] = nil
	cp.idle = cp.idle[:n-1]
	var stale []*fastConn
	if cp.idleFor > 0 && now.Sub(c.idleAt) > cp.idleFor {
		// The newest is too old: so are all the others.
		stale = append(cp.idle, c)
		cp.idle = nil
		c = nil
	}
	cp.mu.Unlock()
	for _, s := range stale {
		s.close()
	}
	return c
}

// dial opens a new connection to the replica.
func (cp *connPool) dial(ctx context.Context) (*fastConn, error) {
	nc, err := cp.dialer.DialContext(ctx, "tcp", cp.addr)
	if err != nil {
		return nil, err
	}
	c := &fastConn{pool: cp, nc: nc}
	c.cr.nc = nc
	c.cr.lim = math.MaxInt64
	c.cw.nc = nc
	c.br = bufio.NewReaderSize(&c.cr, connReadBuffer)
	c.bw = bufio.NewWriterSize(&c.cw, connWriteBuffer)
	c.abort = func() { _ = nc.Close() }
	c.probe = probeFunc(nc)
	c.flushWait = flushWaitFunc(c)
	return c, nil
}

// put returns c to the pool, or closes it when the pool is full or closed.
func (cp *connPool) put(c *fastConn, now time.Time) {
	c.idleAt = now
	cp.mu.Lock()
	if cp.closed || len(cp.idle) >= cp.max {
		cp.mu.Unlock()
		c.close()
		return
	}
	cp.idle = append(cp.idle, c)
	if cp.idleFor > 0 && cp.sweep == nil {
		cp.sweep = time.AfterFunc(cp.idleFor, cp.sweepIdle)
	}
	cp.mu.Unlock()
}

// sweepIdle closes the connections idle longer than idleFor and re-arms
// itself while some remain.
func (cp *connPool) sweepIdle() {
	now := time.Now()
	cp.mu.Lock()
	if cp.closed {
		cp.mu.Unlock()
		return
	}
	i := 0
	for i < len(cp.idle) && now.Sub(cp.idle[i].idleAt) >= cp.idleFor {
		i++
	}
	stale := append([]*fastConn(nil), cp.idle[:i]...)
	cp.idle = append(cp.idle[:0], cp.idle[i:]...)
	clear(cp.idle[len(cp.idle):cap(cp.idle)])
	if len(cp.idle) > 0 {
		cp.sweep.Reset(cp.idle[0].idleAt.Add(cp.idleFor).Sub(now))
	} else {
		cp.sweep = nil
	}
	cp.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

// closeIdle closes every idle connection (the replica was seen to close
// one: it probably restarted and closed them all).
func (cp *connPool) closeIdle() {
	cp.mu.Lock()
	idle := cp.idle
	cp.idle = nil
	cp.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// close closes the idle connections; connections in use are closed when
// their requests end.
func (cp *connPool) close() {
	cp.mu.Lock()
	cp.closed = true
	if cp.sweep != nil {
		cp.sweep.Stop()
		cp.sweep = nil
	}
	idle := cp.idle
	cp.idle = nil
	cp.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// fastConn is one connection to a replica with its buffers. Used by one
// request at a time.
type fastConn struct {
	pool   *connPool
	nc     net.Conn
	cr     countReader
	cw     fdWriter
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	rdl    time.Time // the read deadline in force (zero: none)
	wdl    time.Time // the write deadline in force
	reused bool
	abort  func()              // closes nc: what a cancelled request runs
	probe  func() (alive bool) // see probeFunc
	// flushWait probes an idle connection, sends the request, waits for
	// the response and reads its first bytes into br (see flushWaitFunc);
	// nil where there is none.
	flushWait func(probe bool) (flushed bool, err error)
	stop      func() (stopped bool) // context.AfterFunc's, while a watch is armed
	body      plainBody             // the body being read, for a plain response
}

func (c *fastConn) close() { _ = c.nc.Close() }

// setReadDeadline sets the read deadline, and remembers it.
func (c *fastConn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	c.rdl = t
}

// unwatch disarms the cancellation watch; false when it already fired
// (the connection is closed).
func (c *fastConn) unwatch() bool {
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop = nil
	return ok
}

// countReader counts the bytes read from the connection (a request whose
// connection failed before any byte of the response came may be sent
// again) and bounds them: reading past lim fails, which caps a response's
// header block.
//
// Inside flushWait's RawRead callback, raw is set, fd is the socket and
// Read is a recv(2) of it (sysRead: errWouldBlock when it is empty).
type countReader struct {
	nc  net.Conn
	raw bool
	fd  int
	n   int64
	lim int64
}

func (r *countReader) Read(p []byte) (int, error) {
	if r.n >= r.lim {
		return 0, errResponseTooLarge
	}
	if rem := r.lim - r.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	var n int
	var err error
	if r.raw {
		n, err = sysRead(r.fd, p)
	} else {
		n, err = r.nc.Read(p)
	}
	r.n += int64(n)
	return n, err
}

// fdWriter writes to the connection: inside flushWait's RawRead callback
// (raw set, fd the socket) with sendThen, else through net.Conn.Write.
type fdWriter struct {
	nc  net.Conn
	raw bool
	fd  int
}

func (w *fdWriter) Write(p []byte) (int, error) {
	if w.raw {
		return sendThen(w.fd, p, w.nc.Write)
	}
	return w.nc.Write(p)
}

var _ io.Reader = (*countReader)(nil)
