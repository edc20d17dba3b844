package stickydb

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// Reproductions of the long-run findings (issue 11), one test each. Every
// one failed on the code before its fix.

// persistAll writes db's own events to its "disk" (the returned events) and
// marks them persisted, as the recovery shell does.
func persistAll(t *testing.T, db *DB, after uint64) []Event {
	t.Helper()
	g := db.Unpersisted(after, 1<<20)
	if len(g.Events) > 0 {
		db.MarkPersisted(g.Epoch, g.To)
	}
	return g.Events
}

// servedBy returns the replica a request for k is sent to by db at now, ""
// for none.
func servedBy(db *DB, k Key, now time.Time) string {
	h, ok := db.Touch(k, now)
	if !ok {
		return ""
	}
	return h.Replica
}

// Finding 2, first shape: a WAL replay after a restart must not bring back
// an own binding that a later generation superseded, once that generation's
// own announced expiry has passed: the winner carries the later expiry of
// the two, so the fleet still serves the winner.
func TestFindingReplayDoesNotResurrectSuperseded(t *testing.T) {
	durable := func(c *Config) { c.Durable = true }
	k := mustKey(t, "192.0.2.10", "shop")
	p := newTestDB(t, "p", t0, durable)
	q := newTestDB(t, "q", t0)
	p.SetPeers([]string{"q"}, t0)
	q.SetPeers([]string{"p"}, t0)
	if _, _, err := p.BindIfAbsent(k, "a", t0); err != nil {
		t.Fatal(err)
	}
	var snap []Record
	meta, _ := p.Snapshot(t0, func(r []Record) error { snap = append(snap, r...); return nil })
	wal := persistAll(t, p, 0)
	if _, err := q.Receive(p.OwnEvents(0, 100), t0); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Minute)
	if _, changed, err := q.Rebind(k, "", "b", t1); err != nil || !changed {
		t.Fatalf("rebind: %v %v", changed, err)
	}
	// p, not yet told, refreshes its binding a little later.
	t2 := t0.Add(10 * time.Minute)
	if _, err := p.Refresh(k, t2); err != nil {
		t.Fatal(err)
	}
	wal = append(wal, persistAll(t, p, uint64(len(wal)))...)
	mustReceive(t, p, q.OwnEvents(0, 100), t2)
	mustReceive(t, q, p.OwnEvents(1, 100), t2)

	// Long after the rebind's own expiry (and its horizon), within the
	// refresh's: p restarts from its snapshot and log.
	t3 := t0.Add(39 * time.Minute)
	re := newTestDB(t, "p", t3, durable)
	re.SetPeers([]string{"q"}, t3)
	if _, err := re.MergeRecords(snap, t3); err != nil {
		t.Fatal(err)
	}
	if err := re.RestoreOwn(meta); err != nil {
		t.Fatal(err)
	}
	if err := re.ReplayOwn(meta.Epoch, wal, t3); err != nil {
		t.Fatal(err)
	}
	// It catches up with q (anti-entropy: q's vector shows more); q's
	// shell has been ticking all along.
	q.Tick(t3)
	catchUp(t, re, q, t3)
	if got, want := servedBy(re, k, t3), servedBy(q, k, t3); got != want {
		t.Fatalf("restarted p serves %q, q serves %q", got, want)
	}
}

// Finding 2, second shape: in one generation, a node that rebuilds from
// the change logs after the winner's event expired must still keep the
// winner: two nodes must not send one client to different replicas.
func TestFindingRebuildFromLogsKeepsWinner(t *testing.T) {
	k := mustKey(t, "192.0.2.11", "shop")
	kh := k.Hash()
	win, lose := "r1", "r2"
	if replicaBeats(kh, Binding{Replica: lose}, Binding{Replica: win}) {
		win, lose = lose, win
	}
	n1 := newTestDB(t, "n1", t0)
	n2 := newTestDB(t, "n2", t0)
	n3 := newTestDB(t, "n3", t0)
	n1.BindIfAbsent(k, win, t0)
	// Concurrent (one generation: the same second), n2 had not heard of
	// n1's bind; n2's clients keep it alive, so it outlives the winner.
	n2.BindIfAbsent(k, lose, t0.Add(500*time.Millisecond))
	ta := t0.Add(8 * time.Minute)
	if _, err := n2.Refresh(k, ta); err != nil {
		t.Fatal(err)
	}
	mustReceive(t, n3, n1.OwnEvents(0, 100), ta)
	mustReceive(t, n3, n2.OwnEvents(0, 100), ta)
	if got := servedBy(n3, k, ta); got != win {
		t.Fatalf("n3 serves %q, want the winner %q", got, win)
	}
	// A fresh n4 rebuilds from n3's change log table after the winner's
	// own expiry and horizon, while the loser's (the later one) holds.
	tb := t0.Add(39 * time.Minute)
	n4 := newTestDB(t, "n4", tb)
	n4.SetPeers([]string{"n3"}, tb)
	groups, full := n3.Answer(Request{Origins: []string{"n1", "n2"}, Known: Vector{}}, tb)
	if full {
		t.Fatal("n3 answered with a full copy")
	}
	for _, g := range groups {
		mustReceive(t, n4, g, tb)
	}
	if got, want := servedBy(n4, k, tb), servedBy(n3, k, tb); got != want {
		t.Fatalf("rebuilt n4 serves %q, n3 serves %q", got, want)
	}
}

