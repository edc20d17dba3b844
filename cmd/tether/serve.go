package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/gossip"
	"github.com/tetherproxy/tether/proxy"
	"github.com/tetherproxy/tether/recovery"
	"github.com/tetherproxy/tether/stickydb"
	"github.com/tetherproxy/tether/web"
)

func init() {
	commands["serve"] = command{"run a tether node (the default command)", runServe, settingsHelp("tether serve")}
}

const (
	// drainTimeout bounds the wait for in-flight requests at shutdown.
	drainTimeout = 10 * time.Second
	// hookTimeout bounds each other shutdown hook (leave cluster, flush log).
	hookTimeout = 10 * time.Second
)

func runServe(args []string) int {
	cfg, err := loadConfig(args, env.ToMap(os.Environ()), os.Hostname, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tether:", err)
		return 2
	}
	log := newLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := serve(ctx, cfg, log, hup, nil); err != nil {
		log.Error().Err(err).Msg("tether stopped")
		return 1
	}
	return 0
}

func newLogger(cfg Config, w io.Writer) zerolog.Logger {
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(cfg.LogLevel).With().Timestamp().Str("node", cfg.NodeName).Logger()
}

// node is one running tether node: the parts, and the hooks that stop
// them. Start steps fill it in order; shutdown runs the hooks in reverse.
type node struct {
	cfg      Config
	log      zerolog.Logger
	now      func() time.Time
	registry *prometheus.Registry // /metrics (the admin part serves it)

	db     *stickydb.DB
	bind   proxy.Bindings // what the proxy writes bindings through
	gossip *gossip.Node
	admin  *web.Server
	store  *recovery.Store    // disk mode only
	rec    *recovery.Recovery // disk mode only

	started  time.Time
	proxyPtr atomic.Pointer[proxy.Proxy] // for gossip's drain callback, set once the proxy exists
	proxy    *proxy.Proxy
	server   *http.Server
	ln       net.Listener

	wrapTransport transportWrapper // nil; set only by the faultinject test hook

	edge edgeNode // TLS listener, access log (edge.go)

	failed chan error // a part that stopped on its own (e.g. the listener)

	mu    sync.Mutex
	hooks []hook
}

type hook struct {
	name string
	fn   func(ctx context.Context) error
}

// step is one start step. Steps run in order; when one fails, the hooks of
// those before it run.
type step struct {
	name string
	run  func(ctx context.Context, n *node) error
}

// startSteps start a node: the DB, its disk (data dir) or nothing (epoch
// mode), gossip (the proxy writes through it so binds reach the fleet), the
// proxy, the admin listener, and the proxy listener last, once everything
// behind it runs. Shutdown runs the hooks in reverse: stop accepting, finish
// in-flight requests, stop admin, leave the fleet, flush the log.
var startSteps = []step{
	{"store", startStore},
	{"recovery", startRecovery},
	{"gossip", startGossip},
	{"edge", startEdge},
	{"proxy", startProxy},
	{"admin", startAdmin},
	{"listen", startListener},
	{"tls", startTLS},
}

// onShutdown registers a hook; hooks run in reverse order of registration,
// so the listener (last started) stops accepting first and parts started
// earlier (cluster, log) stop after the requests are done.
func (n *node) onShutdown(name string, fn func(ctx context.Context) error) {
	n.mu.Lock()
	n.hooks = append(n.hooks, hook{name, fn})
	n.mu.Unlock()
}

// serve runs a node until ctx ends or a part fails. hup delivers reload
// requests (SIGHUP). ready, if not nil, sees the node once it serves.
func serve(ctx context.Context, cfg Config, log zerolog.Logger, hup <-chan os.Signal, ready func(*node)) error {
	n := &node{cfg: cfg, log: log, now: time.Now, registry: prometheus.NewRegistry(), failed: make(chan error, 1), started: time.Now()}
	if installFaults != nil { // only in -tags faultinject builds (faults.go)
		if err := installFaults(n); err != nil {
			return fmt.Errorf("start faults: %w", err)
		}
	}
	for _, s := range startSteps {
		if err := s.run(ctx, n); err != nil {
			n.shutdown()
			return fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	n.summary()
	if ready != nil {
		ready(n)
	}
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info().Msg("shutting down")
			break loop
		case <-hup:
			_ = n.reload()
			_ = n.reloadEdge()
		case err = <-n.failed:
			log.Error().Err(err).Msg("a part failed; shutting down")
			break loop
		}
	}
	n.shutdown()
	return err
}

// shutdown runs the hooks, newest first, each within its bound.
func (n *node) shutdown() {
	n.mu.Lock()
	hooks := n.hooks
	n.hooks = nil
	n.mu.Unlock()
	for i := len(hooks) - 1; i >= 0; i-- {
		h := hooks[i]
		ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
		if err := h.fn(ctx); err != nil {
			n.log.Warn().Err(err).Str("part", h.name).Msg("shutdown step failed")
		}
		cancel()
	}
	n.log.Info().Msg("stopped")
}

