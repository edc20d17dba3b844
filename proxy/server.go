package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// LoopServer serves an HTTP/1.1 listener with a connection loop of
// tether's own for the requests parseRequestHead understands (plain GET
// and HEAD without a body or an upgrade: most of a web application's
// traffic) and hands every other connection, with the bytes already read,
// to net/http's server (Std), which serves it from then on. The loop reads
// and writes through reused buffers and one reused http.Request per
// connection, and calls Std.Handler as net/http would.
//
// A TLS listener's connections (*tls.Conn, or the ones the loop makes
// with TLSConfig) get their handshake in the loop, as net/http's server
// does it (the handshake timeout, the 400 to a
// client that speaks plain HTTP, the log line of a failed handshake); one
// that chose HTTP/2 by ALPN goes to Std whole, whose TLSNextProto serves
// it; HTTP/1.1 stays in the loop, with Request.TLS set, and a connection
// handed over later keeps its TLS state (net/http reads it from the
// handed-over connection's ConnectionState).
//
// What the loop does as net/http's server does: the timeouts (Std's
// ReadHeaderTimeout, IdleTimeout, ReadTimeout, WriteTimeout; on a plain
// TCP connection the idle timeout strikes between IdleTimeout and 5/4 of
// it, see setReadDeadline), ConnState
// and ConnContext hooks, the response framing (Content-Length for a body
// the handler wrote whole within 2 KiB, chunked otherwise, none for HEAD,
// 1xx, 204 and 304), the Date header, Content-Type sniffing, trailers,
// Connection: close, http.ErrAbortHandler. What it does not: watch the
// client during a response (a client that leaves is noticed at the next
// write, not at once), and serve anything parseRequestHead refuses.
type LoopServer struct {
	Std *http.Server
	// TLSConfig, when set, makes Serve's connections TLS server
	// connections (Serve's listener then gives plain ones): the loop
	// reads them raw, as plain ones (see tlsSocket).
	TLSConfig *tls.Config

	hand *handoffListener
	work chan *loopConn // to a worker waiting for a connection (worker)

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*loopConn]struct{}
	closing  atomic.Bool
	stdStart sync.Once
	stdDone  chan struct{}
	wg       sync.WaitGroup
}

// NewLoopServer returns a LoopServer whose fallback is std (usually
// Proxy.NewServer's).
func NewLoopServer(std *http.Server) *LoopServer {
	return &LoopServer{Std: std, conns: map[*loopConn]struct{}{}, stdDone: make(chan struct{}), work: make(chan *loopConn),
		hand: &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}}
}

// Serve accepts connections on ln until Shutdown or Close; it returns
// http.ErrServerClosed then, like http.Server.Serve.
func (s *LoopServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.hand.addr = ln.Addr()
	s.mu.Unlock()
	s.stdStart.Do(func() {
		go func() {
			defer close(s.stdDone)
			_ = s.Std.Serve(s.hand)
		}()
	})
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// As net/http: back off on EMFILE and the like.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		lc := &loopConn{s: s, c: c, fd: -1, accepted: time.Now()}
		if s.TLSConfig != nil {
			lc.ts = &tlsSocket{Conn: c, lc: lc}
			lc.c = tls.Server(lc.ts, s.TLSConfig)
		}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return http.ErrServerClosed
		}
		s.conns[lc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		select {
		case s.work <- lc: // a worker that served a connection before
		default:
			go s.worker(lc)
		}
	}
}

// newConnGrace is how long Shutdown waits for a new connection's first
// request (net/http's Shutdown waits as long).
const newConnGrace = 5 * time.Second

// workerIdle is how long a worker waits for another connection before it
// ends.
const workerIdle = 10 * time.Second

