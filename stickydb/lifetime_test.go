package stickydb

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestFleetLifetime drives the simulated fleet of sim_test.go through
// months of simulated time, phase by phase: traffic under loss,
// duplication and reordering, restarts in both recovery modes, nodes
// leaving for good and new names joining, idle spells crossing expiry,
// clock steps forward and back (within and beyond MaxSkew), origins whose
// epochs have numbered past 2^24 (and near 2^32) events, and a peer holding
// the key that sends valid but hostile groups. After every phase the fleet
// is settled and checked: same Digest and same vector on every node, no
// settled client moved (checkMoves runs after every step), table and logs
// within their bounds.
//
// Sequence numbers past 2^24 are reached honestly without numbering 16M
// events one by one: a disk-mode node starts from a snapshot whose meta
// says its epoch (begun 30 days earlier) has numbered that many events,
// which is exactly what RestoreOwn sees after a long-lived node restarts.
//
// LIFETIME_PHASES sets the phases per run (default 8; `make soak` 80).
// rapid prints the seed; replay with -rapid.seed.
func TestFleetLifetime(t *testing.T) {
	phases := 8
	if v, err := strconv.Atoi(os.Getenv("LIFETIME_PHASES")); err == nil && v > 0 {
		phases = v
	}
	// rapid prints its seed only on failure: pick it here and print it, so
	// that every run (even a passing one) can be replayed.
	if f := flag.Lookup("rapid.seed"); f != nil && f.Value.String() == "0" {
		seed := rand.Uint64()
		if err := f.Value.Set(strconv.FormatUint(seed, 10)); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Value.Set("0") }()
		t.Logf("seed %d (replay with -rapid.seed=%d), %d phases per fleet", seed, seed, phases)
	} else if f != nil {
		t.Logf("seed %s, %d phases per fleet", f.Value.String(), phases)
	}
	readyBy := map[string]int{}
	defer func() { t.Logf("nodes ready by lifecycle: %v", readyBy) }()
	rapid.Check(t, func(t *rapid.T) {
		s := newLifetimeSim(t)
		defer s.tally(readyBy)
		for p := 0; p < phases; p++ {
			s.traffic(rapid.IntRange(20, 120).Draw(t, "steps"))
			ev := rapid.SampledFrom([]string{"restart", "leave-join", "idle", "step-back", "step-forward", "rogue", "high-seq"}).Draw(t, "event")
			s.lifeEvent(ev)
			s.settle()
			s.checkBounds(ev)
		}
		if s.now.Sub(t0) < 24*time.Hour {
			// The idle phases make months; a run that drew none still
			// ends a day later, past every TTL.
			s.now = s.now.Add(24 * time.Hour)
			for _, nd := range s.nodes {
				nd.db.Sweep(s.now, 0)
			}
			s.settle()
		}
	})
}

type lifetimeSim struct {
	*simNet
	nextName   int
	rogueSeq   uint64
	rogueEp    int64
	leftAt     map[string]time.Time // when each departed name left
	restoredAt time.Time            // last restart from disk
}

func newLifetimeSim(t *rapid.T) *lifetimeSim {
	n := rapid.IntRange(3, 5).Draw(t, "nodes")
	s := newSimNet(t, [3]byte{198, 51, 100})
	ls := &lifetimeSim{simNet: s, leftAt: map[string]time.Time{}}
	s.gone = map[string]bool{"rogue": true}
	for i := 0; i < n; i++ {
		s.nodes = append(s.nodes, &simNode{name: ls.newName(), disk: rapid.Bool().Draw(t, fmt.Sprintf("disk%d", i))})
		s.seen = append(s.seen, map[Key]Binding{})
	}
	for i, nd := range s.nodes {
		if nd.disk && rapid.Bool().Draw(t, fmt.Sprintf("longLived%d", i)) {
			ls.giveHighSeq(i)
		}
	}
	// Nodes not ready serve nobody here (the load balancer follows
	// /readyz): the fleet starts, becomes ready, then takes traffic.
	s.strict = true
	for i := range s.nodes {
		s.start(i, false)
	}
	s.settle()
	return ls
}

