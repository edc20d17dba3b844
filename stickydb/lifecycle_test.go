package stickydb

import (
	"fmt"
	"testing"
	"time"
)

// lifeBind makes n bindings on db (keys 10.0.<base>.i).
func lifeBind(t *testing.T, db *DB, base, n int, now time.Time) {
	t.Helper()
	for i := range n {
		k := mustKey(t, fmt.Sprintf("10.0.%d.%d", base, i+1), "app")
		if _, _, err := db.BindIfAbsent(k, "r1", now); err != nil {
			t.Fatal(err)
		}
	}
}

// lifeDeliver hands every own event of from to to, with from's vector.
func lifeDeliver(t *testing.T, from, to *DB, now time.Time) {
	t.Helper()
	if _, err := to.Receive(from.OwnEvents(0, 1<<20), now); err != nil {
		t.Fatal(err)
	}
}

// initialAsks returns the peers the start-up copy requests of rd go to.
func initialAsks(rd Ready) []string {
	var out []string
	for _, r := range rd.Requests {
		if r.Reason == ReasonInitial && r.Full {
			out = append(out, r.To)
		}
	}
	return out
}

func wantLife(t *testing.T, step string, rd Ready, ready bool, why string) {
	t.Helper()
	if rd.Ready != ready || rd.Why != why {
		t.Fatalf("%s: ready %v why %q, want ready %v why %q", step, rd.Ready, rd.Why, ready, why)
	}
}

// A whole fleet restarted: the first peer heard from knows only its own
// bindings, another's vector arrives later, and a third peer shows up while
// the node catches up. Readiness waits for every live peer's vector and
// for the node to cover each of them.
func TestLifecycleLateVectorDelaysReadiness(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	b := newTestDB(t, "b", now)
	c := newTestDB(t, "c", now)
	lifeBind(t, b, 1, 3, now)
	lifeBind(t, c, 2, 4, now)
	lc := NewLifecycle(a, LifeConfig{})
	a.SetPeers([]string{"b", "c"}, now)

	wantLife(t, "not joined", lc.Tick(now), false, WhyJoining)
	lc.Joined(now, false)
	wantLife(t, "no vector", lc.Tick(now), false, WhyVectors)

	now = now.Add(time.Second)
	a.ObserveVector("b", b.Vector(), now)
	wantLife(t, "b's vector only", lc.Tick(now), false, WhyVectors)
	lifeDeliver(t, b, a, now)
	wantLife(t, "b covered, c's vector unknown", lc.Tick(now), false, WhyVectors)

	now = now.Add(time.Second)
	a.ObserveVector("c", c.Vector(), now)
	wantLife(t, "c's vector late", lc.Tick(now), false, WhyCatchingUp)

	// A third peer comes up while the node catches up.
	d := newTestDB(t, "d", now)
	lifeBind(t, d, 3, 2, now)
	a.SetPeers([]string{"b", "c", "d"}, now)
	lifeDeliver(t, c, a, now)
	wantLife(t, "d's vector unknown", lc.Tick(now), false, WhyVectors)
	a.ObserveVector("d", d.Vector(), now)
	wantLife(t, "d's vector late", lc.Tick(now), false, WhyCatchingUp)
	lifeDeliver(t, d, a, now)

	rd := lc.Tick(now)
	wantLife(t, "all covered", rd, true, WhyCaughtUp)
	if !rd.Became || rd.CatchUp != 2*time.Second {
		t.Fatalf("became %v catch-up %v, want true 2s", rd.Became, rd.CatchUp)
	}
	if got := a.Len(); got != 9 {
		t.Fatalf("ready with %d of 9 bindings", got)
	}
	rd = lc.Tick(now.Add(time.Second))
	if !rd.Ready || rd.Became || rd.Why != WhyCaughtUp {
		t.Fatalf("after: %+v", rd)
	}
}

