// Command scale measures where a tether fleet stops (issue 14): N
// in-process nodes (gossip + stickydb on loopback, through
// internal/faultnet's counting transport) at a fixed fleet-wide rate of new
// bindings, and one node's table at up to 10M bindings. It writes JSON that
// bench/scale/plot draws; bench/SCALE.md holds the figures.
//
//	go run ./bench/scale -fleet 3,10,25,50 -table 1000000,10000000 -out bench/scale.json
//
// Everything runs in this one process: the nodes share its two cores with
// the load generator and the convergence probes, so CPU per node is the
// process's CPU time, less the load generator's (measured on a lone DB),
// divided by N.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tetherproxy/tether/gossip"
)

// Result is the whole run, as written to -out.
type Result struct {
	Started    time.Time     `json:"started"`
	Machine    string        `json:"machine"`
	GoVersion  string        `json:"go"`
	PerBindCPU float64       `json:"load_generator_cpu_us_per_bind"`
	Fleet      []FleetResult `json:"fleet,omitempty"`
	Table      []TableResult `json:"table,omitempty"`
	Errors     []string      `json:"errors,omitempty"`
}

func main() {
	fleetN := flag.String("fleet", "3,10,25,50", "fleet sizes, comma separated; empty skips the fleet runs")
	rate := flag.Int("rate", 5000, "new bindings per second, fleet-wide")
	window := flag.Duration("window", 12*time.Second, "measuring window per fleet size")
	idle := flag.Duration("idle", 3*time.Second, "idle window per fleet size (memberlist's own traffic)")
	warmup := flag.Duration("warmup", 2*time.Second, "load before the measuring window")
	settle := flag.Duration("settle", 10*time.Second, "how long every node may take to hold every binding once the load stops (settled)")
	probeEvery := flag.Duration("probe-every", 50*time.Millisecond, "mean pause between convergence probes (each starts at a random moment, up to twice this after the previous one)")
	joiner := flag.Int("joiner", 1_000_000, "bindings in the fleet when a joiner starts (0 skips)")
	joinerN := flag.Int("joiner-n", 3, "fleet size at which the joiner run is made")
	joiners := flag.Int("joiners", 1, "joiners started at once in the joiner run")
	crash := flag.Bool("crash", false, "after each fleet size's run (N > 3), crash one node under load and measure what the survivors pay")
	table := flag.String("table", "", "table sizes for the one-node runs, comma separated (e.g. 100000,1000000,10000000)")
	opDur := flag.Duration("op-dur", 4*time.Second, "proxy-like load per table size")
	dir := flag.String("dir", "", "directory for snapshots (default a temporary one)")
	pushInterval := flag.Duration("push-interval", 0, "gossip PushInterval for every node (0: the default, 20ms)")
	pushBurst := flag.Int("push-burst", 0, "gossip PushBurst for every node (0: the default, 20)")
	pushBudget := flag.Int("push-budget", 0, "gossip PushBudget for every node, groups/s to all peers (0: the default, 1000)")
	maxUDP := flag.Int("max-udp", 0, "gossip MaxUDPBytes for every node (0: the default, 1300; loopback carries up to 65000)")
	out := flag.String("out", "bench/scale.json", "JSON output")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the fleet runs' measuring windows to this file (pprof)")
	profileForm := flag.Bool("profile-formation", false, "with -cpuprofile: profile the first fleet's formation (start to all ready) instead")
	memProfile := flag.String("memprofile", "", "write an allocation profile (pprof allocs, from the start to the end of the first fleet run's measuring window) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "-cpuprofile:", err)
			os.Exit(2)
		}
		defer f.Close()
		profileOut = f
	}
	allocsOut = *memProfile

	logf := func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, "%s "+f+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	res := Result{Started: time.Now().UTC(), GoVersion: runtime.Version(),
		Machine: fmt.Sprintf("%s/%s, %d CPUs (GOMAXPROCS %d), shared with other jobs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))}
	save := func() {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			logf("write %s: %v", *out, err)
			os.Exit(1)
		}
	}

	sizes, err := ints(*fleetN)
	if err != nil {
		fmt.Fprintln(os.Stderr, "-fleet:", err)
		os.Exit(2)
	}
	tsizes, err := ints(*table)
	if err != nil {
		fmt.Fprintln(os.Stderr, "-table:", err)
		os.Exit(2)
	}
	if len(sizes) > 0 {
		per := bindCPU()
		res.PerBindCPU = float64(per.Nanoseconds()) / 1000
		logf("load generator: %.2fµs CPU per new binding on a lone DB", res.PerBindCPU)
		for _, n := range sizes {
			o := fleetOpts{rate: *rate, window: *window, idle: *idle, warmup: *warmup, settle: *settle, probeEvery: *probeEvery,
				perBindCPU: per, logf: logf, crash: *crash, profileForm: *profileForm}
			dc := gossip.DefaultConfig()
			pi, pb, pg := dc.PushInterval, dc.PushBurst, dc.PushBudget
			if *pushBudget > 0 {
				pg = *pushBudget
			}
			if *pushInterval > 0 {
				pi = *pushInterval
			}
			if *pushBurst > 0 {
				pb = *pushBurst
			}
			mu := dc.MaxUDPBytes
			if *maxUDP > 0 {
				mu = *maxUDP
			}
			o.tuning = fmt.Sprintf("push %v x%d, budget %d/s", pi, pb, pg)
			if mu != dc.MaxUDPBytes {
				o.tuning += fmt.Sprintf(", UDP up to %d B", mu)
			}
			o.retune = func(c *gossip.Config, _ int) {
				c.PushInterval, c.PushBurst, c.PushBudget, c.MaxUDPBytes = pi, pb, pg, mu
			}
			if n == *joinerN {
				o.joiner, o.joiners = *joiner, *joiners
			}
			r, err := runFleet(n, o)
			if err != nil {
				logf("n=%d: %v", n, err)
				res.Errors = append(res.Errors, fmt.Sprintf("fleet n=%d: %v", n, err))
			}
			res.Fleet = append(res.Fleet, r)
			save()
			runtime.GC()
		}
	}
	for _, s := range tsizes {
		d := *dir
		if d == "" {
			d, err = os.MkdirTemp("", "tether-scale-")
			if err != nil {
				logf("%v", err)
				os.Exit(1)
			}
		} else {
			d = fmt.Sprintf("%s/%d", d, s)
			if err := os.MkdirAll(d, 0o755); err != nil {
				logf("%v", err)
				os.Exit(1)
			}
		}
		r, err := runTable(s, d, *opDur, logf)
		os.RemoveAll(d)
		if err != nil {
			logf("table %d: %v", s, err)
			res.Errors = append(res.Errors, fmt.Sprintf("table %d: %v", s, err))
		}
		res.Table = append(res.Table, r)
		save()
		runtime.GC()
	}
	save()
	if len(res.Errors) > 0 {
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// profileOut, when set (-cpuprofile), receives a CPU profile covering
// every fleet run's measuring window (one profile for the whole
// invocation: profile one size at a time to tell them apart).
var profileOut io.Writer

// profileWindow starts the CPU profile for a measuring window and returns
// its stop; pprof allows one profile per process at a time, so the windows
// of successive sizes go to the first size's file only.
func profileWindow() func() {
	allocs := allocsOut
	allocsOut = ""
	stop := func() {
		if allocs != "" {
			writeAllocs(allocs)
		}
	}
	if profileOut == nil {
		return stop
	}
	if err := pprof.StartCPUProfile(profileOut); err != nil {
		return stop
	}
	profileOut = nil // one profile per invocation
	return func() { pprof.StopCPUProfile(); stop() }
}

// allocsOut, when set (-memprofile), is the file for an allocation
// profile written at the end of the first measuring window.
var allocsOut string

func writeAllocs(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "-memprofile:", err)
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
