package stickydb

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func at(hhmm string) int64 {
	tm, err := time.Parse("15:04", hhmm)
	if err != nil {
		panic(err)
	}
	return time.Date(2026, 11, 25, tm.Hour(), tm.Minute(), 0, 0, time.UTC).UnixMilli()
}

func atTime(hhmm string) time.Time { return time.UnixMilli(at(hhmm)) }

// The reference text's Fig. 12 example (para. 97, 102): router 115-1's vector
// at 12:00 with TTL 30 min.
func paperVector() Vector {
	return Vector{
		"r1": {{at("10:00"), 17}},
		"r2": {{at("11:31"), 6}, {at("11:47"), 3}},
		"r3": {{at("09:00"), 36}},
	}
}

func TestVectorPrunePaperExample(t *testing.T) {
	ttl := 30 * time.Minute
	v := paperVector()
	v.Prune(atTime("12:00").Add(-ttl).UnixMilli())
	if !v.Equal(paperVector()) {
		t.Fatalf("pruned too early at 12:00: %v", v)
	}
	v.Prune(atTime("12:16").Add(-ttl).UnixMilli())
	if len(v["r2"]) != 2 {
		t.Fatalf("pruned at 12:16: %v", v)
	}
	v.Prune(atTime("12:17").Add(-ttl).UnixMilli())
	want := Vector{
		"r1": {{at("10:00"), 17}},
		"r2": {{at("11:47"), 3}},
		"r3": {{at("09:00"), 36}},
	}
	if !v.Equal(want) {
		t.Fatalf("at 12:17 got %v, want %v", v, want)
	}
}

// The same prune driven through a node's Tick, with skew 0 as in the text.
func TestTickPrunesPaperExample(t *testing.T) {
	// Skew 0 and a tiny refresh threshold, as the text has no hold.
	db := newTestDB(t, "r1", atTime("10:00"), func(c *Config) { c.MaxSkew = 0; c.RefreshThreshold = time.Millisecond })
	// r1's own entry is <10:00, 0>; give it 17 events and take the rest from a copy.
	k := mustKey(t, "192.0.2.1", "app")
	for i := 0; i < 17; i++ {
		if _, _, err := db.Rebind(k, "", fmt.Sprintf("x%d", i), atTime("10:00")); err != nil {
			t.Fatal(err)
		}
	}
	pv := paperVector()
	delete(pv, "r1")
	db.MergeVector(pv, "", atTime("12:00"))
	db.Tick(atTime("12:00"))
	if got := db.Vector(); !got.Equal(paperVector()) {
		t.Fatalf("at 12:00 vector = %v, want %v", got, paperVector())
	}
	db.Tick(atTime("12:17").Add(time.Millisecond)) // + the 1 ms hold
	got := db.Vector()
	if len(got["r2"]) != 1 || got["r2"][0] != (EpochSeq{at("11:47"), 3}) {
		t.Fatalf("at 12:17 vector = %v", got)
	}
}

// Para. 102: router 115-2 recovers at 12:00 without a disk, copies router
// 115-1's vector and merges its new epoch pair <12:00, 0>.
func TestNewEpochPairMergedPaperExample(t *testing.T) {
	db := newTestDB(t, "r2", atTime("12:00"))
	db.MergeVector(paperVector(), "r1", atTime("12:00"))
	want := Vector{
		"r1": {{at("10:00"), 17}},
		"r2": {{at("11:31"), 6}, {at("11:47"), 3}, {at("12:00"), 0}},
		"r3": {{at("09:00"), 36}},
	}
	if got := db.Vector(); !got.Equal(want) {
		t.Fatalf("vector = %v\nwant %v", got, want)
	}
	if e, s := db.Position(); e != at("12:00") || s != 0 {
		t.Fatalf("position = %d,%d", e, s)
	}
}