func (ls *lifetimeSim) newName() string {
	ls.nextName++
	return fmt.Sprintf("n%d", ls.nextName)
}

// giveHighSeq writes node i's "disk" as a node whose epoch began 30 days
// ago and has numbered past 2^24 events (sometimes close to 2^32).
func (ls *lifetimeSim) giveHighSeq(i int) {
	nd := ls.nodes[i]
	base := uint64(1)<<24 + 1
	if rapid.Bool().Draw(ls.t, "near2^32") {
		base = 1<<32 - 5000
	}
	seq := base + uint64(rapid.IntRange(0, 1000).Draw(ls.t, "seqOffset"))
	ep := ls.now.Add(-30 * 24 * time.Hour).UnixMilli()
	nd.snapRecs = nil
	nd.snapMeta = &SnapshotMeta{Node: nd.name, Epoch: ep, Seq: seq, Vector: Vector{nd.name: {{Epoch: ep, Seq: seq}}}, Taken: ls.now.UnixMilli()}
	nd.logEpoch, nd.logEvents, nd.persisted = ep, nil, seq
}

// traffic runs n random steps of the fleet simulation's kinds.
func (ls *lifetimeSim) traffic(n int) {
	s, t := ls.simNet, ls.t
	for step := 0; step < n; step++ {
		i := rapid.IntRange(0, len(s.nodes)-1).Draw(t, "node")
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0, 1, 2:
			k := rapid.SampledFrom(s.keys).Draw(t, "key")
			healthy := rapid.SliceOfNDistinct(rapid.SampledFrom(s.pool), 1, 3, rapid.ID[string]).Draw(t, "healthy")
			s.local(i, k, healthy)
		case 3:
			s.push(i, rapid.Bool().Draw(t, "heartbeat"), rapid.Bool().Draw(t, "bare"))
		case 4:
			ls.tick(i)
		case 5, 6:
			if len(s.msgs) > 0 {
				j := rapid.IntRange(0, len(s.msgs)-1).Draw(t, "msg")
				m := s.msgs[j]
				s.msgs = slices.Delete(s.msgs, j, j+1)
				s.deliver(m)
			}
		case 7:
			if len(s.msgs) > 0 {
				j := rapid.IntRange(0, len(s.msgs)-1).Draw(t, "msg")
				if rapid.Bool().Draw(t, "dup") {
					s.send(s.msgs[j])
				} else {
					s.msgs = slices.Delete(s.msgs, j, j+1)
				}
			}
		case 8:
			s.now = s.now.Add(time.Duration(rapid.IntRange(1, 3000).Draw(t, "ms")) * time.Millisecond)
			s.nodes[i].db.Sweep(s.now, 2)
		case 9:
			s.snapshot(i)
		}
		s.checkMoves()
	}
}

func (ls *lifetimeSim) tick(i int) { ls.simNet.tick(i) }