func mustReceive(t *testing.T, db *DB, g Group, now time.Time) Result {
	t.Helper()
	res, err := db.Receive(g, now)
	if err != nil {
		t.Fatalf("%s receives %s %d..%d: %v", db.Node(), g.Origin, g.From, g.To, err)
	}
	return res
}

// Finding 1: an origin whose epoch has numbered more than MaxSeqJump events
// (disk mode keeps its epoch across restarts) must reach a node that has
// just joined: its groups, its vector entry and a full copy's vector.
func TestFindingLongLivedOriginReachesNewNode(t *testing.T) {
	epoch := t0.Add(-5 * time.Hour).UnixMilli()
	const seq = 20_000_000 // over 1<<24
	exp := t0.Add(20 * time.Minute).UnixMilli()
	t.Run("group", func(t *testing.T) {
		db := newTestDB(t, "new", t0)
		db.SetPeers([]string{"o"}, t0)
		res := mustReceive(t, db, groupOf("o", epoch, seq, seq+1, exp), t0)
		if !res.Buffered {
			t.Fatalf("group not buffered: %+v", res)
		}
		reqs := db.Tick(t0.Add(100 * time.Millisecond))
		if len(reqs) != 1 || reqs[0].To != "o" {
			t.Fatalf("no gap request to the origin: %+v", reqs)
		}
	})
	t.Run("vector", func(t *testing.T) {
		db := newTestDB(t, "new", t0)
		db.SetPeers([]string{"o"}, t0)
		db.ObserveVector("o", Vector{"o": {{epoch, seq}}}, t0)
		if reqs := db.Tick(t0.Add(db.Config().VectorGapWait + 100*time.Millisecond)); len(reqs) != 1 || reqs[0].To != "o" {
			t.Fatalf("no gap request to the origin: %+v", reqs)
		}
		if db.Stats().SeqJumps != 0 {
			t.Fatalf("honest origin counted as offending: %d", db.Stats().SeqJumps)
		}
	})
	t.Run("full copy", func(t *testing.T) {
		db := newTestDB(t, "new", t0)
		db.MergeVector(Vector{"o": {{epoch, seq}}}, "p", t0)
		if got := db.Vector().Get("o", epoch); got != seq {
			t.Fatalf("full copy's vector entry skipped: %d", got)
		}
	})
	t.Run("implausible is still refused", func(t *testing.T) {
		db := newTestDB(t, "new", t0)
		young := t0.Add(-time.Second).UnixMilli()
		if _, err := db.Receive(groupOf("o", young, 3*seq, 3*seq+1, exp), t0); err == nil {
			t.Fatal("20M events in 1 s accepted")
		}
	})
}