func TestVectorMergeKeepsLargerAndUnion(t *testing.T) {
	a := Vector{"x": {{1, 5}, {3, 1}}, "y": {{2, 2}}}
	b := Vector{"x": {{1, 7}, {2, 4}}, "z": {{9, 9}}}
	a.Merge(b)
	want := Vector{"x": {{1, 7}, {2, 4}, {3, 1}}, "y": {{2, 2}}, "z": {{9, 9}}}
	if !a.Equal(want) {
		t.Fatalf("merge = %v, want %v", a, want)
	}
	if s := a.String(); s == "" {
		t.Fatal("empty String")
	}
}

// groupOf builds a change group of origin's epoch with events from..to, each
// binding a distinct client.
func groupOf(origin string, epoch int64, from, to uint64, exp int64) Group {
	g := Group{Origin: origin, Epoch: epoch, From: from, To: to, Sender: origin}
	for s := from; s <= to; s++ {
		k, _ := NewKey(netip.AddrFrom4([4]byte{10, byte(len(origin)), byte(s >> 8), byte(s)}), origin+".app")
		g.Events = append(g.Events, Event{Seq: s, Kind: KindBind, Key: k,
			Binding: Binding{Replica: "a", Expiry: exp, Generation: 1, Origin: origin}})
	}
	return g
}

