package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// A nemesis injects one kind of fault and returns how to heal it. inject
// must not block for long; heal undoes the fault (restart, SIGCONT, clear
// the network faults, bring the replica back) and may take a while.
type nemesis struct {
	kind   string
	inject func(r *runner, rng *rand.Rand) (target string, heal func() error, err error)
}

// Nemesis kinds, in the order the short form runs them before shuffling.
var nemeses = []nemesis{
	{"kill-disk", func(r *runner, rng *rand.Rand) (string, func() error, error) { return r.kill(rng, true) }},
	{"kill-epoch", func(r *runner, rng *rand.Rand) (string, func() error, error) { return r.kill(rng, false) }},
	{"pause", (*runner).pause},
	{"loss", (*runner).loss},
	{"delay", (*runner).delay},
	{"partition-2way", (*runner).partition2},
	{"partition-1way", (*runner).partition1},
	{"clock-step-back", (*runner).clockStep},
	{"backend-crash", (*runner).backendCrash},
	{"routes-reload", (*runner).reload},
}

// Kinds lists the nemesis kinds.
func Kinds() []string {
	var out []string
	for _, n := range nemeses {
		out = append(out, n.kind)
	}
	return out
}

func nemesisOf(kind string) (nemesis, bool) {
	for _, n := range nemeses {
		if n.kind == kind {
			return n, true
		}
	}
	return nemesis{}, false
}