// catchUp makes to ask from for everything it lacks, as the gossip shell
// does for a gap: range answers, or a full copy.
func catchUp(t *testing.T, to, from *DB, now time.Time) {
	t.Helper()
	groups, full := from.Answer(Request{To: from.Node(), Known: to.Vector()}, now)
	if !full {
		for _, g := range groups {
			mustReceive(t, to, g, now)
		}
		return
	}
	var recs []Record
	meta, err := from.Snapshot(now, func(r []Record) error { recs = append(recs, r...); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := to.MergeRecords(recs, now); err != nil {
		t.Fatal(err)
	}
	to.MergeVector(meta.Vector, from.Node(), now)
}

// Finding 5: in disk mode the own log's cap must not drop events the
// write-ahead log has not had yet: a restart from disk would lack bindings
// its vector says it has.
func TestFindingOwnLogCapKeepsUnpersisted(t *testing.T) {
	durable := func(c *Config) { c.Durable, c.OwnLogCap = true, 4 }
	db := newTestDB(t, "n", t0, durable)
	for i := 0; i < 10; i++ {
		db.BindIfAbsent(mustKey(t, netipFrom(i).String(), "h"), "a", t0)
	}
	db.Tick(t0.Add(time.Millisecond))
	wal := db.Unpersisted(0, 100)
	if wal.From != 1 || len(wal.Events) != 10 {
		t.Fatalf("the log hands the WAL events %d..%d, want 1..10", wal.From, wal.To)
	}
	db.MarkPersisted(wal.Epoch, wal.To)
	// Restart from the log alone: the same bindings.
	re := newTestDB(t, "n", t0.Add(time.Second), durable)
	if err := re.RestoreOwn(SnapshotMeta{Node: "n", Epoch: wal.Epoch}); err != nil {
		t.Fatal(err)
	}
	if err := re.ReplayOwn(wal.Epoch, wal.Events, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c1, s1 := db.Digest(t0.Add(time.Second), 0)
	c2, s2 := re.Digest(t0.Add(time.Second), 0)
	if c1 != c2 || s1 != s2 {
		t.Fatalf("restarted from its log: %d bindings, before: %d", c2, c1)
	}
	// Once persisted, the cap applies again.
	db.Tick(t0.Add(2 * time.Millisecond))
	if n := db.Logs()[0].Events; n > 4 {
		t.Fatalf("own log holds %d persisted events over a cap of 4", n)
	}
}

// Finding 6: a node whose clock was stepped back at a restart (a new
// epoch below its previous one) must not be silenced: peers would take
// every event of the lower epoch for one of an epoch that is over. The
// gossip shell's start-up check needs Table to say which peers' vectors
// have arrived.
func TestFindingClockSteppedBackAtRestart(t *testing.T) {
	e1 := t0.Add(10 * time.Second)
	old := newTestDB(t, "n", e1)
	p := newTestDB(t, "p", e1)
	p.SetPeers([]string{"n"}, e1)
	old.BindIfAbsent(mustKey(t, "10.1.0.1", "h"), "a", e1)
	mustReceive(t, p, old.OwnEvents(0, 100), e1)

	re := newTestDB(t, "n", t0) // the clock went back 10 s
	re.SetPeers([]string{"p"}, t0)
	if tb := re.Table(); len(tb) != 1 || tb[0].Vector != nil {
		t.Fatalf("a peer whose vector has not arrived shows vector %#v", tb[0].Vector)
	}
	re.ObserveVector("p", p.Vector(), t0)
	if e, _ := re.Position(); e <= e1.UnixMilli() {
		t.Fatalf("still in epoch %d, not after the peers' %d", e, e1.UnixMilli())
	}
	// Long after: its new events reach the peer.
	later := t0.Add(45 * time.Minute)
	k := mustKey(t, "10.1.0.2", "h")
	re.BindIfAbsent(k, "a", later)
	res := mustReceive(t, p, re.OwnEvents(0, 100), later)
	if res.Stale || res.Applied != 1 {
		t.Fatalf("peer took the restarted node's events as stale: %+v", res)
	}
}

// Finding 3: a node that left for good must leave every vector once its
// bindings can no longer be live, even while a peer still lists it, and
// an origin this node never had as a peer must leave too.
func TestFindingDepartedNodeLeavesVectors(t *testing.T) {
	exp := t0.Add(30 * time.Minute).UnixMilli()
	me := newTestDB(t, "me", t0)
	a := newTestDB(t, "a", t0)
	me.SetPeers([]string{"a", "x"}, t0)
	a.SetPeers([]string{"me", "x"}, t0)
	gx := groupOf("x", t0.UnixMilli(), 1, 3, exp)
	mustReceive(t, me, gx, t0)
	mustReceive(t, a, gx, t0)
	stale := a.Vector() // a's vector while it still listed x
	// x leaves for good.
	me.SetPeers([]string{"a"}, t0.Add(time.Second))
	a.SetPeers([]string{"me"}, t0.Add(time.Second))
	// A newcomer that learns of x only through a.
	nc := newTestDB(t, "nc", t0.Add(time.Minute))
	nc.SetPeers([]string{"a"}, t0.Add(time.Minute))
	nc.ObserveVector("a", stale, t0.Add(time.Minute))
	groups, _ := a.Answer(Request{Origins: []string{"x"}, Known: Vector{}}, t0.Add(time.Minute))
	for _, g := range groups {
		mustReceive(t, nc, g, t0.Add(time.Minute))
	}
	for now := t0; now.Before(t0.Add(45 * time.Minute)); now = now.Add(30 * time.Second) {
		me.Tick(now)
		a.Tick(now)
		nc.Tick(now)
		me.ObserveVector("a", stale, now) // a peer still listing x
		nc.ObserveVector("a", stale, now)
	}
	for _, db := range []*DB{me, nc} {
		if v := db.Vector(); v["x"] != nil {
			t.Errorf("%s still lists the departed x: %v", db.Node(), v)
		}
	}
}

// Finding 4: a gap whose events nobody holds any more (the only holder and
// the origin both restarted) must not ask for full copies until the epoch
// is over (TTL + TTL/4 + skew): a few requests, then it is given up.
func TestFindingNoFullCopyStormForLostEvents(t *testing.T) {
	e1 := t0.UnixMilli()
	me := newTestDB(t, "me", t0)
	me.SetPeers([]string{"o", "h"}, t0)
	me.ObserveVector("h", Vector{"o": {{e1, 5}}, "h": {{e1, 0}}}, t0)
	// Both restart without a disk: new epochs, and nothing of o's epoch e1.
	t1 := t0.Add(time.Second)
	o := newTestDB(t, "o", t1)
	h := newTestDB(t, "h", t1)
	peers := map[string]*DB{"o": o, "h": h}
	me.ObserveVector("h", h.Vector(), t1)
	me.ObserveVector("o", o.Vector(), t1)
	sent := 0
	for now := t1; now.Before(t0.Add(40 * time.Minute)); now = now.Add(50 * time.Millisecond) {
		for _, r := range me.Tick(now) {
			if r.Reason != ReasonWatchdog {
				sent++
			}
			catchUp(t, me, peers[r.To], now)
		}
		if sent > 50 {
			t.Fatalf("%d requests by %v for events nobody holds", sent, now.Sub(t1))
		}
	}
	if sent > 5 {
		t.Fatalf("%d requests for events nobody holds", sent)
	}
}

// Finding 7 (name table): filling the 65,535-entry name table copied it on
// every insert, O(n²) bytes (about 50 GB): seven groups of new names held
// the replication lock for 38 s. Now it grows by doubling: filling it
// allocates a few MB, and the names read back right while it grows under a
// concurrent reader (run with -race).
func TestNameTableFillsInLinearTime(t *testing.T) {
	n := newNames()
	stop := make(chan struct{})
	done := make(chan string, 1)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			l := *n.list.Load()
			if last := len(l) - 1; last > 0 && l[last].name != fmt.Sprintf("r%d", last) {
				done <- fmt.Sprintf("id %d reads %q", last, l[last].name)
				return
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 1; i <= 0xffff; i++ {
		if _, err := n.id(fmt.Sprintf("r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	close(stop)
	if msg, ok := <-done; ok {
		t.Fatal(msg)
	}
	if _, err := n.id("one-too-many"); err != ErrTooManyNames {
		t.Fatalf("65,536th name: %v", err)
	}
	if b := after.TotalAlloc - before.TotalAlloc; b > 64<<20 {
		t.Fatalf("filling the table allocated %d MB", b>>20)
	}
}

// A provisional bind (generation 0, a node not caught up) made while the
// fleet's binding of the key is alive, to the same replica with a later
// expiry. A node that merges both holds the fleet's identity with the
// later expiry; a node that holds the provisional one and receives the
// fleet's event only after that event's own horizon drops it as expired.
// They agree once the merging node's announced join (join_test.go)
// reaches the other: before that fix they kept different bindings for
// good with equal vectors. Found by the fleet simulation once nodes not
// yet ready served with provisional binds (1500 x 300, seed 1).
func TestProvisionalBindUnderExpiredWinnerConverges(t *testing.T) {
	now := t0
	n0 := newTestDB(t, "n0", now)
	n1 := newTestDB(t, "n1", now)
	n2 := newTestDB(t, "n2", now)
	k := mustKey(t, "10.9.9.9", "app")
	if _, _, err := n1.BindIfAbsent(k, "r3", now); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Receive(n1.OwnEvents(0, 10), now); err != nil {
		t.Fatal(err)
	}
	mid := now.Add(20 * time.Minute)  // n1's binding still alive
	late := now.Add(50 * time.Minute) // past its TTL + hold + skew
	n0.SetProvisional(true)
	if _, _, err := n0.BindIfAbsent(k, "r3", mid); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Receive(n0.OwnEvents(0, 10), mid); err != nil {
		t.Fatal(err)
	}
	if _, err := n0.Receive(n1.OwnEvents(0, 10), late); err != nil {
		t.Fatal(err)
	}
	// The rest of the exchange: each node's own events to the others.
	for _, p := range [][2]*DB{{n2, n0}, {n0, n2}, {n2, n1}, {n1, n2}, {n0, n1}} {
		if _, err := p[1].Receive(p[0].OwnEvents(0, 100), late); err != nil {
			t.Fatal(err)
		}
	}
	c0, d0 := n0.Digest(late, time.Second)
	c2, d2 := n2.Digest(late, time.Second)
	if c0 != c2 || d0 != d2 {
		a, _ := n0.Lookup(k)
		b, _ := n2.Lookup(k)
		t.Fatalf("diverged: n0 %+v, n2 %+v", a, b)
	}
}