// worker serves lc, then the connections Serve hands it (s.work) until
// none comes for workerIdle or the server closes. A goroutine that served
// a connection has the stack a connection needs: a fresh one per
// connection grew it (copied it) on every connection, a tenth of the CPU
// when every request comes on a new connection (measured, bench/README.md).
func (s *LoopServer) worker(lc *loopConn) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		lc.serve()
		t.Reset(workerIdle)
		select {
		case lc = <-s.work:
		case <-t.C:
			return
		case <-s.hand.done:
			return
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish (their connections close after the response) and serves
// the first request of a connection accepted less than 5 s before (one
// still in its TLS handshake too), until ctx ends, then shuts Std down the
// same way. Until the loop's connections are gone it still hands
// connections to Std (a first request that is not the loop's kind), whose
// keep-alives are off from the start.
func (s *LoopServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	if s.ln != nil {
		_ = s.ln.Close()
	}
	s.mu.Unlock()
	s.Std.SetKeepAlivesEnabled(false)
	defer s.hand.close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for lc := range s.conns {
			switch st := http.ConnState(lc.state.Load()); {
			case st == http.StateActive:
			case st == http.StateNew && time.Since(lc.accepted) < newConnGrace:
				// Its first request may be on its way: serve it, as
				// net/http's Shutdown does (golang.org/issue/22682).
			default:
				_ = lc.closeSocket()
			}
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), s.Std.Shutdown(ctx))
		case <-tick.C:
		}
	}
	s.wg.Wait()
	return s.Std.Shutdown(ctx)
}

// Close closes the listener and every connection at once.
func (s *LoopServer) Close() error {
	s.mu.Lock()
	s.closing.Store(true)
	if s.ln != nil {
		_ = s.ln.Close()
	}
	for lc := range s.conns {
		_ = lc.closeSocket()
	}
	s.mu.Unlock()
	s.hand.close()
	return s.Std.Close()
}

// handoffListener is the listener Std serves: the connections the loop
// hands over.
type handoffListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *handoffListener) Close() error { l.close(); return nil }

func (l *handoffListener) Addr() net.Addr { return l.addr }

// handoffConn replays the bytes the loop read before the connection's own.
// NetConn lets the connection limits and the edge find the socket.
type handoffConn struct {
	net.Conn
	pending []byte
}

func (c *handoffConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *handoffConn) NetConn() net.Conn { return c.Conn }

// CloseWrite lets net/http half-close before it closes (closeWriteAndWait),
// so that a client still sending gets the error response, not a reset.
func (c *handoffConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

const (
	loopHeadMax   = 16 << 10 // a longer head goes to net/http (which allows MaxHeaderBytes)
	loopWriteBuf  = 8 << 10
	bufferToChunk = 2048 // net/http's bufferBeforeChunkingSize
)

var (
	loopBufs    = sync.Pool{New: func() any { b := make([]byte, loopHeadMax); return &b }}
	loopWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, loopWriteBuf) }}
)

// loopConn is one client connection served by the loop.
type loopConn struct {
	s        *LoopServer
	c        net.Conn
	state    atomic.Int32 // http.ConnState
	accepted time.Time

	buf  *[]byte
	r, w int // buf[r:w] is read and not yet consumed
	// The client's address, parsed from remote once (requestPeer).
	peer       netip.Addr
	peerOK     bool
	peerParsed bool
	bw         *bufio.Writer
	remote     string
	req        http.Request
	u          url.URL
	h          http.Header
	vals       []string
	rw         loopWriter
	handedOver bool
	connCtx    context.Context
	tlsState   *tls.ConnectionState // the handshake's, on a TLS connection
	ts         *tlsSocket           // under c when the loop made the TLS connection

	// Reading in the raw mode (serveRaw): fd is the socket while the
	// connection is served from inside its RawConn.Read (-1 otherwise);
	// short is set by a read that returned less than it asked (the
	// socket's queue was empty then); dup is the watch's own descriptor
	// of the socket.
	fd    int
	short bool
	dup   net.Conn
	// The raw mode's read deadline (setReadDeadline): the one readHead
	// wants, the slack it allows, the one in force, and whether a handler
	// set one since (http.ResponseController).
	want      time.Time
	wantSlack time.Duration
	rdl       time.Time
	rdlDirty  atomic.Bool
	// The write deadline (setWriteDeadline): the one wanted, and the one
	// in force on the socket. The raw mode writes the socket itself,
	// checking the wanted one, and puts it in force only when it must
	// wait for the socket (or leaves the raw mode).
	wdl, wdlSet time.Time

	// readHead's state between its calls (a head may arrive in pieces,
	// and in the raw mode readHead returns to wait for them).
	awaiting bool      // the idle (or first) wait is set up
	t0       time.Time // when the head's first bytes came; zero: none yet
	scanned  int       // buf[:scanned] has no bare LF and no blank line

	// The client watch (reqCtx): the background read while a handler runs.
	watch      chan struct{} // closed when the read returns
	watchByte  [1]byte
	watchGot   bool   // it read a byte (the next request's first)
	watchRaw   []byte // under TLS in the raw mode: the bytes it read (watchRecords)
	watchStop  atomic.Bool
	clientGone bool // it saw the client leave (under the reqCtx's mu)
}

