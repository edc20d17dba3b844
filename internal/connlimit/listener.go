package connlimit

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// ErrConfig: a Config that New cannot run with.
var ErrConfig = errors.New("connlimit: invalid config")

// Config holds the limits of one listener.
type Config struct {
	// MaxConns is the most connections open at once. Required (> 0); see
	// DefaultMaxConns.
	MaxConns int
	// MaxPerSource is the most connections open at once from one source
	// address (IPv6: one /64). 0 means no per-source cap.
	MaxPerSource int
	// Exempt, when set, says which sources the per-source cap spares (load
	// balancers, PROXY-protocol senders). Called at accept.
	Exempt func(netip.Addr) bool
	// IdleTimeout is how long an idle keep-alive connection may wait for
	// its next request while the listener is under half full; it shrinks
	// linearly to MinIdleTimeout at 90 % full. Defaults 120s and 2s.
	IdleTimeout    time.Duration
	MinIdleTimeout time.Duration
	// TunnelIdleTimeout closes a hijacked (upgraded) connection that
	// carried no byte either way for this long. 0 means never.
	TunnelIdleTimeout time.Duration
	// SweepInterval is how often idle connections and tunnels are checked.
	// Default 500ms.
	SweepInterval time.Duration
	// Registerer receives the metrics (tether_conns_*). nil registers none.
	Registerer prometheus.Registerer
	// Logger gets refusals, rate-limited (3 lines, then one per 10 s);
	// the counters keep the exact numbers. nil means zerolog.Nop().
	Logger *zerolog.Logger
	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// DefaultMaxConns derives the global cap from the soft file-descriptor
// limit: a reserve (a quarter of the limit, at most 1,024) for the admin
// listener, health checks, gossip and files, then half of the rest, since
// every active client connection may hold a replica connection too.
// fdLimit 0 (unknown) gives 4,096.
func DefaultMaxConns(fdLimit uint64) int {
	if fdLimit == 0 {
		return 4096
	}
	if fdLimit > 1<<22 {
		fdLimit = 1 << 22
	}
	reserve := min(fdLimit/4, 1024)
	return max(int((fdLimit-reserve)/2), 16)
}

// Listener is a net.Listener with the limits of Config. Its connections
// are *Conn.
type Listener struct {
	net.Listener
	cfg Config
	log zerolog.Logger
	m   metrics

	mu      sync.Mutex
	open    int
	perSrc  map[netip.Addr]int
	idle    list.List // *Conn, longest idle first
	tunnels map[*Conn]struct{}

	refuseLog rate.Sometimes
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Conn is one accepted connection.
type Conn struct {
	net.Conn
	l   *Listener
	src netip.Addr

	// Guarded by l.mu.
	elem      *list.Element // in l.idle (see SetState)
	idleSince time.Time     // when it went idle, as its place in l.idle says
	gone      bool          // released (closed, or picked to be closed)

	// Set without the lock, by SetState: a keep-alive connection goes
	// idle and active once a request, and takes l.mu only when it enters
	// l.idle. l.idle is tidied where it is read (oldestIdleLocked).
	busy     atomic.Bool
	lastIdle atomic.Int64 // unix ns of the last StateIdle
	listed   atomic.Bool  // elem != nil, for SetState

	tunnel    atomic.Bool
	lastIO    atomic.Int64 // unix ns; kept only while tunnel
	closeOnce sync.Once
}

type metrics struct {
	open     prometheus.GaugeFunc
	refused  *prometheus.CounterVec // reason: global, source
	reclaims *prometheus.CounterVec // reason: pressure, idle, tunnel_idle
}

// New wraps inner. Close stops the sweeper and closes inner.
func New(inner net.Listener, cfg Config) (*Listener, error) {
	if cfg.MaxConns <= 0 || cfg.MaxPerSource < 0 || cfg.IdleTimeout < 0 || cfg.MinIdleTimeout < 0 || cfg.TunnelIdleTimeout < 0 {
		return nil, fmt.Errorf("%w: MaxConns %d, MaxPerSource %d", ErrConfig, cfg.MaxConns, cfg.MaxPerSource)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.MinIdleTimeout == 0 {
		cfg.MinIdleTimeout = 2 * time.Second
	}
	cfg.MinIdleTimeout = min(cfg.MinIdleTimeout, cfg.IdleTimeout)
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 500 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Listener{Listener: inner, cfg: cfg, log: zerolog.Nop(), perSrc: map[netip.Addr]int{}, tunnels: map[*Conn]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.Logger != nil {
		l.log = *cfg.Logger
	}
	l.refuseLog.First, l.refuseLog.Interval = 3, 10*time.Second
	l.m = metrics{
		open: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tether_conns_open", Help: "Client connections open on the proxy listener."},
			func() float64 { return float64(l.Open()) }),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_conns_refused_total",
			Help: "Client connections closed at accept: global (the cap was reached and none was idle) or source (the per-source cap)."}, []string{"reason"}),
		reclaims: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_conns_reclaimed_total",
			Help: "Client connections closed by the limits: pressure (idle, closed to admit a new one at the cap), idle (the shrunk idle timeout), tunnel_idle."}, []string{"reason"}),
	}
	for _, r := range []string{"global", "source"} {
		l.m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"pressure", "idle", "tunnel_idle"} {
		l.m.reclaims.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{l.m.open, l.m.refused, l.m.reclaims} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	go l.sweep()
	return l, nil
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Accept returns the next connection within the limits; those beyond them
// are closed here and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		lc := &Conn{Conn: c, l: l, src: src}
		victim, reason := l.admit(lc)
		if victim != nil {
			l.m.reclaims.WithLabelValues("pressure").Inc()
			_ = victim.Close()
		}
		if reason == "" {
			return lc, nil
		}
		l.m.refused.WithLabelValues(reason).Inc()
		l.refuseLog.Do(func() {
			l.log.Warn().Str("reason", reason).Str("source", src.String()).Int("open", l.Open()).
				Int("max_conns", l.cfg.MaxConns).Int("max_per_source", l.cfg.MaxPerSource).
				Msg("connection refused by the limits (rate-limited line; see tether_conns_refused_total)")
		})
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // free the socket now, no TIME_WAIT on our side
		}
		_ = c.Close()
	}
}

