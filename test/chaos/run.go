package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Config shapes one chaos run.
type Config struct {
	Bin  string // tether built with -tags faultinject
	Race bool   // the binary has the race detector (for the report)
	Seed uint64

	// Duration of the fault phase. When Plan is set, the run does the plan
	// (and stops early at Duration); else it draws nemeses until Duration.
	Duration time.Duration
	Plan     [][]string // each step: the nemeses injected together

	Nodes, DiskNodes int     // 5 and 2: nodes 0..DiskNodes-1 keep a data dir
	Clients          int     // clients bound before the faults start
	Arrivals         float64 // new clients per second during the run
	Workers          int     // requests in flight at most
	Combo            float64 // chance that a drawn step injects two nemeses

	FaultMin, FaultMax time.Duration // how long a fault stays
	Quiet              time.Duration // healthy time between two steps
	ConvergeBound      time.Duration // after a heal, the fleet must agree within this

	// NoReadiness sends clients to every running node, ready or not.
	NoReadiness bool

	// LogDir, when set, receives a copy of every node's log at the end.
	LogDir string

	// Resource bounds, checked at the end with the traffic stopped.
	MaxGoroutines float64
	MaxRSS        float64 // bytes
}

// Report holds a run's figures.
type Report struct {
	Config      Config
	Took        time.Duration
	Steps       []string // the fault log
	Faults      map[string]int
	Net         NetStats // faultnet counters over all processes
	ClockSteps  int64
	Refused     int64 // invalid routes files refused by every node
	Requests    int64
	OK          int64
	Errors      map[string]int64
	Clients     int
	Outcomes    map[string]int64
	Violations  []string
	Unsettled   []string // examples
	Settle      string   // first seen -> on every node
	Probe       string   // replication window of a healthy fleet
	ProbeMax    time.Duration
	Converge    map[string]string
	ConvergeMax time.Duration
	FinalConv   time.Duration
	RestartDisk string
	RestartEp   string
	Panics      []string
	Resources   map[string]string  // per node: peak and final
	Failures    []string           // checks that failed
	Counters    map[string]float64 // replication counters, summed over every process
	Canary      string
}

type resTrack struct {
	peak, final Resources
}

type runner struct {
	cfg Config
	tb  testing.TB
	c   *Cluster
	w   *Workload
	tl  *Timeline
	rng *rand.Rand

	mu       sync.Mutex
	faults   map[string]int
	steps    []string
	failures []string
	converge map[string]*Durations
	convMax  time.Duration
	net      NetStats
	netPrev  map[*Node]NetStats
	counts   map[string]float64           // replication counters over all processes
	cntPrev  map[*Node]map[string]float64 // last read per node
	res      map[string]*resTrack

	restartDisk, restartEpoch, probes Durations
	restarting                        []restart // started by this step's heals, readiness not yet awaited
	clockSteps, invalidRefused        atomic.Int64
}

func (r *runner) fail(format string, args ...any) {
	r.mu.Lock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.tb.Logf("FAIL: "+format, args...)
}

func (r *runner) logf(format string, args ...any) {
	line := time.Now().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.steps = append(r.steps, line)
	r.mu.Unlock()
	r.tb.Log(line)
}