// An origin restarted without a disk: a peer still holds the bindings of
// its older epoch, and the node is not caught up without them (only the
// origin's newest epoch would let it serve those clients as new ones).
func TestLifecycleOlderEpochOfAnotherOrigin(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	b := newTestDB(t, "b", now)
	c1 := newTestDB(t, "c", now)
	lifeBind(t, c1, 1, 3, now)
	lifeDeliver(t, c1, b, now)
	now = now.Add(time.Second)
	c2 := newTestDB(t, "c", now) // c restarted without a disk
	lifeBind(t, c2, 2, 2, now)
	lifeDeliver(t, c2, b, now)
	lifeDeliver(t, b, a, now)

	lc := NewLifecycle(a, LifeConfig{})
	a.SetPeers([]string{"b", "c"}, now)
	lc.Joined(now, false)
	a.ObserveVector("b", b.Vector(), now)
	lifeDeliver(t, c2, a, now)
	wantLife(t, "c's older epoch missing", lc.Tick(now), false, WhyCatchingUp)
	lifeDeliver(t, c1, a, now)
	wantLife(t, "all epochs", lc.Tick(now), true, WhyCaughtUp)
	if got := a.Len(); got != 5 {
		t.Fatalf("ready with %d of 5 bindings", got)
	}

	// Once that epoch is over (TTL + RefreshThreshold + MaxSkew after the
	// later one began) it counts as covered: nothing of it is live.
	d := newTestDB(t, "d", now)
	ld := NewLifecycle(d, LifeConfig{CatchUpTimeout: 24 * time.Hour})
	d.SetPeers([]string{"b", "c"}, now)
	ld.Joined(now, false)
	d.ObserveVector("b", b.Vector(), now)
	lifeDeliver(t, c2, d, now)
	wantLife(t, "d behind", ld.Tick(now), false, WhyCatchingUp)
	later := now.Add(time.Hour)
	d.ObserveVector("b", b.Vector(), later)
	wantLife(t, "c's older epoch over", ld.Tick(later), true, WhyCaughtUp)
}

// The start-up copy: one live peer asked at a time; one that sends no
// chunk within CopyWait is passed over for the next; one whose chunks
// arrive gets CopyTimeout; once every live peer was asked the node falls
// back on the gap handling.
func TestLifecycleStartupCopyMovesOn(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	lc := NewLifecycle(a, LifeConfig{InitialCopy: true, CopyWait: 2 * time.Second, CopyTimeout: 30 * time.Second})
	a.SetPeers([]string{"b", "c", "d"}, now)
	lc.Joined(now, false)

	rd := lc.Tick(now)
	first := initialAsks(rd)
	if len(first) != 1 {
		t.Fatalf("first tick asks %v", first)
	}
	wantLife(t, "copy asked", rd, false, WhyCopy)
	if got := initialAsks(lc.Tick(now.Add(1999 * time.Millisecond))); len(got) != 0 {
		t.Fatalf("asked again within CopyWait: %v", got)
	}
	second := initialAsks(lc.Tick(now.Add(2 * time.Second)))
	if len(second) != 1 || second[0] == first[0] {
		t.Fatalf("after CopyWait asked %v (first %v)", second, first)
	}
	// The second peer's copy is arriving: it gets CopyTimeout.
	lc.CopyChunk()
	if got := initialAsks(lc.Tick(now.Add(10 * time.Second))); len(got) != 0 {
		t.Fatalf("asked the next peer while a copy arrives: %v", got)
	}
	third := initialAsks(lc.Tick(now.Add(32 * time.Second)))
	if len(third) != 1 || third[0] == first[0] || third[0] == second[0] {
		t.Fatalf("after CopyTimeout asked %v (before %v %v)", third, first, second)
	}
	rd = lc.Tick(now.Add(35 * time.Second))
	if got := initialAsks(rd); len(got) != 0 || !rd.CopyGivenUp {
		t.Fatalf("every peer asked: asks %v given up %v", got, rd.CopyGivenUp)
	}
	if rd.Why == WhyCopy {
		t.Fatal("still waiting for a copy after giving up")
	}

	// A merged copy ends the start-up copy.
	a2 := newTestDB(t, "a2", now)
	lc2 := NewLifecycle(a2, LifeConfig{InitialCopy: true})
	a2.SetPeers([]string{"b"}, now)
	lc2.Joined(now, false)
	if got := initialAsks(lc2.Tick(now)); len(got) != 1 {
		t.Fatalf("asks %v", got)
	}
	lc2.CopyMerged()
	rd = lc2.Tick(now.Add(time.Hour))
	if got := initialAsks(rd); len(got) != 0 || rd.Why == WhyCopy || rd.CopyGivenUp {
		t.Fatalf("after a merged copy: %+v", rd)
	}
}

