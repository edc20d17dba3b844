package chaos

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// shortPlan: every nemesis once, in an order drawn from the seed, then two
// combinations (a partition while a replica crashes; loss while an
// epoch-mode node is down). Steps heal in reverse: the loss ends before
// the node restarts (restarting into a lossy network costs ~30 s to
// ready, too long for make test; the long form draws both orders).
func shortPlan(seed uint64) [][]string {
	kinds := Kinds()
	rng := rand.New(rand.NewPCG(seed, 1))
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	var plan [][]string
	for _, k := range kinds {
		plan = append(plan, []string{k})
	}
	return append(plan, []string{"partition-2way", "backend-crash"}, []string{"kill-epoch", "loss"})
}

// TestChaos (issue 8): a 5-node fleet of real processes (2 with a data
// dir, 3 in epoch mode, clocks skewed by up to ±2 s) under client traffic
// that hops between nodes, while nemeses kill, pause, partition, delay,
// drop, step clocks back, crash replicas and reload routes. After every
// heal every node must hold the same live database and vector; at the end:
// no sticky violation, no panic, goroutines and memory within bounds, and
// the canary shows that a lost binding would have been caught.
//
// The short form (make test) runs every nemesis once; the long form
// (make chaos) draws nemeses, sometimes two at once, for -duration.
func TestChaos(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	cfg := Config{
		Bin: bin, Race: *flagRace, Seed: seed,
		Nodes: 5, DiskNodes: 2,
		Clients: 200, Arrivals: 20, Workers: 12, Combo: 0.3,
		FaultMin: 2 * time.Second, FaultMax: 4 * time.Second, Quiet: time.Second,
		ConvergeBound: 60 * time.Second,
		MaxGoroutines: 300, MaxRSS: 256 << 20,
		LogDir: *flagLogs, NoReadiness: *flagNoReady,
	}
	if *flagRace {
		cfg.MaxRSS = 768 << 20
	}
	if *flagPlan != "" {
		cfg.Plan = nil
		for _, step := range strings.Split(*flagPlan, ",") {
			cfg.Plan = append(cfg.Plan, strings.Split(step, "+"))
		}
		cfg.Duration = time.Hour
	} else if *flagDuration > 0 {
		cfg.Duration = *flagDuration
		cfg.FaultMin, cfg.FaultMax, cfg.Quiet = 2*time.Second, 12*time.Second, 2*time.Second
	} else {
		cfg.Duration = 10 * time.Minute // the plan ends it long before
		cfg.Plan = shortPlan(seed)
	}
	if *flagHold > 0 {
		cfg.FaultMin, cfg.FaultMax = *flagHold, *flagHold
	}
	t.Logf("seed %d (rerun with -args -seed %d)", seed, seed)
	rep := Run(t, cfg)
	out := rep.String()
	t.Log("\n" + out)
	if *flagReport != "" {
		if err := os.WriteFile(*flagReport, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
	if len(rep.Violations) > 0 {
		t.Errorf("%d sticky violations", len(rep.Violations))
	}
	if len(rep.Panics) > 0 {
		t.Errorf("%d panics or races in the logs:\n%s", len(rep.Panics), strings.Join(rep.Panics, "\n\n"))
	}
	for _, f := range rep.Failures {
		t.Errorf("%s", f)
	}
	if rep.OK == 0 || rep.Outcomes[Same.String()] == 0 {
		t.Errorf("the workload did nothing: %d ok requests", rep.OK)
	}
}