// admit counts lc in, or says why not. At the global cap it picks the
// longest-idle connection to close instead (the caller closes it).
func (l *Listener) admit(lc *Conn) (victim *Conn, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.MaxPerSource > 0 && l.perSrc[lc.src] >= l.cfg.MaxPerSource && (l.cfg.Exempt == nil || !l.cfg.Exempt(lc.src)) {
		return nil, "source"
	}
	if l.open >= l.cfg.MaxConns {
		if victim = l.oldestIdleLocked(); victim == nil {
			return nil, "global"
		}
		l.releaseLocked(victim)
	}
	l.open++
	l.perSrc[lc.src]++
	return victim, ""
}

// releaseLocked takes c out of the counts, once.
func (l *Listener) releaseLocked(c *Conn) {
	if c.gone {
		return
	}
	c.gone = true
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	delete(l.tunnels, c)
	l.open--
	if n := l.perSrc[c.src] - 1; n > 0 {
		l.perSrc[c.src] = n
	} else {
		delete(l.perSrc, c.src)
	}
}

// ConnState is for http.Server.ConnState.
func (l *Listener) ConnState(c net.Conn, s http.ConnState) { SetState(c, s) }

// SetState tells the limits that c (a *Conn from Accept, or a connection
// wrapping one) changed state: StateIdle (waiting for the next request),
// StateActive (reading or serving one), StateHijacked (taken over by an
// upgrade). Other states are ignored; Close does the accounting.
func SetState(c net.Conn, s http.ConnState) {
	lc := unwrap(c)
	if lc == nil {
		return
	}
	l := lc.l
	switch s {
	case http.StateIdle:
		if !lc.busy.Load() && lc.listed.Load() {
			return // idle already: it keeps its time
		}
		now := l.cfg.Now()
		lc.lastIdle.Store(now.UnixNano())
		lc.busy.Store(false)
		if lc.listed.Load() {
			return // its place is tidied by oldestIdleLocked
		}
		l.mu.Lock()
		if !lc.gone && lc.elem == nil {
			lc.idleSince = now
			lc.elem = l.idle.PushBack(lc)
			lc.listed.Store(true)
		}
		l.mu.Unlock()
	case http.StateActive:
		lc.busy.Store(true)
	case http.StateHijacked:
		lc.busy.Store(true)
		l.mu.Lock()
		if lc.elem != nil {
			l.idle.Remove(lc.elem)
			lc.elem = nil
			lc.listed.Store(false)
		}
		if !lc.gone && l.cfg.TunnelIdleTimeout > 0 {
			lc.lastIO.Store(l.cfg.Now().UnixNano())
			lc.tunnel.Store(true)
			l.tunnels[lc] = struct{}{}
		}
		l.mu.Unlock()
	}
}

// oldestIdleLocked returns the connection idle the longest, or nil. On
// the way it tidies the front of l.idle, whose places SetState does not
// keep: a busy connection leaves it, and one that has been active and
// idle again since it was placed moves back to the place of its new time
// (placeLocked). A connection going idle while it is taken out is put
// back (SetState stores busy before it loads listed, this the other way
// round: one of the two sees the other).
func (l *Listener) oldestIdleLocked() *Conn {
	for n := 2 * l.idle.Len(); n > 0; n-- {
		e := l.idle.Front()
		if e == nil {
			return nil
		}
		c := e.Value.(*Conn)
		if c.busy.Load() {
			l.idle.Remove(e)
			c.elem = nil
			c.listed.Store(false)
			if c.busy.Load() {
				continue
			}
		}
		t := c.lastIdle.Load()
		if c.elem != nil && t <= c.idleSince.UnixNano() {
			return c
		}
		c.idleSince = time.Unix(0, t)
		l.placeLocked(c)
	}
	return nil
}