// A peer knows an epoch of this node after its current one (the clock
// was stepped back at a restart): with a disk the lifecycle says to start
// a later epoch, until it is started; without one the DB moved by itself.
func TestLifecycleEpochAfterPeersOne(t *testing.T) {
	now := t0
	peersEpoch := now.Add(30 * time.Second).UnixMilli()
	for _, durable := range []bool{true, false} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			a := newTestDB(t, "a", now, func(c *Config) { c.Durable = durable })
			lc := NewLifecycle(a, LifeConfig{})
			a.SetPeers([]string{"b"}, now)
			a.ObserveVector("b", Vector{"a": {{Epoch: peersEpoch, Seq: 7}}, "b": {{Epoch: now.UnixMilli(), Seq: 0}}}, now)
			if rd := lc.Tick(now); rd.NewEpoch != 0 {
				t.Fatalf("new epoch before joining: %+v", rd)
			}
			lc.Joined(now, false)
			rd := lc.Tick(now)
			if !durable {
				if e, _ := a.Position(); rd.NewEpoch != 0 || e <= peersEpoch {
					t.Fatalf("memory mode: NewEpoch %d, epoch %d, peers' %d", rd.NewEpoch, e, peersEpoch)
				}
				return
			}
			if rd.NewEpoch <= peersEpoch || rd.PeersEpoch != peersEpoch {
				t.Fatalf("NewEpoch %d PeersEpoch %d, peers know %d", rd.NewEpoch, rd.PeersEpoch, peersEpoch)
			}
			if again := lc.Tick(now.Add(time.Millisecond)); again.NewEpoch <= peersEpoch {
				t.Fatalf("not asked again before the epoch started: %+v", again)
			}
			if err := a.NewEpoch(rd.NewEpoch); err != nil {
				t.Fatal(err)
			}
			if after := lc.Tick(now.Add(2 * time.Millisecond)); after.NewEpoch != 0 {
				t.Fatalf("asked again after the epoch started: %+v", after)
			}
		})
	}
}

// A node that cannot catch up (a peer's events never arrive) is ready
// CatchUpTimeout after joining, with Why "timeout".
func TestLifecycleCatchUpTimeout(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	b := newTestDB(t, "b", now)
	lifeBind(t, b, 1, 5, now)
	lc := NewLifecycle(a, LifeConfig{CatchUpTimeout: time.Minute})
	a.SetPeers([]string{"b"}, now)
	lc.Joined(now, false)
	a.ObserveVector("b", b.Vector(), now)
	wantLife(t, "behind", lc.Tick(now.Add(59*time.Second)), false, WhyCatchingUp)
	rd := lc.Tick(now.Add(time.Minute))
	wantLife(t, "timeout", rd, true, WhyTimeout)
	if !rd.Became || rd.CatchUp != time.Minute {
		t.Fatalf("%+v", rd)
	}
}

// A node with no seed but itself and no peer is a fleet of one: ready at
// once. With seeds it waits for a peer (or the timeout).
func TestLifecycleAlone(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	lc := NewLifecycle(a, LifeConfig{InitialCopy: true})
	wantLife(t, "not joined", lc.Tick(now), false, WhyJoining)
	lc.Joined(now, true)
	rd := lc.Tick(now)
	wantLife(t, "alone", rd, true, WhyAlone)
	if !rd.Became || len(initialAsks(rd)) != 0 {
		t.Fatalf("%+v", rd)
	}

	b := newTestDB(t, "b", now)
	lb := NewLifecycle(b, LifeConfig{})
	lb.Joined(now, false)
	wantLife(t, "seeds, no peer yet", lb.Tick(now.Add(time.Second)), false, WhyVectors)
}

// With Provisional, binds are provisional (generation 0) until ready.
func TestLifecycleProvisionalUntilReady(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	lc := NewLifecycle(a, LifeConfig{Provisional: true})
	b, _, err := a.BindIfAbsent(mustKey(t, "10.1.0.1", "app"), "r1", now)
	if err != nil || b.Generation != 0 {
		t.Fatalf("before ready: %+v %v", b, err)
	}
	lc.Joined(now, true)
	wantLife(t, "alone", lc.Tick(now), true, WhyAlone)
	b, _, err = a.BindIfAbsent(mustKey(t, "10.1.0.2", "app"), "r1", now)
	if err != nil || b.Generation != BirthGeneration(now) {
		t.Fatalf("after ready: %+v %v", b, err)
	}
}

// A binding the vector covers but that waits for the clock (it lies ahead
// of this node's bounds: a fleet whose clocks stepped back) keeps the node
// from saying caught up until the clock admits it.
func TestLifecycleDeferredHoldsReadiness(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	cfg := a.Config()
	ahead := 10 * time.Minute
	exp := now.Add(cfg.TTL + cfg.MaxSkew + cfg.MaxFutureEpoch + ahead)
	k := mustKey(t, "10.2.0.1", "app")
	ep := now.UnixMilli()
	g := Group{Origin: "b", Epoch: ep, From: 1, To: 1, Sender: "b", Vector: Vector{"b": {{Epoch: ep, Seq: 1}}},
		Events: []Event{{Seq: 1, Kind: KindBind, Key: k, Binding: Binding{Replica: "r1", Origin: "b", Expiry: exp.UnixMilli(), Generation: BirthGeneration(now)}}}}
	lc := NewLifecycle(a, LifeConfig{CatchUpTimeout: 24 * time.Hour})
	a.SetPeers([]string{"b"}, now)
	lc.Joined(now, false)
	if _, err := a.Receive(g, now); err != nil {
		t.Fatal(err)
	}
	if a.Deferred() != 1 {
		t.Fatalf("deferred %d, want 1", a.Deferred())
	}
	wantLife(t, "deferred", lc.Tick(now), false, WhyDeferred)
	later := now.Add(ahead + time.Second)
	wantLife(t, "clock caught up", lc.Tick(later), true, WhyCaughtUp)
	if _, ok := a.Lookup(k); !ok {
		t.Fatal("ready without the binding")
	}
}