// Run does one chaos run and returns its figures. It fails tb only for
// harness errors; the caller judges the report (Report.Failures and
// Report.Violations).
func Run(tb testing.TB, cfg Config) *Report {
	start := time.Now()
	r := &runner{cfg: cfg, tb: tb, tl: NewTimeline(), rng: rand.New(rand.NewPCG(cfg.Seed, 0xc4a05)),
		faults: map[string]int{}, converge: map[string]*Durations{}, netPrev: map[*Node]NetStats{}, res: map[string]*resTrack{},
		counts: map[string]float64{}, cntPrev: map[*Node]map[string]float64{}}
	skews := make([]int64, cfg.Nodes)
	for i := range skews {
		skews[i] = -2000 + r.rng.Int64N(4001) // ±2 s per node
	}
	r.c = StartCluster(tb, cfg.Bin, ClusterOptions{Nodes: cfg.Nodes, DiskNodes: cfg.DiskNodes, Skews: skews, Seed: cfg.Seed})
	r.logf("fleet of %d up (disk mode: %d), clock skews ms %v", cfg.Nodes, cfg.DiskNodes, skews)
	r.w = NewWorkload(r.c, r.tl)
	r.w.NoReadiness = cfg.NoReadiness
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < cfg.Clients; i++ {
		r.w.Add()
	}
	wg := r.w.Run(ctx, cfg.Workers, cfg.Arrivals, cfg.Seed)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	defer stop()

	r.warmUp(ctx)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() { defer sampling.Done(); r.sample(sampleCtx) }()

	r.w.SetArrivals(true)
	r.faultPhase(ctx)
	r.w.SetArrivals(false)

	// Final agreement with traffic still running (reads only: no events).
	if d, err := r.c.WaitConverged(ctx, cfg.ConvergeBound); err != nil {
		r.fail("final convergence: %v", err)
	} else {
		r.mu.Lock()
		r.convMax = max(r.convMax, d)
		r.mu.Unlock()
		r.logf("final: converged in %v", d.Round(time.Millisecond))
	}
	if err := r.w.WaitSettled(ctx, cfg.ConvergeBound); err != nil {
		r.fail("final: %v", err)
	}
	stopSampling()
	sampling.Wait()
	stop()
	for _, n := range r.c.Nodes {
		r.readNet(n)
	}
	r.finalResources()
	rep := r.report(time.Since(start))
	rep.Canary = r.canary()
	if cfg.LogDir != "" {
		for _, n := range r.c.Nodes {
			if err := os.WriteFile(filepath.Join(cfg.LogDir, n.Name+".log"), []byte(n.Log()), 0o644); err != nil {
				r.fail("copy log: %v", err)
			}
		}
	}
	r.mu.Lock()
	rep.Failures = slices.Clone(r.failures)
	r.mu.Unlock()
	return rep
}

// warmUp binds the first clients, waits until every node holds their
// bindings, measures the replication window, then adds replica d to the
// pool: from now on rendezvous hashing alone would move about a fifth of
// the clients, so only the replicated bindings keep them where they are.
func (r *runner) warmUp(ctx context.Context) {
	deadline := time.Now().Add(2 * time.Minute)
	for r.w.Outcome(First) < int64(r.cfg.Clients) {
		if time.Now().After(deadline) {
			r.tb.Fatalf("warm-up: %d of %d clients served (errors %v)", r.w.Outcome(First), r.cfg.Clients, r.w.ErrorCounts())
		}
		time.Sleep(50 * time.Millisecond) // polling the workload's counter, bounded
	}
	if err := r.w.WaitSettled(ctx, time.Minute); err != nil {
		r.tb.Fatalf("warm-up: %v", err)
	}
	for i := 0; i < 20; i++ {
		r.probe(ctx)
	}
	if err := r.c.Routes.Set("a", "b", "c", "d"); err != nil {
		r.tb.Fatal(err)
	}
	r.c.Reload()
	r.logf("warm-up: %d clients on every node (settle %s); replication window %s; replica d added",
		r.cfg.Clients, r.w.Settle.Summary(), r.probes.Summary())
	for _, n := range r.c.Nodes {
		res, err := ReadResources(n.Node)
		if err != nil {
			r.tb.Fatal(err)
		}
		r.res[n.Name] = &resTrack{peak: res}
	}
}

var probeSeq atomic.Int64

// probe measures the replication window once, through a random node in
// rotation, when no node is down.
func (r *runner) probe(ctx context.Context) {
	rot := r.w.Rotation()
	if len(rot) < len(r.c.Nodes) {
		return
	}
	d, err := r.w.ProbeReplication(ctx, int(probeSeq.Add(1)), rot[r.rng.IntN(len(rot))])
	if err == nil {
		r.probes.Add(d)
	}
}

// faultPhase runs the plan, or draws steps, until the duration is over.
func (r *runner) faultPhase(ctx context.Context) {
	end := time.Now().Add(r.cfg.Duration)
	plan := slices.Clone(r.cfg.Plan)
	for step := 0; time.Now().Before(end) && ctx.Err() == nil; step++ {
		var kinds []string
		if r.cfg.Plan != nil {
			if len(plan) == 0 {
				return
			}
			kinds, plan = plan[0], plan[1:]
		} else {
			all := Kinds()
			kinds = []string{all[r.rng.IntN(len(all))]}
			if r.rng.Float64() < r.cfg.Combo {
				if k := all[r.rng.IntN(len(all))]; k != kinds[0] {
					kinds = append(kinds, k)
				}
			}
		}
		r.step(ctx, step, kinds)
	}
}