func (ls *lifetimeSim) lifeEvent(ev string) {
	s, t := ls.simNet, ls.t
	i := rapid.IntRange(0, len(s.nodes)-1).Draw(t, "victim")
	switch ev {
	case "restart":
		s.settle() // a restart in memory mode loses what was not yet sent; settle first
		s.nodes[i].disk = rapid.Bool().Draw(t, "diskMode") && s.nodes[i].disk
		if s.nodes[i].disk {
			ls.restoredAt = s.now
		}
		s.start(i, true)
		s.seen[i] = map[Key]Binding{}
	case "leave-join":
		// Node i leaves for good; a new name joins in its slot, empty.
		s.settle()
		s.gone[s.nodes[i].name] = true
		ls.leftAt[s.nodes[i].name] = s.now
		nd := &simNode{name: ls.newName(), disk: rapid.Bool().Draw(t, "joinDisk")}
		s.nodes[i] = nd
		s.seen[i] = map[Key]Binding{}
		s.msgs = slices.DeleteFunc(s.msgs, func(m simMsg) bool { return m.from == i || m.to == i })
		for j := range s.nodes {
			if j != i {
				s.nodes[j].db.SetPeers(s.peers(j), s.now)
			}
		}
		s.start(i, true)
	case "idle":
		s.settle()
		s.now = s.now.Add(time.Duration(rapid.IntRange(1, 20).Draw(t, "days")) * 24 * time.Hour)
		for _, nd := range s.nodes {
			nd.db.Sweep(s.now, 0)
		}
	case "step-back":
		// Every clock steps back, within MaxSkew or beyond it (up to two
		// minutes more, past MaxFutureEpoch): what was made just before
		// then lies ahead of every clock, and waits for it (deferred.go).
		beyond := rapid.Bool().Draw(t, "beyondSkew")
		d := time.Duration(rapid.IntRange(1, int(s.cfg.MaxSkew/time.Millisecond)).Draw(t, "backMs")) * time.Millisecond
		if beyond {
			d = s.cfg.MaxSkew + time.Duration(rapid.IntRange(1, 120).Draw(t, "extraS"))*time.Second
		}
		s.now = s.now.Add(-d)
	case "step-forward":
		d := time.Duration(rapid.IntRange(1, 600).Draw(t, "fwdS")) * time.Second
		s.now = s.now.Add(d)
	case "rogue":
		ls.rogue()
	case "high-seq":
		// Node i leaves; a new name joins whose disk holds an epoch begun
		// 30 days ago that numbered past 2^24 events (a long-lived origin
		// the others have never heard of). Giving an old epoch to a node
		// whose newer epoch peers already know would model a disk that
		// lost data, outside what the core promises.
		s.settle()
		s.gone[s.nodes[i].name] = true
		ls.leftAt[s.nodes[i].name] = s.now
		s.nodes[i] = &simNode{name: ls.newName(), disk: true}
		s.seen[i] = map[Key]Binding{}
		s.msgs = slices.DeleteFunc(s.msgs, func(m simMsg) bool { return m.from == i || m.to == i })
		for j := range s.nodes {
			if j != i {
				s.nodes[j].db.SetPeers(s.peers(j), s.now)
			}
		}
		ls.giveHighSeq(i)
		s.start(i, true)
	}
}

