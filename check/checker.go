package check

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// histShards is how many latency histograms the clients share, so that
// clients on different cores rarely write one cache line.
const histShards = 8

// Checker runs one check. New prepares it, Run runs it once; Progress may
// be called from any goroutine meanwhile.
type Checker struct {
	cfg     Config
	log     zerolog.Logger
	now     func() time.Time
	header  string          // canonical form of cfg.Header
	reqs    []*http.Request // one template per target; RoundTrip does not modify them
	sources []netip.Addr    // per client; nil means no source binding
	seed    uint64
	clock   slotClock
	reps    *replicaTable
	hists   []*histogram
	swlog   switchLog

	kinds    [numKinds]atomic.Uint64
	sent     atomic.Int64 // requests begun, counted only with cfg.Requests
	ok       atomic.Uint64
	switches atomic.Uint64
	start    atomic.Pointer[time.Time]
	ran      atomic.Bool
}

// New checks cfg, resolves the targets (refusing non-loopback ones unless
// cfg.AllowRemote) and prepares the clients' source addresses. Errors wrap
// ErrConfig, ErrRemoteTarget or ErrResolve.
func New(ctx context.Context, cfg Config) (*Checker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	k := &Checker{cfg: cfg, log: zerolog.Nop(), now: cfg.Now, header: http.CanonicalHeaderKey(cfg.Header), seed: cfg.Seed}
	if cfg.Logger != nil {
		k.log = *cfg.Logger
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.seed == 0 {
		k.seed = rand.Uint64()
	}
	allLoopback, resolved, err := resolveTargets(ctx, cfg.Resolver, cfg.Targets, cfg.AllowRemote)
	if err != nil {
		return nil, err
	}
	if cfg.SourceCIDR.IsValid() {
		if cfg.SourceCIDR.Addr().IsLoopback() && !allLoopback {
			return nil, configErr("source-cidr", "%v is loopback and cannot reach a remote target; give local addresses or none",
				cfg.SourceCIDR)
		}
		for i, addrs := range resolved {
			if !reachable(cfg.SourceCIDR, addrs) {
				return nil, configErr("source-cidr", "%v cannot reach %q (%v): other address family; give a CIDR of its family or none",
					cfg.SourceCIDR, cfg.Targets[i], addrs)
			}
		}
		if k.sources, err = sourceAddrs(cfg.SourceCIDR, cfg.Clients); err != nil {
			return nil, err
		}
	}
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
	}
	for _, t := range cfg.Targets {
		req, err := http.NewRequest(http.MethodGet, scheme+t+cfg.Path, nil)
		if err != nil {
			return nil, configErr("targets", "%q with path %q: %v", t, cfg.Path, err)
		}
		if cfg.Host != "" {
			req.Host = cfg.Host
		}
		req.Header.Set("User-Agent", "tether-check")
		k.reqs = append(k.reqs, req)
	}
	k.clock = newSlotClock(cfg.Duration + cfg.Timeout + cfg.StickyWindow + time.Second)
	k.reps = newReplicaTable(k.clock, cfg.MaxReplicas)
	k.swlog.cap = cfg.MaxSwitchRecords
	for range histShards {
		k.hists = append(k.hists, new(histogram))
	}
	return k, nil
}

// Run sends the load and returns the report once every client has
// stopped: at cfg.Duration (plus the last requests' answers, each within
// cfg.Timeout), after cfg.Requests, or when ctx ends (then the report says
// Aborted). It may be called once.
func (k *Checker) Run(ctx context.Context) (*Report, error) {
	if !k.ran.CompareAndSwap(false, true) {
		return nil, ErrRan
	}
	clients := make([]*client, k.cfg.Clients)
	for i := range clients {
		clients[i] = newClient(k, i, k.seed)
	}
	start := k.now()
	k.start.Store(&start)
	deadline := start.Add(k.cfg.Duration)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { k.runClient(ctx, c, start, deadline) })
	}
	wg.Wait()
	end := k.now()
	for _, c := range clients {
		c.tr.CloseIdleConnections()
	}
	if d := k.swlog.dropped; d > 0 {
		k.log.Warn().Uint64("dropped", d).Int("kept", k.swlog.cap).Msg("check: switch records over cap; the excess is counted, not judged")
	}
	return k.report(clients, start, end, ctx.Err() != nil), nil
}

// Progress is a running count, for a live display.
type Progress struct {
	Elapsed  time.Duration // since the first request
	Done     uint64        // requests answered or failed
	OK       uint64        // of which served a client
	Errors   uint64        // of which failed
	Switches uint64        // clients moved to another replica (not yet judged)
}

// Progress returns the counts so far; zero before Run starts. Safe from
// any goroutine.
func (k *Checker) Progress() Progress {
	s := k.start.Load()
	if s == nil {
		return Progress{}
	}
	p := Progress{Elapsed: k.now().Sub(*s), OK: k.ok.Load(), Switches: k.switches.Load()}
	for i := range k.kinds {
		p.Errors += k.kinds[i].Load()
	}
	p.Done = p.OK + p.Errors
	return p
}

// String formats p as one status line.
func (p Progress) String() string {
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Done) / p.Elapsed.Seconds()
	}
	return fmt.Sprintf("%6.1fs  %d requests  %.0f/s  %d errors  %d switches",
		p.Elapsed.Seconds(), p.Done, rate, p.Errors, p.Switches)
}