// up returns the nodes neither killed nor paused, in a random order.
func (r *runner) up(rng *rand.Rand) []*Node {
	var out []*Node
	for _, n := range r.c.Nodes {
		if !n.Down() {
			out = append(out, n)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// spare says whether one more node may go down: at most two at once, so
// that three keep serving (and copies have a source).
func (r *runner) spare() bool {
	down := 0
	for _, n := range r.c.Nodes {
		if n.Down() {
			down++
		}
	}
	return down < 2
}

var errNoTarget = fmt.Errorf("no target")

// kill: SIGKILL a node of the given recovery mode; heal restarts it and
// waits until it is ready (disk: snapshot + log replay; epoch: a copy
// from a peer).
func (r *runner) kill(rng *rand.Rand, disk bool) (string, func() error, error) {
	if !r.spare() {
		return "", nil, errNoTarget
	}
	for _, n := range r.up(rng) {
		if n.Disk != disk {
			continue
		}
		r.readNet(n) // its counters die with it
		r.mu.Lock()
		delete(r.netPrev, n)
		delete(r.cntPrev, n)
		r.mu.Unlock()
		r.c.Kill(n)
		return n.Name, func() error {
			// Started here; its readiness is awaited once the step's other
			// faults are healed too (awaitRestarts): a partition drawn
			// with the kill lasts its hold, not until the node is ready.
			start := time.Now()
			if err := r.c.Start(n); err != nil {
				return err
			}
			r.restarting = append(r.restarting, restart{n, disk, start})
			return nil
		}, nil
	}
	return "", nil, errNoTarget
}

// restart is a killed node started again, whose readiness is awaited.
type restart struct {
	n     *Node
	disk  bool
	start time.Time
}

// awaitRestarts waits until the nodes restarted by the step's heals say
// ready, and records how long each took from its start.
func (r *runner) awaitRestarts() error {
	defer func() { r.restarting = nil }()
	for _, rs := range r.restarting {
		if err := r.c.WaitReady(rs.n, 90*time.Second); err != nil {
			return err
		}
		if rs.disk {
			r.restartDisk.Add(time.Since(rs.start))
		} else {
			r.restartEpoch.Add(time.Since(rs.start))
		}
	}
	return nil
}

// pause: SIGSTOP a node (a GC pause, a frozen VM); heal sends SIGCONT.
func (r *runner) pause(rng *rand.Rand) (string, func() error, error) {
	if !r.spare() {
		return "", nil, errNoTarget
	}
	up := r.up(rng)
	if len(up) == 0 {
		return "", nil, errNoTarget
	}
	n := up[0]
	if err := r.c.Pause(n); err != nil {
		return "", nil, err
	}
	return n.Name, func() error { return r.c.Resume(n) }, nil
}

// everyNode applies a fault to every node (running or not: a node that
// restarts meanwhile reads it from its file) and heals it likewise.
func (r *runner) everyNode(set, clear func(*FaultState)) (func() error, error) {
	for _, n := range r.c.Nodes {
		if err := r.c.SetFault(n, set); err != nil {
			return nil, err
		}
	}
	return func() error {
		for _, n := range r.c.Nodes {
			r.readNet(n)
			if err := r.c.SetFault(n, clear); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// loss: every node loses 10-30 % of the UDP packets and TCP streams it sends.
func (r *runner) loss(rng *rand.Rand) (string, func() error, error) {
	p := 0.1 + 0.2*rng.Float64()
	heal, err := r.everyNode(func(f *FaultState) { f.Loss = p }, func(f *FaultState) { f.Loss = 0 })
	return fmt.Sprintf("all, %.0f%%", p*100), heal, err
}

// delay: every packet and stream dial waits 0..max ms (20-100): reordering.
func (r *runner) delay(rng *rand.Rand) (string, func() error, error) {
	maxMs := int64(20 + rng.IntN(81))
	heal, err := r.everyNode(func(f *FaultState) { f.DelayMinMs, f.DelayMaxMs = 0, maxMs },
		func(f *FaultState) { f.DelayMinMs, f.DelayMaxMs = 0, 0 })
	return fmt.Sprintf("all, 0-%d ms", maxMs), heal, err
}

// partition2: the nodes split in two sides (1|4 or 2|3) that cannot reach
// each other either way.
func (r *runner) partition2(rng *rand.Rand) (string, func() error, error) {
	names := r.c.Names()
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	k := 1 + rng.IntN(len(names)/2)
	a, b := names[:k], names[k:]
	side := map[string][]string{}
	for _, x := range a {
		side[x] = b
	}
	for _, x := range b {
		side[x] = a
	}
	heal, err := r.cut(side)
	return fmt.Sprintf("%v | %v", a, b), heal, err
}

// partition1: one node cannot send to the others (mute) or the others
// cannot send to it (deaf); replies on streams the other side opened still
// pass.
func (r *runner) partition1(rng *rand.Rand) (string, func() error, error) {
	names := r.c.Names()
	x := names[rng.IntN(len(names))]
	others := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == x })
	side := map[string][]string{}
	desc := x + " mute (cannot send to the others)"
	if rng.IntN(2) == 0 {
		side[x] = others
	} else {
		desc = x + " deaf (the others cannot send to it)"
		for _, o := range others {
			side[o] = []string{x}
		}
	}
	heal, err := r.cut(side)
	return desc, heal, err
}

// cut sets each node's cut list (nodes not named keep none) and heals by
// clearing them all.
func (r *runner) cut(side map[string][]string) (func() error, error) {
	for _, n := range r.c.Nodes {
		to := slices.Clone(side[n.Name])
		if err := r.c.SetFault(n, func(f *FaultState) { f.Cut = to }); err != nil {
			return nil, err
		}
	}
	return func() error {
		for _, n := range r.c.Nodes {
			r.readNet(n)
			if err := r.c.SetFault(n, func(f *FaultState) { f.Cut = nil }); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// clockStep: a node's clock steps back by at least 1.5 s, staying within
// ±2 s of the others' true time (a node already behind first steps
// forward). The clock stays where it is: nothing to heal.
func (r *runner) clockStep(rng *rand.Rand) (string, func() error, error) {
	up := r.up(rng)
	if len(up) == 0 {
		return "", nil, errNoTarget
	}
	n := up[0]
	from := n.Fault().SkewMs
	if from < 0 {
		from = 500 + rng.Int64N(1501)
		if err := r.c.SetFault(n, func(f *FaultState) { f.SkewMs = from }); err != nil {
			return "", nil, err
		}
	}
	to := -2000 + rng.Int64N(from+500) // from-1500 or lower, >= -2000
	to = min(to, from-1500)
	if err := r.c.SetFault(n, func(f *FaultState) { f.SkewMs = to }); err != nil {
		return "", nil, err
	}
	r.clockSteps.Add(1)
	return fmt.Sprintf("%s %+d ms -> %+d ms", n.Name, from, to), func() error { return nil }, nil
}

// backendCrash: a replica of the pool dies (connections dropped) and comes
// back on the same address; its clients may move once.
func (r *runner) backendCrash(rng *rand.Rand) (string, func() error, error) {
	members := r.c.Routes.Members()
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	for _, b := range members {
		if !r.c.Backends.Up(b) {
			continue
		}
		r.tl.Open(Crashed, b, time.Now())
		r.c.Backends.Crash(b)
		return b, func() error {
			err := r.c.Backends.Return(b)
			r.tl.Close(Crashed, b, time.Now())
			return err
		}, nil
	}
	return "", nil, errNoTarget
}

// reload: the routes file changes and every node gets SIGHUP: replica e
// leaves the pool (its clients may move) or joins it (nobody moves); every
// other time an invalid file comes first, which every node must refuse,
// keeping its routes.
func (r *runner) reload(rng *rand.Rand) (string, func() error, error) {
	var desc string
	if rng.IntN(2) == 0 {
		if err := r.invalidReload(); err != nil {
			return "", nil, err
		}
		desc = "invalid file refused, then "
	}
	members := r.c.Routes.Members()
	if slices.Contains(members, "e") {
		r.tl.Open(Removed, "e", time.Now())
		members = slices.DeleteFunc(members, func(s string) bool { return s == "e" })
		desc += "e removed"
	} else {
		members = append(members, "e")
		desc += "e added"
	}
	if err := r.c.Routes.Set(members...); err != nil {
		return "", nil, err
	}
	r.c.Reload()
	if slices.Contains(members, "e") {
		r.tl.Close(Removed, "e", time.Now())
	}
	return desc, func() error { return nil }, nil
}

// invalidReload writes a broken routes file, sends SIGHUP and waits until
// every running node has logged its refusal (at most 10 s).
func (r *runner) invalidReload() error {
	before := map[*Node]int{}
	for _, n := range r.c.Nodes {
		before[n] = n.Refusals()
	}
	if err := r.c.Routes.SetInvalid(); err != nil {
		return err
	}
	r.c.Reload()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range r.c.Nodes {
		for !n.Down() && n.Refusals() == before[n] {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not refuse the invalid routes file", n.Name)
			}
			time.Sleep(20 * time.Millisecond) // polling the log, bounded by the deadline
		}
	}
	r.invalidRefused.Add(1)
	return nil
}