// closeSocket closes the connection from another goroutine than the
// loop's: a TLS connection the loop made loses its socket (its own Close
// would write an alert, racing the loop's writes); the loop's goroutine
// then ends and closes the rest.
func (lc *loopConn) closeSocket() error {
	if lc.ts != nil {
		return lc.ts.Conn.Close()
	}
	return lc.c.Close()
}

func (lc *loopConn) setState(st http.ConnState) {
	lc.state.Store(int32(st))
	if hook := lc.s.Std.ConnState; hook != nil {
		hook(lc.c, st)
	}
}

func (lc *loopConn) serve() {
	s := lc.s
	defer func() {
		if e := recover(); e != nil && e != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			s.logf("http: panic serving %v: %v\n%s", lc.remote, e, buf)
		}
		if !lc.handedOver {
			_ = lc.c.Close()
			lc.setState(http.StateClosed)
		}
		if lc.buf != nil {
			loopBufs.Put(lc.buf)
		}
		if lc.bw != nil {
			lc.bw.Reset(nil)
			loopWriters.Put(lc.bw)
			lc.bw = nil
		}
		s.mu.Lock()
		delete(s.conns, lc)
		s.mu.Unlock()
		s.wg.Done()
	}()
	lc.setState(http.StateNew)
	ctx := context.Background()
	if s.Std.BaseContext != nil {
		ctx = s.Std.BaseContext(s.hand)
	}
	ctx = context.WithValue(ctx, http.ServerContextKey, s.Std)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, lc.c.LocalAddr())
	if s.Std.ConnContext != nil {
		ctx = s.Std.ConnContext(ctx, lc.c)
	}
	lc.connCtx = ctx
	lc.remote = lc.c.RemoteAddr().String()
	if tc, ok := lc.c.(*tls.Conn); ok {
		if !lc.handshake(ctx, tc) {
			return
		}
		switch lc.tlsState.NegotiatedProtocol {
		case "", "http/1.1", "http/1.0":
		default:
			lc.handOverConn(tc) // HTTP/2: Std's TLSNextProto (net/http's validNextProto)
			return
		}
	}
	lc.buf = loopBufs.Get().(*[]byte)
	lc.h = make(http.Header, 8) // up to 8 fields one small map, cheap to clear
	lc.rw.lc = lc
	sock := lc.c
	if lc.ts != nil {
		sock = lc.ts.Conn
	}
	if rc := rawConn(sock); rc != nil {
		lc.serveRaw(rc)
		return
	}
	for first := true; ; first = false {
		switch lc.next(first) {
		case stepHandOver:
			lc.handOver()
			return
		case stepEnd:
			return
		}
	}
}

// step is what next did.
type step int

const (
	stepServed   step = iota // a request was served, the connection stays
	stepWait                 // raw mode: nothing to read, wait for the socket
	stepHandOver             // the connection goes to Std
	stepEnd                  // the connection ends
)

// next reads a request head and serves the request.
func (lc *loopConn) next(first bool) step {
	head, res := lc.readHead(first)
	if res != stepServed {
		return res
	}
	clear(lc.h)
	lc.req = http.Request{} // nothing of the last request (path values, form) carries over
	var parsed bool
	lc.vals, parsed = parseRequestHead(head, &lc.req, &lc.u, lc.h, lc.vals)
	if !parsed {
		return stepHandOver
	}
	lc.r += len(head)
	if !lc.serveOne() {
		return stepEnd
	}
	return stepServed
}

