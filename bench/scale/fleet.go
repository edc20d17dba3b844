package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tetherproxy/tether/gossip"
	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
)

// FleetResult is one fleet size's figures. Rates are per node per second
// over the measuring window.
type FleetResult struct {
	N              int     `json:"n"`
	Tuning         string  `json:"tuning"`              // gossip push settings of the run
	Rate           int     `json:"rate"`                // new bindings/s asked for, fleet-wide
	BindsPerSec    float64 `json:"binds_per_s"`         // made, fleet-wide
	StartupSec     float64 `json:"startup_s"`           // all joined and ready
	WindowSec      float64 `json:"window_s"`            // measuring window
	Probes         int     `json:"probes"`              // convergence samples
	ProbesLost     int     `json:"probes_lost"`         // not on every node within ProbeTimeout
	P50Ms          float64 `json:"conv_p50_ms"`         // bind on one node -> on all others
	P99Ms          float64 `json:"conv_p99_ms"`         //
	MaxMs          float64 `json:"conv_max_ms"`         //
	MsgsPerNode    float64 `json:"msgs_per_s_node"`     // tether messages sent (UDP+TCP)
	TCPPerNode     float64 `json:"tcp_msgs_per_s_node"` // of which reliable (a TCP connection each)
	TetherBytes    float64 `json:"tether_bytes_per_s_node"`
	WireBytes      float64 `json:"wire_bytes_per_s_node"` // everything the transport wrote
	IdleWireBytes  float64 `json:"idle_wire_bytes_per_s_node"`
	IdleTether     float64 `json:"idle_tether_bytes_per_s_node"`
	MemberlistOwn  float64 `json:"memberlist_bytes_per_s_node"` // idle wire - idle tether
	IdleCPUPerNode float64 `json:"idle_cpu_pct_core_per_node"`  // process CPU in the idle window / N (probes, heartbeats, memberlist)
	CPUPerNode     float64 `json:"cpu_pct_core_per_node"`       // (process CPU - load generator) / N
	ProcessCPU     float64 `json:"process_cpu_pct"`             // whole process, % of one core
	HarnessCPU     float64 `json:"harness_cpu_pct"`             // load generator estimate, % of one core
	Settled        bool    `json:"settled"`                     // every node holds every binding after the load stops
	SettleSec      float64 `json:"settle_s"`
	WorkDropped    uint64  `json:"work_dropped"`
	OutboxDropped  uint64  `json:"outbox_dropped"`
	RangeRequests  uint64  `json:"range_requests"`
	FullCopies     uint64  `json:"full_copies"`
	// The core's gap handling, summed over the nodes (whole run): why the
	// range requests and full copies above were asked.
	ReqOrigin   uint64 `json:"req_origin"`
	ReqThird    uint64 `json:"req_third"`
	ReqFull     uint64 `json:"req_full"`
	ReqWatchdog uint64 `json:"req_watchdog"`
	// The same two in the idle window and in the measuring window only
	// (the totals above include the fleet's formation).
	IdleRequests    uint64  `json:"idle_range_requests"`
	IdleWatchdog    uint64  `json:"idle_req_watchdog"`
	WindowRequests  uint64  `json:"window_range_requests"`
	WindowWatchdog  uint64  `json:"window_req_watchdog"`
	GroupsDiscarded uint64  `json:"groups_discarded"`
	GapsRenewed     uint64  `json:"gaps_renewed"`
	Refused         uint64  `json:"requests_refused"`
	CursorSkips     uint64  `json:"cursor_skips"`
	ReceiveDropped  uint64  `json:"receive_dropped"`
	HeapMiB         float64 `json:"heap_mib"`
	// A node's crash, what the survivors pay (crashRun): the same load over
	// the survivors, 5 s before and 10 s after one node (not a seed) stops
	// without leaving.
	Crash          *CrashResult `json:"crash,omitempty"`
	JoinerBindings int          `json:"joiner_bindings,omitempty"`
	JoinerReadySec float64      `json:"joiner_ready_s,omitempty"`
	JoinerHeld     int          `json:"joiner_held,omitempty"`
	// -joiners K > 1: K joiners started at once; each one's time to ready
	// (JoinerReadySec is the slowest), and the full copies each node of
	// the fleet sent meanwhile.
	JoinersReadySec []float64 `json:"joiners_ready_s,omitempty"`
	CopiesByNode    []uint64  `json:"copies_by_node,omitempty"` // the fleet's nodes, then the joiners
	CopiesAsked     []uint64  `json:"copies_asked,omitempty"`   // full copies each joiner asked for
	Notes           string    `json:"notes,omitempty"`
}