// reload re-reads TETHER_BACKENDS and the routes file and swaps the routes
// in; on any error the routes in force stay and the error is logged and
// returned (for the admin API).
func (n *node) reload() error {
	r, err := loadRoutes(n.cfg)
	if err == nil {
		err = n.proxy.Reload(r)
	}
	if err != nil {
		n.log.Error().Err(err).Msg("reload refused; the routes in force stay")
		return err
	}
	// The fleet's drain state outlives a reload.
	for _, d := range n.gossip.Drains() {
		_ = n.proxy.SetDrain(d.Pool, d.Name, d.On)
	}
	return nil
}

func startStore(_ context.Context, n *node) error {
	c := stickydb.DefaultConfig(n.cfg.NodeName)
	c.TTL = n.cfg.TTL
	c.RefreshThreshold = n.cfg.TTL / 4
	c.Durable = n.cfg.DataDir != ""
	c.MaxBindings = n.cfg.MaxBindings
	// One origin may fill the whole table: a node that alone served a
	// table raised past the default per-origin cap would otherwise be
	// refused its own bindings (and its peers its events) at 4M.
	c.MaxBindingsPerOrigin = max(c.MaxBindingsPerOrigin, n.cfg.MaxBindings)
	db, err := stickydb.New(c, n.now())
	if err != nil {
		return err
	}
	n.db, n.bind = db, db
	return nil
}

func startProxy(_ context.Context, n *node) error {
	pc := proxy.DefaultConfig()
	pc.Bindings, pc.Routes, pc.TrustedProxies = n.bind, n.cfg.Routes, n.cfg.TrustedProxies
	pc.Logger, pc.Now, pc.Registerer = &n.log, n.now, n.registry
	pc.Forwarding = n.cfg.Forwarding
	pc.ClientPrefix = n.cfg.Edge.ClientPrefix
	if n.edge.access != nil {
		pc.AccessLog = n.edge.access
	}
	n.cfg.Limits.proxyLimits(&pc)
	pc.CatchUp = n.gossip.WaitReady // a restarted node serves by what the fleet knows
	p, err := proxy.New(pc)
	if err != nil {
		return err
	}
	n.proxy = p
	n.proxyPtr.Store(p)
	for _, d := range n.gossip.Drains() { // drains learnt before the proxy existed
		_ = p.SetDrain(d.Pool, d.Name, d.On)
	}
	n.onShutdown("proxy", func(context.Context) error { return p.Close() })
	return nil
}

// startListener opens the proxy port last, once everything behind it
// runs. Its hook stops accepting and lets in-flight requests finish within
// drainTimeout, then cuts the rest.
func startListener(_ context.Context, n *node) error {
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return err
	}
	n.server = n.proxy.NewServer()
	lim, err := n.limitListener(ln, n.server)
	if err != nil {
		_ = ln.Close()
		return err
	}
	ln, n.ln = lim, lim
	ln = n.edgeListener(ln)
	n.edgeServer(n.server, true)
	// The fast forwarding is served by the proxy's own connection loop
	// (plain GET and HEAD; the rest goes to n.server on the same
	// connection); TETHER_FORWARDING=stdlib keeps net/http's server alone.
	serve, shutdown, closeAll := n.server.Serve, n.server.Shutdown, n.server.Close
	if n.cfg.Forwarding == proxy.ForwardFast && !n.cfg.Edge.HTTPSRedirect {
		ls := proxy.NewLoopServer(n.server)
		serve, shutdown, closeAll = ls.Serve, ls.Shutdown, ls.Close
	}
	go func() {
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case n.failed <- fmt.Errorf("proxy listener: %w", err):
			default:
			}
		}
	}()
	n.onShutdown("listener", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, drainTimeout)
		defer cancel()
		err := shutdown(ctx)
		if err != nil {
			_ = closeAll()
		}
		return err
	})
	return nil
}

// summary logs the start-up summary at info.
func (n *node) summary() {
	c := n.cfg
	backends := 0
	for _, p := range c.Routes.Pools {
		backends += len(p.Backends)
	}
	n.log.Info().Str("listen", n.ln.Addr().String()).Str("admin_listen", c.AdminListen).
		Int("pools", len(c.Routes.Pools)).Int("backends", backends).Str("routes_file", c.RoutesFile).
		Str("ttl", c.TTL.String()).Str("push_interval", c.PushInterval.String()).Str("gossip_bind", c.GossipBind).
		Strs("join", c.Join).Bool("gossip_encrypted", c.GossipKey != nil).Str("data_dir", c.DataDir).
		Int("max_bindings", c.MaxBindings).Int("trusted_proxies", len(c.TrustedProxies)).Str("version", version).Msg("tether serving")
}