// serveRaw serves the connection from inside one RawConn.Read: the loop
// reads the socket itself (read) and returns to RawRead's wait when the
// socket is empty. Go's net.Conn.Read clears the poller's readiness mark
// before every read, so it must try a read first, which finds nothing
// (EAGAIN) whenever the client has not sent its next request yet: one
// system call in vain per request. Inside a single RawRead the mark is
// cleared once, so after a read that emptied the socket (short) the loop
// may wait first: any byte that came after that read has set the mark,
// and the wait returns at once. A wake-up with nothing to read (a mark
// from bytes already read) costs the read it would have cost anyway.
func (lc *loopConn) serveRaw(rc syscall.RawConn) {
	first, res := true, stepEnd
	var err error
	func() {
		// Also when a handler panics (http.ErrAbortHandler) through
		// here: the raw mode ends, and the watch's descriptor is closed,
		// which ends the watch (a socket with a descriptor left open
		// would not close).
		defer func() {
			lc.fd = -1
			if lc.dup != nil {
				_ = lc.dup.Close()
				lc.dup = nil
			}
		}()
		err = rc.Read(func(fd uintptr) bool {
			lc.fd, lc.short = int(fd), false // first call, or woken: read
			for {
				switch res = lc.next(first); res {
				case stepServed:
					first = false
				case stepWait:
					lc.applyReadDeadline()
					return false
				default:
					return true
				}
			}
		})
	}()
	_ = lc.syncWriteDeadline()
	if err == nil && res == stepHandOver {
		lc.handOver()
	}
}

// setReadDeadline sets the client's read deadline, at once, or in the
// raw mode when the loop next waits (applyReadDeadline): only then does
// it bound anything, and most requests' heads come whole in one read, so
// the deadlines of a head's reading are never armed. slack lets the
// deadline in force stand when it is at most that much later than t (the
// idle timeout: between IdleTimeout and 5/4 of it), so a busy connection
// re-arms it once every slack instead of once a request.
func (lc *loopConn) setReadDeadline(t time.Time, slack time.Duration) {
	if lc.fd < 0 {
		_ = lc.c.SetReadDeadline(t)
		return
	}
	lc.want, lc.wantSlack = t, slack
}

// applyReadDeadline puts the wanted read deadline in force, unless the
// one in force is within its slack.
func (lc *loopConn) applyReadDeadline() {
	t, slack := lc.want, lc.wantSlack
	if !lc.rdlDirty.Swap(false) {
		if t.IsZero() && lc.rdl.IsZero() || !t.IsZero() && !lc.rdl.IsZero() && !lc.rdl.Before(t) && lc.rdl.Sub(t) <= slack {
			return
		}
	}
	if !t.IsZero() {
		t = t.Add(slack)
	}
	lc.rdl = t
	_ = lc.c.SetReadDeadline(t)
}

// setWriteDeadline sets the client's write deadline: at once, or in the
// raw mode when a write must wait for the socket (syncWriteDeadline).
func (lc *loopConn) setWriteDeadline(t time.Time) error {
	lc.wdl = t
	if lc.fd < 0 {
		return lc.syncWriteDeadline()
	}
	return nil
}

// syncWriteDeadline puts the wanted write deadline in force.
func (lc *loopConn) syncWriteDeadline() error {
	if lc.wdl.Equal(lc.wdlSet) {
		return nil
	}
	lc.wdlSet = lc.wdl
	return lc.c.SetWriteDeadline(lc.wdl)
}

// Write writes to the client (the loop's bufio.Writer): in the raw mode
// with a send(2) of the socket (sendThen), through connWrite for what the
// socket does not take at once, or once the deadline has passed.
func (lc *loopConn) Write(p []byte) (int, error) {
	if lc.fd >= 0 && lc.ts == nil && lc.sendable() {
		return sendThen(lc.fd, p, lc.connWrite)
	}
	return lc.connWrite(p) // over TLS, the socket's writes are tlsSocket's
}

// sendable reports that the raw mode may send on the socket itself: the
// write deadline has not passed.
func (lc *loopConn) sendable() bool { return lc.wdl.IsZero() || time.Now().Before(lc.wdl) }

// connWrite is net.Conn.Write with the wanted write deadline in force.
func (lc *loopConn) connWrite(p []byte) (int, error) {
	if err := lc.syncWriteDeadline(); err != nil {
		return 0, err
	}
	return lc.c.Write(p)
}

// sendThen sends p on the socket fd (sysWrite, inside a RawConn callback)
// and hands what the socket does not take at once to write
// (net.Conn.Write: its deadline, its wait).
func sendThen(fd int, p []byte, write func([]byte) (int, error)) (int, error) {
	n, err := sysWrite(fd, p)
	if err != errWouldBlock {
		return n, err
	}
	m, err := write(p[n:])
	return n + m, err
}