// placeLocked puts c in l.idle after the last connection idle since no
// later than c, looking back from the end at most placeWalk places (the
// connections that went idle after c did: few, as c's time is recent).
func (l *Listener) placeLocked(c *Conn) {
	if c.elem == nil {
		c.elem = l.idle.PushBack(c)
		c.listed.Store(true)
	}
	at := l.idle.Back()
	for i := 0; i < placeWalk && at != nil && (at == c.elem || at.Value.(*Conn).idleSince.After(c.idleSince)); i++ {
		at = at.Prev()
	}
	switch {
	case at == nil:
		l.idle.MoveToFront(c.elem)
	case at != c.elem:
		l.idle.MoveAfter(c.elem, at)
	}
}

// placeWalk bounds placeLocked's search: beyond it the order is only
// nearly by idle time.
const placeWalk = 64

// unwrap finds the *Conn under TLS and PROXY-protocol wrappers.
func unwrap(c net.Conn) *Conn {
	for i := 0; i < 8 && c != nil; i++ {
		switch v := c.(type) {
		case *Conn:
			return v
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = v.NetConn()
		case interface{ Raw() net.Conn }: // PROXY-protocol connections
			c = v.Raw()
		default:
			return nil
		}
	}
	return nil
}

// idleTimeout is the keep-alive limit at this fill level.
func (l *Listener) idleTimeoutLocked() time.Duration {
	fill := float64(l.open) / float64(l.cfg.MaxConns)
	hi, lo := l.cfg.IdleTimeout, l.cfg.MinIdleTimeout
	switch {
	case fill <= 0.5:
		return hi
	case fill >= 0.9:
		return lo
	}
	return (hi - time.Duration((fill-0.5)/0.4*float64(hi-lo))).Round(time.Millisecond)
}

func (l *Listener) sweep() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.SweepInterval)
	defer t.Stop()
	var victims []*Conn
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := l.cfg.Now()
		idle, tunnels := 0, 0
		l.mu.Lock()
		limit := l.idleTimeoutLocked()
		for c := l.oldestIdleLocked(); c != nil && now.Sub(c.idleSince) >= limit; c = l.oldestIdleLocked() {
			l.releaseLocked(c)
			victims = append(victims, c)
			idle++
		}
		if tl := l.cfg.TunnelIdleTimeout; tl > 0 {
			for c := range l.tunnels {
				if now.Sub(time.Unix(0, c.lastIO.Load())) >= tl {
					l.releaseLocked(c)
					victims = append(victims, c)
					tunnels++
				}
			}
		}
		l.mu.Unlock()
		for _, c := range victims {
			_ = c.Close()
		}
		clear(victims)
		victims = victims[:0]
		l.m.reclaims.WithLabelValues("idle").Add(float64(idle))
		l.m.reclaims.WithLabelValues("tunnel_idle").Add(float64(tunnels))
	}
}

// Close stops the sweeper and closes the inner listener; open connections
// stay (the HTTP server's Shutdown deals with them).
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.stop) })
	<-l.done
	return l.Listener.Close()
}

func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.tunnel.Load() {
		c.lastIO.Store(c.l.cfg.Now().UnixNano())
	}
	return n, err
}

func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && c.tunnel.Load() {
		c.lastIO.Store(c.l.cfg.Now().UnixNano())
	}
	return n, err
}

// SyscallConn is the socket's own, when the accepted connection is a
// socket (a *net.TCPConn): Conn holds no bytes of its own, so a server may
// read and write the socket directly (the proxy's raw mode) while the
// connection is not a tunnel (a tunnel's I/O times are kept by Read and
// Write; the proxy hands such connections to net/http's server, which uses
// them). When the connection it wraps gives no socket, neither does it; a
// wrapper around it that buffers (PROXY protocol, TLS) does not pass this
// on.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errNoSocket
	}
	return sc.SyscallConn()
}

var errNoSocket = errors.New("connlimit: not a socket of its own")

// Close releases the connection's place and closes it.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		c.l.releaseLocked(c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite half-closes the socket, as net/http does before closing a
// connection whose client may still be sending (so the client reads the
// error response instead of a reset).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// sourceOf is the per-source key: the IPv4 address, or the IPv6 /64.
func sourceOf(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch v := a.(type) {
	case *net.TCPAddr:
		ip = v.AddrPort().Addr().Unmap()
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr().Unmap()
		}
	}
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}