// CrashResult is what one node's crash cost the others; per-node figures
// are per survivor.
type CrashResult struct {
	DetectSec     float64 `json:"detect_s"`            // until every survivor's membership dropped it
	BeforeCPU     float64 `json:"before_cpu_pct_node"` // CPU per survivor, 5 s before
	AfterCPU      float64 `json:"after_cpu_pct_node"`  // CPU per survivor, 10 s after
	BeforeWire    float64 `json:"before_wire_bytes_per_s_node"`
	AfterWire     float64 `json:"after_wire_bytes_per_s_node"`
	BeforeMsgs    float64 `json:"before_msgs_per_s_node"`
	AfterMsgs     float64 `json:"after_msgs_per_s_node"`
	RangeRequests uint64  `json:"range_requests"` // by the survivors in the 10 s after
	FullCopies    uint64  `json:"full_copies"`    // sent by the survivors in the 10 s after
	SendErrors    uint64  `json:"send_errors"`
	Settled       bool    `json:"settled"` // every survivor holds every binding made, 10 s after the load stops
}

type fleet struct {
	net        *faultnet.Network
	nodes      []*gossip.Node
	mu         sync.Mutex
	transports map[string]*faultnet.Transport
	key        []byte
	retune     func(*gossip.Config, int)
	capacity   int // each DB's MaxBindings when above the default (a large joiner run)
}

var replicas = []string{"web-0", "web-1", "web-2", "web-3"}

func (f *fleet) config(i int, n int) gossip.Config {
	c := gossip.DefaultConfig()
	c.BindAddr = "127.0.0.1:0"
	c.Key = f.key
	c.JoinRetryMin, c.JoinRetryMax = 20*time.Millisecond, 500*time.Millisecond
	c.LeaveTimeout = 200 * time.Millisecond
	name := fmt.Sprintf("n%d", i)
	c.WrapTransport = func(t memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error) {
		ft, err := f.net.Wrap(name, t)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.transports[name] = ft
		f.mu.Unlock()
		return ft, nil
	}
	// Seeds: the first three nodes, as an operator would list them.
	for j := 0; j < min(i, 3); j++ {
		c.Join = append(c.Join, f.nodes[j].Addr())
	}
	if f.retune != nil {
		f.retune(&c, n)
	}
	return c
}

func (f *fleet) add(i, n int, initialCopy bool, db *stickydb.DB) (*gossip.Node, error) {
	c := f.config(i, n)
	c.InitialCopy = initialCopy
	if db == nil {
		var err error
		db, err = newDB(fmt.Sprintf("n%d", i), f.capacity)
		if err != nil {
			return nil, err
		}
	}
	node, err := gossip.New(c, db)
	if err != nil {
		return nil, err
	}
	if err := node.Start(); err != nil {
		return nil, err
	}
	f.nodes = append(f.nodes, node)
	return node, nil
}

func newDB(name string, capacity int) (*stickydb.DB, error) {
	dc := stickydb.DefaultConfig(name)
	if capacity > dc.MaxBindings {
		dc.MaxBindings, dc.MaxBindingsPerOrigin = capacity, capacity
	}
	return stickydb.New(dc, time.Now())
}

func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Close() }()
	}
	wg.Wait()
	f.nodes = nil
}

func (f *fleet) wireBytes() (s uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.transports {
		s += t.BytesSent()
	}
	return s
}