// A whole fleet restarted at once: the node has caught up with the one
// peer up so far, but a configured seed is not a member yet (it holds
// bindings no one else has). Readiness waits for it, SeedWait at most; a
// seed that comes up in time is caught up with first.
func TestLifecycleWaitsForSeeds(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	b := newTestDB(t, "b", now)
	c := newTestDB(t, "c", now)
	lifeBind(t, b, 1, 3, now)
	lifeBind(t, c, 2, 3, now)
	lc := NewLifecycle(a, LifeConfig{SeedWait: 5 * time.Second})
	a.SetPeers([]string{"b"}, now)
	lc.Joined(now, false)
	lc.SeedsMissing(1) // c: configured, not up yet
	a.ObserveVector("b", b.Vector(), now)
	lifeDeliver(t, b, a, now)
	wantLife(t, "b covered, seed c missing", lc.Tick(now), false, WhySeeds)

	now = now.Add(2 * time.Second)
	a.SetPeers([]string{"b", "c"}, now)
	lc.SeedsMissing(0)
	a.ObserveVector("c", c.Vector(), now)
	wantLife(t, "c up, not covered", lc.Tick(now), false, WhyCatchingUp)
	lifeDeliver(t, c, a, now)
	wantLife(t, "c covered", lc.Tick(now), true, WhyCaughtUp)

	// A seed that never comes up holds readiness back SeedWait at most.
	d := newTestDB(t, "d", t0)
	ld := NewLifecycle(d, LifeConfig{SeedWait: 5 * time.Second})
	d.SetPeers([]string{"b"}, t0)
	ld.Joined(t0, false)
	ld.SeedsMissing(1)
	d.ObserveVector("b", b.Vector(), t0)
	lifeDeliver(t, b, d, t0)
	wantLife(t, "seed down", ld.Tick(t0.Add(4*time.Second)), false, WhySeeds)
	wantLife(t, "seed down past SeedWait", ld.Tick(t0.Add(5*time.Second)), true, WhyCaughtUp)
}

// A node recovered from its disk after a long outage: once caught up, the
// lifecycle asks the shell to reconcile the disk (on every Tick until told
// it is done) and says ready only after that; its binds stay provisional
// until then, so none of them can beat a binding the disk still holds.
func TestLifecycleReconcilesBeforeReady(t *testing.T) {
	now := t0
	a := newTestDB(t, "a", now)
	b := newTestDB(t, "b", now)
	lifeBind(t, b, 1, 3, now)
	lc := NewLifecycle(a, LifeConfig{Reconcile: true, Provisional: true})
	a.SetPeers([]string{"b"}, now)
	lc.Joined(now, false)
	a.ObserveVector("b", b.Vector(), now)
	lifeDeliver(t, b, a, now)
	for i := range 3 {
		rd := lc.Tick(now)
		if !rd.Reconcile || rd.Ready || rd.Why != WhyReconcile {
			t.Fatalf("tick %d after catching up: %+v, want Reconcile, not ready", i, rd)
		}
		k := mustKey(t, fmt.Sprintf("10.9.0.%d", i+1), "app")
		if got, _, _ := a.BindIfAbsent(k, "r1", now); got.Generation != 0 {
			t.Fatalf("a bind while reconciling has generation %d, want 0 (provisional)", got.Generation)
		}
	}
	lc.Reconciled()
	rd := lc.Tick(now)
	if rd.Reconcile || !rd.Ready || !rd.Became || rd.Why != WhyCaughtUp {
		t.Fatalf("after Reconciled: %+v", rd)
	}
	k := mustKey(t, "10.9.1.1", "app")
	if got, _, _ := a.BindIfAbsent(k, "r1", now); got.Generation == 0 {
		t.Fatal("a bind after ready is still provisional")
	}
	// Without a disk to reconcile, caught up is ready at once.
	c := newTestDB(t, "c", now)
	lc2 := NewLifecycle(c, LifeConfig{})
	c.SetPeers([]string{"b"}, now)
	lc2.Joined(now, false)
	c.ObserveVector("b", b.Vector(), now)
	lifeDeliver(t, b, c, now)
	if rd := lc2.Tick(now); rd.Reconcile || !rd.Ready {
		t.Fatalf("no disk: %+v", rd)
	}
}