// Para. 47: router 115-2 holds the vector 8, 12, 16, 4. A group from router
// 115-1 that starts at 9 is in sequence; one that starts at 11 has missed
// events 9 and 10: it is held back, then discarded, and 9..10 are asked of
// the origin.
func TestPaperVector8_12_16_4(t *testing.T) {
	now := t0
	exp := now.Add(30 * time.Minute).UnixMilli()
	setup := func(t *testing.T) *DB {
		db := newTestDB(t, "r2", now)
		db.SetPeers([]string{"r1", "r3", "r4"}, now)
		for _, g := range []Group{groupOf("r1", 1, 1, 8, exp), groupOf("r3", 1, 1, 16, exp), groupOf("r4", 1, 1, 4, exp)} {
			if _, err := db.Receive(g, now); err != nil {
				t.Fatal(err)
			}
		}
		k := mustKey(t, "192.0.2.2", "own")
		for i := 0; i < 12; i++ {
			if _, _, err := db.Rebind(k, "", fmt.Sprintf("x%d", i), now); err != nil {
				t.Fatal(err)
			}
		}
		v := db.Vector()
		e, _ := db.Position()
		if v.Get("r1", 1) != 8 || v.Get("r2", e) != 12 || v.Get("r3", 1) != 16 || v.Get("r4", 1) != 4 {
			t.Fatalf("setup vector = %v", v)
		}
		return db
	}
	t.Run("starts at 9: accepted", func(t *testing.T) {
		db := setup(t)
		res, err := db.Receive(groupOf("r1", 1, 9, 11, exp), now)
		if err != nil || res.Applied != 3 || res.Buffered {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
		if got := db.Vector().Get("r1", 1); got != 11 {
			t.Fatalf("r1 entry = %d, want 11", got)
		}
	})
	t.Run("starts at 11: held, discarded, 9.. asked of the origin", func(t *testing.T) {
		db := setup(t)
		res, err := db.Receive(groupOf("r1", 1, 11, 15, exp), now)
		if err != nil || res.Applied != 0 || !res.Buffered {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
		if got := db.Vector().Get("r1", 1); got != 8 {
			t.Fatalf("r1 entry moved to %d", got)
		}
		wait := db.Config().GapWait
		if reqs := db.Tick(now.Add(wait / 2)); len(reqs) != 0 {
			t.Fatalf("asked before GapWait: %+v", reqs)
		}
		reqs := db.Tick(now.Add(wait + 10*time.Millisecond))
		if len(reqs) != 1 || reqs[0].To != "r1" || reqs[0].Full || reqs[0].Known.Get("r1", 1) != 8 {
			t.Fatalf("requests = %+v", reqs)
		}
		if st := db.Stats(); st.GroupsDiscarded != 1 {
			t.Fatalf("discarded = %d, want 1", st.GroupsDiscarded)
		}
		// The discarded group arriving again in full after the answer:
		res, _ = db.Receive(groupOf("r1", 1, 9, 15, exp), now.Add(wait+20*time.Millisecond))
		if res.Applied != 7 || db.Vector().Get("r1", 1) != 15 {
			t.Fatalf("after answer: res = %+v, vector = %v", res, db.Vector())
		}
		recent := db.RecentGaps()
		if len(recent) != 1 || recent[0].Asked != "r1" || recent[0].From != 9 || recent[0].AnsweredBy != "r1" {
			t.Fatalf("recent gaps = %+v", recent)
		}
	})
	t.Run("hole filled before the wait: applied from the buffer", func(t *testing.T) {
		db := setup(t)
		db.Receive(groupOf("r1", 1, 11, 15, exp), now)
		res, _ := db.Receive(groupOf("r1", 1, 9, 10, exp), now)
		if res.Applied != 7 || db.Vector().Get("r1", 1) != 15 {
			t.Fatalf("res = %+v vector = %v", res, db.Vector())
		}
		if reqs := db.Tick(now.Add(time.Second)); len(reqs) != 0 {
			t.Fatalf("requests after the hole filled: %+v", reqs)
		}
	})
}

func TestVectorPruneDropsEmptySupersededEpochs(t *testing.T) {
	v := Vector{"n": {{1, 0}, {2, 5}, {3, 0}, {4, 0}}, "m": {{7, 0}}}
	v.Prune(0)
	want := Vector{"n": {{2, 5}, {4, 0}}, "m": {{7, 0}}}
	if !v.Equal(want) {
		t.Fatalf("got %v, want %v", v, want)
	}
	v = Vector{"n": {{1, 1}, {2, 1}, {3, 1}}}
	v.Trim(2)
	if !v.Equal(Vector{"n": {{2, 1}, {3, 1}}}) {
		t.Fatalf("trim: %v", v)
	}
}

// The newest pair that began before the cutoff is kept even when it
// counted nothing: it is what shows the epochs before it over. Dropping it
// let a peer's older vector bring an over epoch back, and the fleet's
// vectors never agreed (soak, TestSimulatedFleetConverges seed 3173737600).
func TestVectorPruneKeepsWhatShowsAnEpochOver(t *testing.T) {
	v := Vector{"n": {{10, 3}, {20, 0}, {30, 0}, {40, 1}}}
	v.Prune(25)
	if want := (Vector{"n": {{20, 0}, {40, 1}}}); !v.Equal(want) {
		t.Fatalf("got %v, want %v", v, want)
	}
	v.Prune(45)
	if want := (Vector{"n": {{40, 1}}}); !v.Equal(want) {
		t.Fatalf("later: got %v, want %v", v, want)
	}
}

// A peer's vector that still lists epochs this node pruned brings none of
// them back: an epoch shown over (by this node's pairs or the peer's) and
// an empty one followed by a later one are left out, so every node's
// vector settles on the same pairs and no gap is opened for an over epoch.
func TestObserveBringsNoPrunedEpochBack(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	me := newTestDB(t, "me", now)
	me.SetPeers([]string{"h", "o"}, now)
	cutoff := me.rs.cutoff(now.UnixMilli())
	e1, e2 := cutoff-2000, cutoff-1000
	e3, e4 := cutoff+10*time.Minute.Milliseconds(), cutoff+20*time.Minute.Milliseconds()
	stale := Vector{"o": {{e1, 3}, {e2, 0}, {e3, 0}, {e4, 0}}}
	want := Vector{"o": {{e2, 0}, {e4, 0}}}
	got := func() Vector {
		v := me.Vector()
		return Vector{"o": v["o"]}
	}
	me.ObserveVector("h", stale, now)
	if !got().Equal(want) {
		t.Fatalf("after the first vector: %v, want %v", got(), want)
	}
	sent := 0
	for at := now; at.Before(now.Add(10 * time.Second)); at = at.Add(100 * time.Millisecond) {
		for _, r := range me.Tick(at) {
			if r.Reason != ReasonWatchdog {
				sent++
			}
		}
		me.ObserveVector("h", stale, at)
		me.ObserveVector("o", Vector{"o": {{e1, 3}}}, at)
		if !got().Equal(want) {
			t.Fatalf("at +%v: %v, want %v", at.Sub(now), got(), want)
		}
	}
	if sent != 0 {
		t.Fatalf("%d requests for an epoch that is over", sent)
	}
}

// The peers' vectors in the table are pruned at most once a second, not
// on every Tick (N vectors of N origins, 50 Ticks a second, was the
// largest part of a 50-node fleet's idle Tick), and still pruned.
func TestTickPrunesPeerVectorsOncePerSecond(t *testing.T) {
	now := t0
	db := newTestDB(t, "n1", now)
	db.SetPeers([]string{"p1"}, now)
	cutoff := db.rs.cutoff(now.UnixMilli())
	old, newer := cutoff-2000, cutoff-1000 // both over: the newer began before the cutoff
	vec := func() Vector { return Vector{"x": {{old, 5}, {newer, 3}}} }
	send := func(at time.Time) {
		t.Helper()
		g := Group{Origin: "p1", Epoch: at.UnixMilli() - 1000, From: 1, To: 0, Sender: "p1", Vector: vec()}
		if _, err := db.Receive(g, at); err != nil {
			t.Fatal(err)
		}
	}
	pairs := func() int {
		db.mu.Lock()
		defer db.mu.Unlock()
		return len(db.rs.peers["p1"].vector["x"])
	}
	send(now)
	if pairs() != 2 {
		t.Fatalf("received vector holds %d pairs of x, want 2", pairs())
	}
	db.Tick(now)
	if pairs() != 1 {
		t.Fatalf("first Tick: %d pairs of x, want the over epoch pruned", pairs())
	}
	send(now.Add(10 * time.Millisecond))
	db.Tick(now.Add(500 * time.Millisecond))
	if pairs() != 2 {
		t.Fatalf("a Tick 500 ms after a prune pruned the peers' vectors again (%d pairs)", pairs())
	}
	db.Tick(now.Add(1000 * time.Millisecond))
	if pairs() != 1 {
		t.Fatalf("a Tick a second after the last prune left %d pairs of x, want 1", pairs())
	}
}

// A node with a backlog of received groups (SetBehind) asks for nothing:
// not the hole's range, not a watchdog range. Once the backlog is gone the
// still-open hole is asked for at once (it kept its age); a hole the
// backlog filled is never asked for.
func TestBehindHoldsRequests(t *testing.T) {
	now := t0
	exp := now.Add(30 * time.Minute).UnixMilli()
	db := newTestDB(t, "me", now)
	db.SetPeers([]string{"o", "p"}, now)
	for _, g := range []Group{groupOf("o", 1, 1, 3, exp), groupOf("p", 1, 1, 3, exp)} {
		if _, err := db.Receive(g, now); err != nil {
			t.Fatal(err)
		}
	}
	// Holes in o's and p's events: 4 and 5 are missing.
	for _, g := range []Group{groupOf("o", 1, 6, 7, exp), groupOf("p", 1, 6, 7, exp)} {
		if res, err := db.Receive(g, now); err != nil || !res.Buffered {
			t.Fatalf("%+v %v", res, err)
		}
	}
	db.SetBehind(true)
	for range 10 {
		now = now.Add(db.cfg.GapWait)
		if reqs := db.Tick(now); len(reqs) != 0 {
			t.Fatalf("behind, asked %+v", reqs)
		}
	}
	now = now.Add(db.cfg.Watchdog) // the peers also look silent by now
	if reqs := db.Tick(now); len(reqs) != 0 {
		t.Fatalf("behind, asked %+v", reqs)
	}
	if db.Stats().RequestsHeld == 0 {
		t.Fatal("no request counted as held")
	}
	// The backlog held p's missing events: applied, p's hole closes.
	if _, err := db.Receive(groupOf("p", 1, 4, 5, exp), now); err != nil {
		t.Fatal(err)
	}
	db.SetBehind(false)
	var gap []Request
	for _, r := range db.Tick(now) {
		if r.Reason != ReasonWatchdog {
			gap = append(gap, r)
		}
	}
	if len(gap) != 1 || gap[0].To != "o" || gap[0].Known.Get("o", 1) != 3 {
		t.Fatalf("after the backlog: %+v, want one request to o for what follows 3", gap)
	}
}