type sums struct {
	msgs, tcp, bytes, workDropped, outboxDropped, requests, copies                uint64
	reqOrigin, reqThird, reqFull, reqWatchdog, discarded, renewed, refused, skips uint64
	sendErrors, recvDropped                                                       uint64
}

func (f *fleet) sums() (s sums) {
	for _, n := range f.nodes {
		st := n.Stats()
		s.msgs += st.MessagesUDP + st.MessagesTCP
		s.bytes += st.BytesSent
		s.tcp += st.MessagesTCP
		s.workDropped += st.WorkDropped
		s.outboxDropped += st.OutboxDropped
		s.requests += st.RequestsSent
		s.copies += st.FullCopiesSent
		s.refused += st.RequestsRefused
		s.sendErrors += st.SendErrors
		s.recvDropped += st.ReceiveDropped
		s.skips += st.CursorSkips
		ds := n.DB().Stats()
		s.reqOrigin += ds.RequestsOrigin
		s.reqThird += ds.RequestsThird
		s.reqFull += ds.RequestsFull
		s.reqWatchdog += ds.RequestsWatchdog
		s.discarded += ds.GroupsDiscarded
		s.renewed += ds.GapsRenewed
	}
	return s
}

// waitFormed waits until every node sees all the others and is ready,
// logging progress every 5 s: the fewest members a node sees, and what the
// nodes not ready wait for.
func (f *fleet) waitFormed(timeout time.Duration, logf func(string, ...any)) error {
	deadline := time.Now().Add(timeout)
	next := time.Now().Add(5 * time.Second)
	for {
		ok := true
		for _, n := range f.nodes {
			if len(n.Members()) < len(f.nodes) || !n.Ready() {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(next) {
			next = time.Now().Add(5 * time.Second)
			least, why := len(f.nodes), map[string]int{}
			for _, n := range f.nodes {
				least = min(least, len(n.Members()))
				if !n.Ready() {
					why[n.ReadyWhy()]++
				}
			}
			logf("forming: fewest members seen %d of %d, not ready: %v", least, len(f.nodes), why)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet of %d not formed after %v", len(f.nodes), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loadGen binds rate new keys per second fleet-wide, round robin over the
// nodes, in ticks of 5 ms, until stop. It counts what it made.
type loadGen struct {
	made atomic.Uint64
	next atomic.Uint64
}

func loadKey(i uint64) stickydb.Key {
	k, _ := stickydb.NewKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), fmt.Sprintf("h%d.example", i>>24))
	return k
}

func (g *loadGen) run(nodes []*gossip.Node, rate int, stop <-chan struct{}) {
	const tick = 5 * time.Millisecond
	tk := time.NewTicker(tick)
	defer tk.Stop()
	start := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		// Catch up to the wall clock so a late tick does not lower the rate.
		// A process too busy to keep the rate makes at most 4 ticks' worth
		// per tick: the rate made is reported, not assumed.
		due := uint64(time.Since(start).Seconds() * float64(rate))
		budget := max(1, 4*rate*int(tick)/int(time.Second))
		for ; g.made.Load() < due && budget > 0; budget-- {
			i := g.next.Add(1)
			now := time.Now()
			_, _, _ = nodes[i%uint64(len(nodes))].Store().BindIfAbsent(loadKey(i), replicas[i%4], now)
			g.made.Add(1)
		}
	}
}

// probe binds one key on from and waits until every other node holds it.
func probe(nodes []*gossip.Node, from int, seq int, timeout time.Duration, logf func(string, ...any)) (time.Duration, bool) {
	k, _ := stickydb.NewKey(netip.AddrFrom4([4]byte{192, 168, byte(seq >> 8), byte(seq)}), "probe.example")
	t0 := time.Now()
	if _, _, err := nodes[from].Store().BindIfAbsent(k, "web-0", t0); err != nil {
		return 0, false
	}
	deadline := t0.Add(timeout)
	pending := make([]*gossip.Node, 0, len(nodes))
	for i, n := range nodes {
		if i != from {
			pending = append(pending, n)
		}
	}
	for len(pending) > 0 {
		pending = slices.DeleteFunc(pending, func(n *gossip.Node) bool {
			_, ok := n.DB().Lookup(k)
			return ok
		})
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if seq < 3 && logf != nil {
				for _, n := range pending[:min(3, len(pending))] {
					st := n.Stats()
					ds := n.DB().Stats()
					logf("probe %d from %s missing on %s (%d of %d missing): members %d ready %v groups rcvd %d applied %d rejected %d decode errs %d cap %d core rejects %d unknown peer %d work dropped %d; core %+v",
						seq, nodes[from].Name(), n.Name(), len(pending), len(nodes)-1, len(n.Members()), st.Ready, st.GroupsReceived, st.EventsApplied, st.EventsRejected,
						st.DecodeErrors, st.CapBreaches, st.CoreRejects, st.UnknownPeer, st.WorkDropped, ds)
				}
			}
			return 0, false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return time.Since(t0), true
}

// bindCPU is the CPU time one BindIfAbsent of a new key costs on a lone
// DB (no gossip), so that the load generator's share of the process CPU
// can be taken out.
func bindCPU() time.Duration {
	db, err := newDB("solo", 0)
	if err != nil {
		return 0
	}
	const n = 200_000
	c0 := cpuTime()
	for i := uint64(1); i <= n; i++ {
		_, _, _ = db.BindIfAbsent(loadKey(i), replicas[i%4], time.Now())
	}
	return (cpuTime() - c0) / n
}

type fleetOpts struct {
	rate        int
	window      time.Duration
	idle        time.Duration
	warmup      time.Duration
	settle      time.Duration // how long every node may take to hold every binding once the load stops
	probeEvery  time.Duration
	joiner      int // bindings in the fleet for the joiner run; 0 skips it
	joiners     int // joiners started at once in that run (at least 1)
	crash       bool
	perBindCPU  time.Duration
	profileForm bool // the CPU profile covers formation, not the window
	retune      func(*gossip.Config, int)
	tuning      string
	logf        func(string, ...any)
}

func runFleet(n int, o fleetOpts) (FleetResult, error) {
	r := FleetResult{N: n, Rate: o.rate, Tuning: o.tuning}
	f := &fleet{net: faultnet.New(1), transports: map[string]*faultnet.Transport{}, key: []byte("0123456789abcdef"), retune: o.retune}
	if o.joiner > 0 {
		// Room for the joiner's bindings and every load before and during it.
		f.capacity = o.joiner + o.joiner/4 + 1_000_000
	}
	defer f.close()
	stopForm := func() {}
	if o.profileForm {
		stopForm = profileWindow()
	}
	t0 := time.Now()
	for i := range n {
		if _, err := f.add(i, n, false, nil); err != nil {
			return r, err
		}
	}
	err := f.waitFormed(time.Duration(n)*time.Second+20*time.Second, o.logf)
	stopForm()
	if err != nil {
		return r, err
	}
	r.StartupSec = time.Since(t0).Seconds()
	o.logf("n=%d formed in %.1fs", n, r.StartupSec)

	// Idle window: memberlist's own traffic plus tether's heartbeats.
	time.Sleep(time.Second)
	w0, s0, i0, ic0 := f.wireBytes(), f.sums(), time.Now(), cpuTime()
	time.Sleep(o.idle)
	idle := time.Since(i0).Seconds()
	w1, s1 := f.wireBytes(), f.sums()
	r.IdleCPUPerNode = 100 * (cpuTime() - ic0).Seconds() / idle / float64(n)
	r.IdleWireBytes = float64(w1-w0) / idle / float64(n)
	r.IdleTether = float64(s1.bytes-s0.bytes) / idle / float64(n)
	r.MemberlistOwn = r.IdleWireBytes - r.IdleTether
	r.IdleRequests, r.IdleWatchdog = s1.requests-s0.requests, s1.reqWatchdog-s0.reqWatchdog
	o.logf("n=%d idle: %.1f%% of a core per node, %.0f B/s/node wire (%.0f tether), %d range requests (watchdog %d)", n, r.IdleCPUPerNode, r.IdleWireBytes, r.IdleTether, r.IdleRequests, r.IdleWatchdog)

	// Load.
	gen := &loadGen{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	nodes := slices.Clone(f.nodes) // the joiner is added meanwhile
	go func() { defer wg.Done(); gen.run(nodes, o.rate, stop) }()
	time.Sleep(o.warmup)

	stopProfile := profileWindow()
	w0, s0, m0, c0, t1 := f.wireBytes(), f.sums(), gen.made.Load(), cpuTime(), time.Now()
	var lat []time.Duration
	for seq := 0; time.Since(t1) < o.window; seq++ {
		// A probe starts at a random moment (a pause of up to twice the
		// spacing after the previous one), not at a tick just after the
		// previous probe converged: that is right after a push round, and
		// would sample the wait for the next round whole.
		time.Sleep(rand.N(2 * o.probeEvery))
		d, ok := probe(f.nodes, seq%n, seq, min(5*time.Second, max(time.Second, o.window-time.Since(t1))), o.logf)
		r.Probes++
		if !ok {
			r.ProbesLost++
			continue
		}
		lat = append(lat, d)
	}
	win := time.Since(t1).Seconds()
	w1, s1, m1, c1 := f.wireBytes(), f.sums(), gen.made.Load(), cpuTime()
	stopProfile()
	close(stop)
	wg.Wait()

	r.WindowSec = win
	binds := m1 - m0
	r.BindsPerSec = float64(binds) / win
	r.WindowRequests, r.WindowWatchdog = s1.requests-s0.requests, s1.reqWatchdog-s0.reqWatchdog
	r.MsgsPerNode = float64(s1.msgs-s0.msgs) / win / float64(n)
	r.TCPPerNode = float64(s1.tcp-s0.tcp) / win / float64(n)
	r.TetherBytes = float64(s1.bytes-s0.bytes) / win / float64(n)
	r.WireBytes = float64(w1-w0) / win / float64(n)
	proc := (c1 - c0).Seconds() / win
	harness := float64(binds) * o.perBindCPU.Seconds() / win
	r.ProcessCPU = 100 * proc
	r.HarnessCPU = 100 * harness
	r.CPUPerNode = 100 * (proc - harness) / float64(n)
	if len(lat) > 0 {
		r.P50Ms = ms(pct(lat, .50))
		r.P99Ms = ms(pct(lat, .99))
		r.MaxMs = ms(slices.Max(lat))
	}
	s2 := f.sums()
	r.WorkDropped, r.OutboxDropped = s2.workDropped, s2.outboxDropped
	r.RangeRequests, r.FullCopies = s2.requests, s2.copies
	r.ReqOrigin, r.ReqThird, r.ReqFull, r.ReqWatchdog = s2.reqOrigin, s2.reqThird, s2.reqFull, s2.reqWatchdog
	r.GroupsDiscarded, r.GapsRenewed, r.Refused, r.CursorSkips = s2.discarded, s2.renewed, s2.refused, s2.skips
	r.ReceiveDropped = s2.recvDropped

	// Settle: every node holds every binding made (load + probes).
	want := int(gen.made.Load()) + r.Probes - r.ProbesLost
	ts := time.Now()
	r.Settled = waitLen(f.nodes, want, cmp.Or(o.settle, 10*time.Second))
	r.SettleSec = time.Since(ts).Seconds()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapMiB = float64(ms.HeapAlloc) / (1 << 20)
	o.logf("n=%d %.0f binds/s, p50 %.1fms p99 %.1fms (%d/%d probes lost), %.0f msgs/s/node (%.0f TCP), %d range requests (origin %d, third %d, full %d, watchdog %d; %d groups discarded, %d gaps renewed, %d refused, %d cursor skips, %d receive drops), %d full copies, %.0f B/s/node wire, cpu/node %.1f%%, settled %v in %.1fs; in the window %d range requests (watchdog %d)",
		n, r.BindsPerSec, r.P50Ms, r.P99Ms, r.ProbesLost, r.Probes, r.MsgsPerNode, r.TCPPerNode, r.RangeRequests, r.ReqOrigin, r.ReqThird, r.ReqFull, r.ReqWatchdog, r.GroupsDiscarded, r.GapsRenewed, r.Refused, r.CursorSkips, r.ReceiveDropped, r.FullCopies, r.WireBytes, r.CPUPerNode, r.Settled, r.SettleSec, r.WindowRequests, r.WindowWatchdog)

	if o.crash && n > 3 {
		c, err := crashRun(f, o)
		if err != nil {
			r.Notes = "crash: " + err.Error()
		}
		r.Crash = c
	}
	if o.joiner > 0 {
		if err := joinerRun(f, n, o, &r); err != nil {
			r.Notes = "joiner: " + err.Error()
		}
	}
	return r, nil
}

// crashRun runs the load over every node but the last, measures 5 s,
// crashes the last node (its links cut, then closed: the survivors hear
// no leave) and measures the next 10 s: what the survivors pay for it.
// The last node is left out of f.nodes afterwards.
func crashRun(f *fleet, o fleetOpts) (*CrashResult, error) {
	n := len(f.nodes)
	victim := f.nodes[n-1]
	survivors := slices.Clone(f.nodes[:n-1])
	gen := &loadGen{}
	gen.next.Store(1 << 22) // keys apart from the fleet run's
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); gen.run(survivors, o.rate, stop) }()
	stopped := false
	stopLoad := func() {
		if !stopped {
			close(stop)
			wg.Wait()
			stopped = true
		}
	}
	defer stopLoad()
	time.Sleep(o.warmup)
	ns := float64(n - 1)
	measure := func(d time.Duration) (cpu, wire, msgs float64, s sums) {
		w0, s0, m0, c0, t0 := f.wireBytes(), f.sums(), gen.made.Load(), cpuTime(), time.Now()
		time.Sleep(d)
		w1, s1, m1, c1 := f.wireBytes(), f.sums(), gen.made.Load(), cpuTime()
		sec := time.Since(t0).Seconds()
		harness := float64(m1-m0) * o.perBindCPU.Seconds() / sec
		cpu = 100 * ((c1-c0).Seconds()/sec - harness) / ns
		return cpu, float64(w1-w0) / sec / ns, float64(s1.msgs-s0.msgs) / sec / ns, sums{
			requests: s1.requests - s0.requests, copies: s1.copies - s0.copies, sendErrors: s1.sendErrors - s0.sendErrors}
	}
	c := &CrashResult{}
	c.BeforeCPU, c.BeforeWire, c.BeforeMsgs, _ = measure(5 * time.Second)

	f.net.Isolate(victim.Name())
	t0 := time.Now()
	go func() { _ = victim.Close() }() // its leave goes nowhere
	detected := make(chan float64, 1)
	go func() {
		for time.Since(t0) < 30*time.Second {
			ok := true
			for _, s := range survivors {
				if len(s.Members()) != n-1 {
					ok = false
					break
				}
			}
			if ok {
				detected <- time.Since(t0).Seconds()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		detected <- -1
	}()
	var s sums
	c.AfterCPU, c.AfterWire, c.AfterMsgs, s = measure(10 * time.Second)
	c.RangeRequests, c.FullCopies, c.SendErrors = s.requests, s.copies, s.sendErrors
	c.DetectSec = <-detected
	stopLoad()
	f.nodes = survivors
	want := 0
	for _, s := range survivors {
		want = max(want, s.DB().Len())
	}
	c.Settled = waitLen(survivors, want, 10*time.Second)
	o.logf("crash of 1 of %d: detected in %.1fs; per survivor CPU %.1f%% -> %.1f%%, wire %.0f -> %.0f B/s, msgs %.0f -> %.0f/s; %d range requests, %d full copies, %d send errors; settled %v",
		n, c.DetectSec, c.BeforeCPU, c.AfterCPU, c.BeforeWire, c.AfterWire, c.BeforeMsgs, c.AfterMsgs, c.RangeRequests, c.FullCopies, c.SendErrors, c.Settled)
	_ = victim.Close()
	if c.DetectSec < 0 {
		return c, fmt.Errorf("the survivors did not all drop the crashed node within 30 s")
	}
	return c, nil
}

// waitLen waits until every node holds at least want bindings.
func waitLen(nodes []*gossip.Node, want int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, n := range nodes {
			if n.DB().Len() < want {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinerRun puts o.joiner bindings on every node (as if the fleet had
// made them), then starts one more node with InitialCopy and times it to
// ready, with the fleet's load running.
func joinerRun(f *fleet, n int, o fleetOpts, r *FleetResult) error {
	now := time.Now()
	exp := now.Add(20 * time.Minute).UnixMilli()
	recs := make([]stickydb.Record, 0, 10_000)
	for i := 0; i < o.joiner; i++ {
		k, _ := stickydb.NewKey(netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}), fmt.Sprintf("j%d.example", i%7))
		recs = append(recs, stickydb.Record{Key: k, Binding: stickydb.Binding{Replica: replicas[i%4], Expiry: exp, Generation: 1, Origin: "n0"}})
		if len(recs) == cap(recs) || i == o.joiner-1 {
			for _, node := range f.nodes {
				if _, err := node.DB().MergeRecords(recs, now); err != nil {
					return err
				}
			}
			recs = recs[:0]
		}
	}
	base := f.nodes[0].DB().Len()
	gen := &loadGen{}
	gen.next.Store(1 << 23) // keys apart from the fleet run's
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	nodes := slices.Clone(f.nodes) // the joiner is added meanwhile
	go func() { defer wg.Done(); gen.run(nodes, o.rate, stop) }()
	defer func() { close(stop); wg.Wait() }()

	copies0 := make([]uint64, len(nodes))
	for i, node := range nodes {
		copies0[i] = node.Stats().FullCopiesSent
	}
	k := max(1, o.joiners)
	start := time.Now()
	joiners := make([]*gossip.Node, k)
	for j := range joiners {
		db, err := newDB(fmt.Sprintf("n%d", n+j), f.capacity)
		if err != nil {
			return err
		}
		if joiners[j], err = f.add(n+j, n+k, true, db); err != nil {
			return err
		}
	}
	ready := make([]float64, k)
	errs := make([]error, k)
	var jw sync.WaitGroup
	for j, node := range joiners {
		jw.Add(1)
		go func() {
			defer jw.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			errs[j] = node.WaitReady(ctx)
			ready[j] = time.Since(start).Seconds()
		}()
	}
	jw.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.JoinerReadySec = slices.Max(ready)
	r.JoinerBindings = base
	r.JoinerHeld = joiners[0].DB().Len()
	for _, node := range joiners[1:] {
		r.JoinerHeld = min(r.JoinerHeld, node.DB().Len())
	}
	if k > 1 {
		r.JoinersReadySec = ready
		for i, node := range nodes {
			r.CopiesByNode = append(r.CopiesByNode, node.Stats().FullCopiesSent-copies0[i])
		}
		for _, node := range joiners {
			r.CopiesByNode = append(r.CopiesByNode, node.Stats().FullCopiesSent)
			r.CopiesAsked = append(r.CopiesAsked, node.DB().Stats().RequestsFull)
		}
	}
	o.logf("joiner: %d ready in %.2fs (each: %.2f s) holding at least %d of %d bindings; full copies sent by the fleet's nodes, then by the joiners: %v; asked by each joiner: %v",
		k, r.JoinerReadySec, ready, r.JoinerHeld, base, r.CopiesByNode, r.CopiesAsked)
	if r.JoinerHeld < base {
		return fmt.Errorf("ready with %d of %d bindings", r.JoinerHeld, base)
	}
	return nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