// The start-up copy goes first to a peer holding about what the fleet
// holds, whatever the time spreads it to: not to another joiner.
func TestLifecycleStartupCopyPrefersAFullPeer(t *testing.T) {
	for i := range 20 {
		now := t0.Add(time.Duration(i) * 7 * time.Millisecond)
		full := newTestDB(t, "m", now)
		lifeBind(t, full, 1, 50, now)
		joiner := newTestDB(t, "b", now)
		a := newTestDB(t, "a", now)
		lc := NewLifecycle(a, LifeConfig{InitialCopy: true, CopyWait: 2 * time.Second})
		a.SetPeers([]string{"b", "m", "z"}, now)
		// m's vector shows 50 events; b (joining too) and z show none yet.
		a.ObserveVector("m", full.Vector(), now)
		a.ObserveVector("b", joiner.Vector(), now)
		lc.Joined(now, false)
		if got := initialAsks(lc.Tick(now)); len(got) != 1 || got[0] != "m" {
			t.Fatalf("now %v: start-up copy asked of %v, want m", now, got)
		}
		if got := initialAsks(lc.Tick(now.Add(2 * time.Second))); len(got) != 1 || got[0] == "m" {
			t.Fatalf("now %v: after m, asked %v", now, got)
		}
	}
}

// A node that left for good (the fleet test's node3), and a node joining
// right after: the first peer it hears from still lists the departed
// origin, and the target takes that origin's pair. Before the joiner has
// those events (the answers are late on a CPU-starved fleet), every peer
// forgets the origin (departed.go: not live, no move for TTL + hold +
// skew), and so does the joiner, with a floor at what it knew: 0. Nobody
// can serve the events any more and nothing of them is live; the joiner
// must count them as covered, not wait for CatchUpTimeout (seen: a joiner
// "catching up" for 60 s, with TETHER_TTL=3s).
func TestLifecycleDepartedOriginCovered(t *testing.T) {
	short := func(c *Config) { c.TTL = 3 * time.Second } // span: 3s + 750ms + 2s
	now := t0
	x := newTestDB(t, "x", now, short)
	b := newTestDB(t, "b", now, short)
	lifeBind(t, x, 1, 3, now)
	lifeDeliver(t, x, b, now)
	b.SetPeers([]string{"a"}, now) // x left for good

	now = now.Add(time.Second)
	a := newTestDB(t, "a", now, short)
	lc := NewLifecycle(a, LifeConfig{CatchUpTimeout: 24 * time.Hour})
	a.SetPeers([]string{"b"}, now)
	lc.Joined(now, false)
	a.ObserveVector("b", b.Vector(), now)
	wantLife(t, "x's events missing", lc.Tick(now), false, WhyCatchingUp)
	if bh, ok := lc.Behind(); !ok || bh.Origin != "x" || bh.Target != 3 || bh.Have != 0 || bh.Claim != 3 || bh.Claimant != "b" {
		t.Fatalf("Behind = %+v, %v; want x's 3 events, claimed by b", bh, ok)
	} else if got, want := bh.String(), fmt.Sprintf("x epoch %d: 0 of 3 events; live peers claim 3 (b); gap: wait", t0.UnixMilli()); got != want {
		t.Fatalf("Behind.String() = %q, want %q", got, want)
	}

	// The requests a's Tick makes go unanswered; b forgets x at 5.75 s,
	// a (which first saw x at 1 s) at 6.75 s.
	var rd Ready
	for now.Before(t0.Add(time.Minute)) && !rd.Ready {
		now = now.Add(250 * time.Millisecond)
		b.Tick(now)
		a.ObserveVector("b", b.Vector(), now)
		rd = lc.Tick(now)
	}
	if !rd.Ready || rd.Why != WhyCaughtUp {
		bh, _ := lc.Behind()
		t.Fatalf("%v after x left: ready %v why %q, behind %+v; want caught up once x is forgotten", now.Sub(t0), rd.Ready, rd.Why, bh)
	}
	if took := now.Sub(t0); took > 7*time.Second {
		t.Fatalf("caught up %v after x left, want by 7s (once a forgot x)", took)
	}
	if _, ok := lc.Behind(); ok {
		t.Fatal("Behind still says catching up once ready")
	}
}