// rogue: a peer holding the key sends the same valid but hostile groups to
// every node: a huge sequence jump, far-future expiries, the maximum
// generation on a real client, refreshes charged to honest origins, and a
// flood of fresh names. Errors are the point; nothing may diverge.
func (ls *lifetimeSim) rogue() {
	s, t := ls.simNet, ls.t
	nowMs := s.now.UnixMilli()
	if ls.rogueEp == 0 {
		ls.rogueEp = nowMs
	}
	far := nowMs + 365*24*3600*1000
	k := rapid.SampledFrom(s.keys).Draw(t, "rogueKey")
	var groups []Group
	mk := func(from uint64, evs []Event) Group {
		for i := range evs {
			evs[i].Seq = from + uint64(i)
		}
		return Group{Origin: "rogue", Epoch: ls.rogueEp, From: from, To: from + uint64(len(evs)) - 1,
			Events: evs, Sender: "rogue", Vector: Vector{"rogue": {{Epoch: ls.rogueEp, Seq: from + uint64(len(evs)) - 1}}}}
	}
	switch rapid.IntRange(0, 3).Draw(t, "rogueKind") {
	case 0: // a jump no origin can have numbered
		groups = append(groups, mk(ls.rogueSeq+1<<40, []Event{{Kind: KindBind, Key: k,
			Binding: Binding{Replica: "r1", Origin: "rogue", Expiry: far, Generation: 1}}}))
	case 1: // max generation, far-future expiry, in sequence
		groups = append(groups, mk(ls.rogueSeq+1, []Event{{Kind: KindRebind, Key: k,
			Binding: Binding{Replica: "evil", Origin: "rogue", Expiry: far, Generation: math.MaxUint32}}}))
		ls.rogueSeq++
	case 2: // refreshes in an honest origin's name
		var evs []Event
		for _, kk := range s.keys {
			evs = append(evs, Event{Kind: KindRefresh, Key: kk,
				Binding: Binding{Replica: "r2", Origin: s.nodes[0].name, Expiry: far, Generation: 1}})
		}
		groups = append(groups, mk(ls.rogueSeq+1, evs))
		ls.rogueSeq += uint64(len(evs))
	case 3: // a flood of new replica names
		var evs []Event
		for n := 0; n < 200; n++ {
			kk, _ := NewKey(netip.AddrFrom4([4]byte{203, 0, 113, byte(n)}), "flood")
			evs = append(evs, Event{Kind: KindBind, Key: kk,
				Binding: Binding{Replica: fmt.Sprintf("x%d-%d", ls.rogueSeq, n), Origin: "rogue", Expiry: nowMs + 1000, Generation: 1}})
		}
		groups = append(groups, mk(ls.rogueSeq+1, evs))
		ls.rogueSeq += uint64(len(evs))
	}
	for _, nd := range s.nodes {
		for _, g := range groups {
			g.Events = slices.Clone(g.Events)
			g.Vector = g.Vector.Clone()    // and its vector (sanitize filters it in place)
			_, _ = nd.db.Receive(g, s.now) // refusals are expected
		}
	}
	// A client the rogue took to "evil" at the top generation is what a
	// keyed peer can do (documented); record it so checkMoves accepts it.
	for _, g := range groups {
		for _, e := range g.Events {
			if e.Kind != KindRefresh {
				s.record(e.Key, e.Binding)
			}
		}
	}
}

// checkBounds: memory stays bounded whatever happened.
func (ls *lifetimeSim) checkBounds(phase string) {
	s := ls.simNet
	for i, nd := range s.nodes {
		if n := nd.db.Len(); n > len(s.keys)+200 {
			s.t.Fatalf("after %s: node %d holds %d live bindings", phase, i, n)
		}
		for _, li := range nd.db.Logs() {
			limit := s.cfg.ChangeLogTableCap
			if li.Origin == nd.name {
				limit = s.cfg.OwnLogCap + 1
			}
			if li.Events > limit+s.cfg.MaxGroupEvents {
				s.t.Fatalf("after %s: node %d log of %s holds %d events (cap %d)", phase, i, li.Origin, li.Events, limit)
			}
		}
		// A departed origin leaves the vectors TTL + RefreshThreshold +
		// MaxSkew after it last moved (a node restored from a snapshot
		// restarts that clock): allow the ones that left within twice that.
		window := 2 * (s.cfg.TTL + s.cfg.TTL/4 + s.cfg.MaxSkew)
		recent := 0
		for _, at := range ls.leftAt {
			// A restart from an old snapshot brings back the departed
			// origins its vector held, for one more window.
			if s.now.Sub(at) < window || s.now.Sub(ls.restoredAt) < window {
				recent++
			}
		}
		if o := len(nd.db.Vector()); o > len(s.nodes)+recent+1 {
			var live []string
			for _, n := range s.nodes {
				live = append(live, n.name)
			}
			s.t.Fatalf("after %s: node %d (%s) vector names %d origins (live %v, left %v, now %v, last restore %v): %v",
				phase, i, nd.name, o, live, ls.leftAt, s.now, ls.restoredAt, nd.db.Vector())
		}
	}
	if len(s.msgs) > 2000 {
		s.t.Fatalf("after %s: %d messages in flight", phase, len(s.msgs))
	}
}