// errWouldBlock is read's "the socket is empty" in the raw mode. It is a
// temporary net.Error so that a tls.Conn reading through tlsSocket
// returns it and keeps the connection (a partial record stays buffered).
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "proxy: would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// read reads from the connection: net.Conn.Read, or in the raw mode a
// read(2) of the socket that returns errWouldBlock when it is empty or
// when an earlier read emptied it (see serveRaw); over TLS in the raw
// mode, tls.Conn.Read, whose socket reads are sockRead's.
func (lc *loopConn) read(p []byte) (int, error) {
	if lc.fd < 0 {
		return lc.c.Read(p)
	}
	if lc.ts != nil {
		n, err := lc.c.Read(p)
		if n > 0 && err == errWouldBlock {
			// tls.Conn returned plaintext, then looked for an alert
			// behind it whose record is not whole yet: the bytes count,
			// the next read waits.
			err = nil
		}
		return n, err
	}
	return lc.sockRead(p)
}

// sockRead is the raw mode's read of the socket.
func (lc *loopConn) sockRead(p []byte) (int, error) {
	if lc.short {
		return 0, errWouldBlock
	}
	n, err := sysRead(lc.fd, p)
	lc.short = err == nil && n < len(p)
	return n, err
}

// readHead waits for the next request head (IdleTimeout between requests,
// then ReadHeaderTimeout). It returns the head (buf[r:] up to and
// including its blank line) and stepServed; stepHandOver when the bytes
// are not the plain kind and the connection goes to Std; stepEnd when the
// connection ends (EOF, a timeout, Shutdown); in the raw mode stepWait
// when it must wait for the socket, and it is called again after.
func (lc *loopConn) readHead(first bool) ([]byte, step) {
	s, buf := lc.s, *lc.buf
	if lc.r == lc.w {
		lc.r, lc.w = 0, 0
	}
	if lc.r == lc.w {
		if !lc.awaiting {
			if first {
				// A new connection gets its header timeout from the start, as
				// net/http's: one that sends nothing must not hold a slot.
				lc.setReadDeadline(headerDeadline(s.Std, time.Now()), 0)
			} else {
				lc.setState(http.StateIdle)
				if s.closing.Load() {
					return nil, stepEnd
				}
				if d := idleTimeout(s.Std); d > 0 {
					lc.setReadDeadline(time.Now().Add(d), d/4)
				} else {
					lc.setReadDeadline(time.Time{}, 0)
				}
			}
			lc.awaiting = true
		}
		n, err := lc.read(buf[lc.w:])
		if err == errWouldBlock {
			return nil, stepWait
		}
		lc.awaiting = false
		if n == 0 {
			return nil, stepEnd
		}
		lc.w += n
		if !first {
			lc.setState(http.StateActive)
		}
	}
	if lc.t0.IsZero() {
		if first {
			lc.setState(http.StateActive)
		}
		lc.t0 = time.Now()
		lc.scanned = lc.r
		lc.setReadDeadline(headerDeadline(s.Std, lc.t0), 0)
	}
	for {
		data := buf[lc.r:lc.w]
		if !plainPrefix(data) {
			return nil, stepHandOver
		}
		// Bare LF anywhere in the head: net/http's call.
		for i := max(lc.scanned, lc.r); i < lc.w; i++ {
			if buf[i] == '\n' && (i == lc.r || buf[i-1] != '\r') {
				return nil, stepHandOver
			}
		}
		if i := bytes.Index(data, crlfcrlf); i >= 0 {
			if i+4 > lc.headMax() {
				return nil, stepHandOver // longer than Std allows: its 431
			}
			if d := s.Std.ReadTimeout; d > 0 {
				lc.setReadDeadline(lc.t0.Add(d), 0)
			} else {
				lc.setReadDeadline(time.Time{}, 0)
			}
			lc.t0 = time.Time{}
			return data[:i+4], stepServed
		}
		lc.scanned = max(lc.w-3, lc.r)
		if lc.w-lc.r >= lc.headMax() {
			return nil, stepHandOver // too long for the loop: net/http's limits decide
		}
		if lc.w == len(buf) {
			if lc.r == 0 {
				return nil, stepHandOver // too long for the loop
			}
			lc.w = copy(buf, buf[lc.r:lc.w])
			lc.scanned -= lc.r
			lc.r = 0
		}
		n, err := lc.read(buf[lc.w:])
		if err == errWouldBlock {
			return nil, stepWait
		}
		lc.w += n
		if err != nil && n == 0 {
			return nil, stepEnd
		}
	}
}