// step injects kinds together, holds them, heals them, and measures how
// long the fleet takes to agree again.
func (r *runner) step(ctx context.Context, i int, kinds []string) {
	type active struct {
		kind, target string
		heal         func() error
	}
	var on []active
	for _, k := range kinds {
		nm, ok := nemesisOf(k)
		if !ok {
			r.tb.Fatalf("unknown nemesis %q (have %v)", k, Kinds())
		}
		target, heal, err := nm.inject(r, r.rng)
		if errors.Is(err, errNoTarget) {
			r.logf("step %d: %s skipped: no target", i, k)
			continue
		}
		if err != nil {
			r.fail("step %d: inject %s: %v", i, k, err)
			continue
		}
		r.mu.Lock()
		r.faults[k]++
		r.mu.Unlock()
		on = append(on, active{k, target, heal})
		r.logf("step %d: %s: %s", i, k, target)
	}
	if len(on) == 0 {
		return
	}
	hold := r.cfg.FaultMin + time.Duration(r.rng.Int64N(int64(r.cfg.FaultMax-r.cfg.FaultMin)+1))
	select {
	case <-ctx.Done():
	case <-time.After(hold):
	}
	// Heal in reverse: a node resumes or restarts before the network
	// heals; a restarted node's readiness is awaited after every heal.
	var label []string
	for j := len(on) - 1; j >= 0; j-- {
		if err := on[j].heal(); err != nil {
			r.fail("step %d: heal %s (%s): %v", i, on[j].kind, on[j].target, err)
		}
	}
	if err := r.awaitRestarts(); err != nil {
		r.fail("step %d: restart: %v", i, err)
	}
	for _, a := range on {
		label = append(label, a.kind)
	}
	sort.Strings(label)
	r.w.SetArrivals(false)
	d, why, err := r.c.WaitConvergedWhy(ctx, r.cfg.ConvergeBound)
	if why != "" {
		r.logf("step %d: still differing 1 s after the heal: %s", i, why)
	}
	if err != nil {
		r.fail("step %d (%s): after heal: %v", i, strings.Join(label, "+"), err)
	} else {
		key := strings.Join(label, "+")
		r.mu.Lock()
		if r.converge[key] == nil {
			r.converge[key] = &Durations{}
		}
		r.converge[key].Add(d)
		r.convMax = max(r.convMax, d)
		r.mu.Unlock()
		r.logf("step %d: healed after %v; converged %v later", i, hold.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	r.w.SetArrivals(true)
	r.probe(ctx)
	select {
	case <-ctx.Done():
	case <-time.After(r.cfg.Quiet):
	}
}

// readNet adds the node's faultnet counters since the last read.
func (r *runner) readNet(n *Node) {
	if n.Down() {
		return
	}
	st, err := r.c.NetStats(n)
	if err != nil {
		return
	}
	r.readCounters(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.netPrev[n]
	if st.Packets < prev.Packets || st.Streams < prev.Streams { // restarted
		prev = NetStats{}
	}
	r.net.Packets += st.Packets - prev.Packets
	r.net.PacketsDropped += st.PacketsDropped - prev.PacketsDropped
	r.net.PacketsDelayed += st.PacketsDelayed - prev.PacketsDelayed
	r.net.PacketsCut += st.PacketsCut - prev.PacketsCut
	r.net.Streams += st.Streams - prev.Streams
	r.net.StreamsLost += st.StreamsLost - prev.StreamsLost
	r.net.StreamsCut += st.StreamsCut - prev.StreamsCut
	r.netPrev[n] = st
}

// countedSeries are the replication counters the report sums over every
// process of the run (they restart from 0 with a process).
var countedSeries = []string{
	`tether_replication_requests_total{kind="origin"}`, `tether_replication_requests_total{kind="third"}`,
	`tether_replication_requests_total{kind="full"}`, `tether_replication_requests_total{kind="watchdog"}`,
	`tether_replication_full_copies_total`, `tether_replication_groups_total{outcome="discarded"}`,
	`tether_gossip_refused_total{reason="request_rate"}`, `tether_gossip_refused_total{reason="work_queue_full"}`,
	`tether_gossip_refused_total{reason="outbox_full"}`, `tether_gossip_refused_total{reason="unsolicited"}`,
	`tether_replication_refused_total{reason="future_epoch"}`, `tether_replication_events_total{outcome="rejected"}`,
}

// readCounters adds the node's counters since the last read.
func (r *runner) readCounters(n *Node) {
	m, err := Metrics(n.Node)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.cntPrev[n]
	if prev == nil || m[countedSeries[0]] < prev[countedSeries[0]] || m[countedSeries[4]] < prev[countedSeries[4]] {
		prev = map[string]float64{} // restarted
	}
	cur := map[string]float64{}
	for _, s := range countedSeries {
		cur[s] = m[s]
		if d := m[s] - prev[s]; d > 0 {
			r.counts[s] += d
		}
	}
	r.cntPrev[n] = cur
}

// sample reads every running node's goroutines and memory every 2 s.
func (r *runner) sample(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		for _, n := range r.c.Nodes {
			if n.Down() {
				continue
			}
			res, err := ReadResources(n.Node)
			if err != nil {
				continue
			}
			r.mu.Lock()
			t := r.res[n.Name]
			t.peak.Goroutines = max(t.peak.Goroutines, res.Goroutines)
			t.peak.RSS = max(t.peak.RSS, res.RSS)
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// finalResources checks, with the traffic stopped, that every node's
// goroutines and memory are within the bounds (goroutines of finished
// requests may take a moment to end: poll for up to 15 s).
func (r *runner) finalResources() {
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range r.c.Nodes {
		for {
			res, err := ReadResources(n.Node)
			if err == nil {
				r.res[n.Name].final = res
				if res.Goroutines <= r.cfg.MaxGoroutines && res.RSS <= r.cfg.MaxRSS {
					break
				}
			}
			if time.Now().After(deadline) {
				r.fail("%s: resources over bound at the end: %+v (err %v), bounds %v goroutines, %.0f MiB",
					n.Name, res, err, r.cfg.MaxGoroutines, r.cfg.MaxRSS/(1<<20))
				break
			}
			time.Sleep(200 * time.Millisecond) // polling /metrics, bounded by the deadline
		}
		if !n.Alive() {
			r.fail("%s: process not running at the end\n%s", n.Name, n.LogTail(20))
		}
	}
}

// canary proves the checker can fail: it rebinds, through the admin API
// of one node, settled clients to another replica behind their backs (as
// a lost or corrupted binding would move them), waits until every node
// holds the change, and sends each one request: each must be reported as
// a violation. Its violations are kept out of the run's.
//
// A candidate first gets one request that must find it where it is: a
// client last seen long ago may have a fault of its replica (a crash, a
// node's failed health checks) between then and now, which the checker
// rightly excuses; the fresh request leaves only the canary's own seconds
// to judge. The judged request is retried on a transport error (it
// proves nothing either way).
func (r *runner) canary() string {
	members := r.c.Routes.Members()
	type move struct {
		cl *Client
		to string
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var moves []move
	for i, cl := range r.w.Clients() {
		cur, _, settled := cl.Current()
		if !settled || !r.c.Backends.Up(cur) {
			continue
		}
		if o, err := r.w.Request(ctx, cl, r.c.Nodes[i%len(r.c.Nodes)]); err != nil || o != Same {
			continue
		}
		for _, m := range members {
			if m != cur && r.c.Backends.Up(m) {
				moves = append(moves, move{cl, m})
				break
			}
		}
		if len(moves) == 10 {
			break
		}
	}
	if len(moves) == 0 {
		r.fail("canary: no settled client")
		return "no candidate"
	}
	n0 := r.c.Nodes[0]
	for _, m := range moves {
		body := strings.NewReader(fmt.Sprintf(`{"replica": %q}`, m.to))
		code, resp, err := n0.Do(http.MethodPut, "/api/v1/bindings/"+AppHost+"/"+m.cl.Addr.String(), body)
		if err != nil || code != http.StatusOK {
			r.fail("canary: rebind %s: %d %s %v", m.cl.Addr, code, resp, err)
			return "rebind failed"
		}
	}
	if _, err := r.c.WaitConverged(ctx, 30*time.Second); err != nil {
		r.fail("canary: %v", err)
		return "no convergence"
	}
	caught := 0
	var missed []string
	for i, m := range moves {
		var o Outcome
		var err error
		for try := 0; try < 5; try++ {
			if o, err = r.w.Request(ctx, m.cl, r.c.Nodes[i%len(r.c.Nodes)]); err == nil {
				break
			}
		}
		switch {
		case err != nil:
			missed = append(missed, fmt.Sprintf("%s: %v", m.cl.Addr, err))
		case o == Violation:
			caught++
		default:
			missed = append(missed, fmt.Sprintf("%s: %s", m.cl.Addr, o))
		}
	}
	if caught != len(moves) {
		r.fail("canary: %d clients moved behind their backs, the checker reported %d violations (not: %s)",
			len(moves), caught, strings.Join(missed, "; "))
	}
	return fmt.Sprintf("%d of %d clients moved behind their backs (admin rebind) reported as violations", caught, len(moves))
}

func (r *runner) report(took time.Duration) *Report {
	w := r.w
	viol, uns := w.Violations()
	rep := &Report{
		Config: r.cfg, Took: took, Steps: r.steps, Faults: r.faults, Net: r.net,
		ClockSteps: r.clockSteps.Load(), Refused: r.invalidRefused.Load(),
		Requests: w.Requests.Load(), OK: w.OK.Load(), Errors: w.ErrorCounts(), Clients: len(w.Clients()),
		Outcomes: map[string]int64{}, Violations: viol, Unsettled: uns,
		Settle: w.Settle.Summary(), Probe: r.probes.Summary(), ProbeMax: r.probes.Max(),
		Converge: map[string]string{}, ConvergeMax: r.convMax,
		RestartDisk: r.restartDisk.Summary(), RestartEp: r.restartEpoch.Summary(),
		Resources: map[string]string{}, Counters: r.counts,
	}
	for o := Same; o <= Violation; o++ {
		rep.Outcomes[o.String()] = w.Outcome(o)
	}
	for k, d := range r.converge {
		rep.Converge[k] = d.Summary()
	}
	for _, n := range r.c.Nodes {
		rep.Panics = append(rep.Panics, Panics(n.Node)...)
		t := r.res[n.Name]
		rep.Resources[n.Name] = fmt.Sprintf("peak %.0f goroutines, %.0f MiB; end %.0f goroutines, %.0f MiB",
			t.peak.Goroutines, t.peak.RSS/(1<<20), t.final.Goroutines, t.final.RSS/(1<<20))
	}
	return rep
}

// String renders the figures.
func (rep *Report) String() string {
	var b strings.Builder
	c := rep.Config
	race := "without"
	if c.Race {
		race = "with"
	}
	fmt.Fprintf(&b, "chaos run: seed %d, %d nodes (%d disk, %d epoch), binary %s the race detector, %v\n",
		c.Seed, c.Nodes, c.DiskNodes, c.Nodes-c.DiskNodes, race, rep.Took.Round(time.Second))
	kinds := make([]string, 0, len(rep.Faults))
	total := 0
	for k, n := range rep.Faults {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "faults injected: %d (%s); clock steps back %d; invalid routes files refused %d\n",
		total, strings.Join(kinds, ", "), rep.ClockSteps, rep.Refused)
	n := rep.Net
	fmt.Fprintf(&b, "network: %d packets (%d dropped, %d delayed, %d cut), %d streams (%d lost, %d cut)\n",
		n.Packets, n.PacketsDropped, n.PacketsDelayed, n.PacketsCut, n.Streams, n.StreamsLost, n.StreamsCut)
	fmt.Fprintf(&b, "requests: %d, %d ok, errors %v; clients %d\n", rep.Requests, rep.OK, rep.Errors, rep.Clients)
	fmt.Fprintf(&b, "outcomes: %v\n", rep.Outcomes)
	fmt.Fprintf(&b, "sticky violations: %d\n", len(rep.Violations))
	for _, v := range rep.Violations[:min(len(rep.Violations), 20)] {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	for _, v := range rep.Unsettled {
		fmt.Fprintf(&b, "  e.g. unsettled move: %s\n", v)
	}
	fmt.Fprintf(&b, "replication window (healthy fleet, bind to on every node): %s\n", rep.Probe)
	fmt.Fprintf(&b, "binding seen on every node after first use (verifier, 250 ms rounds): %s\n", rep.Settle)
	keys := make([]string, 0, len(rep.Converge))
	for k := range rep.Converge {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(&b, "convergence after heal (digest + vector equal on every node, ready):\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-32s %s\n", k, rep.Converge[k])
	}
	fmt.Fprintf(&b, "replication counters (all processes):\n")
	for _, k := range countedSeries {
		fmt.Fprintf(&b, "  %-58s %.0f\n", k, rep.Counters[k])
	}
	fmt.Fprintf(&b, "restart to ready: disk %s; epoch %s\n", rep.RestartDisk, rep.RestartEp)
	fmt.Fprintf(&b, "panics/races in logs: %d\n", len(rep.Panics))
	names := make([]string, 0, len(rep.Resources))
	for k := range rep.Resources {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  %s: %s\n", k, rep.Resources[k])
	}
	fmt.Fprintf(&b, "canary: %s\n", rep.Canary)
	if len(rep.Failures) > 0 {
		fmt.Fprintf(&b, "FAILED CHECKS:\n")
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	return b.String()
}