var (
	getPrefix = []byte("GET /")
	hdPrefix  = []byte("HEAD /")
)

// plainPrefix reports whether data may still begin a plain request line.
func plainPrefix(data []byte) bool {
	for _, p := range [][]byte{getPrefix, hdPrefix} {
		n := min(len(data), len(p))
		if bytes.Equal(data[:n], p[:n]) {
			return true
		}
	}
	return false
}

// headerDeadline is when a head begun at t0 must be whole
// (ReadHeaderTimeout, else ReadTimeout; zero: none).
func headerDeadline(s *http.Server, t0 time.Time) time.Time {
	if d := s.ReadHeaderTimeout; d > 0 {
		return t0.Add(d)
	}
	if d := s.ReadTimeout; d > 0 {
		return t0.Add(d)
	}
	return time.Time{}
}

func idleTimeout(s *http.Server) time.Duration {
	if s.IdleTimeout != 0 {
		return s.IdleTimeout
	}
	return s.ReadTimeout
}

// headMax is the longest head the loop reads itself: its buffer, or less
// when Std's MaxHeaderBytes is smaller (net/http allows it plus 4 KiB).
func (lc *loopConn) headMax() int {
	if m := lc.s.Std.MaxHeaderBytes; m > 0 {
		return min(loopHeadMax, m+4096)
	}
	return loopHeadMax
}

// handOver gives the connection and the bytes read but not consumed to
// Std.
func (lc *loopConn) handOver() {
	pending := append([]byte(nil), (*lc.buf)[lc.r:lc.w]...)
	_ = lc.c.SetReadDeadline(time.Time{})
	var c net.Conn = &handoffConn{Conn: lc.c, pending: pending}
	if lc.tlsState != nil {
		c = &tlsHandoffConn{handoffConn: c.(*handoffConn), state: *lc.tlsState}
	}
	lc.handOverConn(c)
}

// handOverConn gives c to Std.
func (lc *loopConn) handOverConn(c net.Conn) {
	select {
	case lc.s.hand.ch <- c:
		lc.handedOver = true
	case <-lc.s.hand.done:
	}
}

// logf logs to Std.ErrorLog, or the standard logger, as net/http does.
func (s *LoopServer) logf(format string, args ...any) {
	if s.Std.ErrorLog != nil {
		s.Std.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// serveOne runs the handler on the parsed request and finishes the
// response; false when the connection must close.
func (lc *loopConn) serveOne() bool {
	s, r := lc.s, &lc.req
	r.RemoteAddr = lc.remote
	r.TLS = lc.tlsState
	r.Trailer, r.TransferEncoding, r.Form, r.PostForm, r.MultipartForm, r.Response = nil, nil, nil, nil, nil, nil
	r.GetBody, r.Cancel, r.Pattern = nil, nil, ""
	if lc.r == lc.w {
		lc.r, lc.w = 0, 0 // the watch may keep a byte at the start
	}
	ctx := &reqCtx{Context: lc.connCtx, lc: lc, pipelined: lc.r < lc.w}
	*r = *r.WithContext(ctx)
	if d := s.Std.WriteTimeout; d > 0 {
		_ = lc.setWriteDeadline(time.Now().Add(d))
	}
	if lc.bw == nil {
		lc.bw = loopWriters.Get().(*bufio.Writer)
		lc.bw.Reset(lc)
	}
	w := &lc.rw
	w.reset(r.Method == http.MethodHead, r.Close)
	defer ctx.cancel(context.Canceled) // also when the handler panics
	s.Std.Handler.ServeHTTP(w, r)
	ctx.cancel(context.Canceled) // first: no watch can start after this
	lc.endWatch(ctx)
	ok := w.finish() // the client may have half-closed only: answer anyway
	if lc.clientGone {
		return false
	}
	if s.Std.WriteTimeout > 0 {
		_ = lc.setWriteDeadline(time.Time{})
	}
	return ok && !w.closeAfter && !s.closing.Load()
}

// reqCtx is a request's context on the loop: the connection's, cancelled
// when the client leaves while the handler runs or when the handler
// returns (as net/http's). The client is watched only once something waits
// on Done (a slow response: the fast path arms its watch after
// watchAfter), so a quick request costs no goroutine and no read.
type reqCtx struct {
	context.Context // the connection's
	lc              *loopConn
	pipelined       bool // the next request is already read: the client is there

	mu         sync.Mutex
	done       chan struct{}
	err        error
	stopParent func() bool // the watch on the connection's context
}

func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if err := c.Context.Err(); c.err == nil && err != nil {
			c.err = err
		}
		switch {
		case c.err != nil:
			close(c.done)
		default:
			if c.Context.Done() != nil {
				parent := c.Context
				c.stopParent = context.AfterFunc(parent, func() { c.cancel(parent.Err()) })
			}
			if !c.pipelined {
				c.lc.startWatch(c)
			}
		}
	}
	return c.done
}

func (c *reqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return c.Context.Err()
	}
	return c.err
}

func (c *reqCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
		if c.stopParent != nil {
			c.stopParent()
		}
	}
}

// aLongTimeAgo unblocks a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

// startWatch reads a byte in the background while the handler runs: EOF
// or an error means the client left (the request's context is cancelled);
// a byte is the start of a pipelined request, kept for the loop. Called
// under c.mu, once per request.
func (lc *loopConn) startWatch(c *reqCtx) {
	wc := lc.watchConn()
	if wc == nil {
		return // the client's leaving is noticed at the next write
	}
	done := make(chan struct{})
	lc.watch = done
	_ = wc.SetReadDeadline(time.Time{}) // as net/http's background read: ReadTimeout bounds the head only here
	records := lc.ts != nil && lc.fd >= 0
	go func() {
		defer close(done)
		var err error
		if records {
			if err = lc.watchRecords(wc); err == nil {
				return // it holds watchRawMax bytes: the client is there
			}
		} else {
			var n int
			if n, err = wc.Read(lc.watchByte[:]); n == 1 {
				lc.watchGot = true
				return
			}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && lc.watchStop.Load() {
			return // stopped by endWatch
		}
		c.mu.Lock()
		lc.clientGone = true
		c.mu.Unlock()
		c.cancel(context.Canceled)
	}()
}

// watchRawMax bounds what the watch keeps of a TLS client's next records.
const watchRawMax = 32 << 10

// watchRecords is the watch of a TLS connection in the raw mode, which
// reads the socket under the TLS layer: there a byte says nothing (it may
// begin the client's close_notify, which is how a TLS client leaves), so
// it reads on, keeping the bytes for the TLS layer (lc.watchRaw), until
// the read fails (the socket's end, or endWatch's deadline: the error) or
// it holds watchRawMax bytes (nil: a client sending that much is there).
func (lc *loopConn) watchRecords(wc net.Conn) error {
	var b [4096]byte
	for len(lc.watchRaw) < watchRawMax {
		n, err := wc.Read(b[:min(len(b), watchRawMax-len(lc.watchRaw))])
		lc.watchRaw = append(lc.watchRaw, b[:n]...)
		if err != nil {
			return err
		}
	}
	return nil
}

// watchConn is the connection the watch reads: the client's, or in the
// raw mode (whose RawRead holds the client's read lock) a descriptor of
// its own of the same socket, made at the first watch; nil when that
// fails.
func (lc *loopConn) watchConn() net.Conn {
	if lc.fd < 0 {
		return lc.c
	}
	if lc.dup == nil {
		dup, err := dupConn(lc.fd)
		if err != nil {
			return nil
		}
		lc.dup = dup
	}
	return lc.dup
}

// endWatch stops the background read, if one runs, and keeps the byte it
// read. After the handler returned; c.mu orders it after startWatch.
func (lc *loopConn) endWatch(c *reqCtx) {
	c.mu.Lock()
	done := lc.watch
	c.mu.Unlock()
	if done == nil {
		return
	}
	wc := lc.watchConn()
	lc.watchStop.Store(true)
	_ = wc.SetReadDeadline(aLongTimeAgo)
	<-done
	_ = wc.SetReadDeadline(time.Time{})
	lc.watchStop.Store(false)
	lc.watch = nil
	if len(lc.watchRaw) > 0 {
		// The watch read the socket under TLS: bytes of records.
		lc.ts.unread(lc.watchRaw)
		lc.watchRaw = lc.watchRaw[:0]
	}
	if lc.watchGot {
		lc.watchGot = false
		(*lc.buf)[0] = lc.watchByte[0]
		lc.r, lc.w = 0, 1
	}
}
