package stickydb

import (
	"net/netip"
	"testing"
	"time"
)

// Every clock in the fleet steps back by more than the bounds allow for
// skew (MaxSkew, MaxFutureEpoch): what an honest peer made just before the
// step now looks ahead of the receiver's clock. Before deferral, the
// receiver refused those events and its vector moved past them, so the
// bindings were lost for good on every node but their origin, while the
// vectors showed the nodes equal. Now they wait for the clock and are then
// merged exactly as sent.
func TestClockStepBackDefersNotLoses(t *testing.T) {
	made := t0.Add(10 * time.Minute) // the origin's clock when it bound
	step := 5 * time.Minute          // every clock then stepped back this far
	origin := newTestDB(t, "o", t0)
	recv := newTestDB(t, "r", t0)
	k, _ := NewKey(netip.MustParseAddr("192.0.2.7"), "shop")
	if _, _, err := origin.BindIfAbsent(k, "a", made); err != nil {
		t.Fatal(err)
	}
	want, _ := origin.Lookup(k)

	// The origin's epoch began at t0 and the expiry is made+TTL: after the
	// step back the group's epoch is fine but the expiry is beyond the cap.
	now := made.Add(-step)
	g := origin.OwnEvents(0, 100)
	res, err := recv.Receive(g, now)
	if err != nil {
		t.Fatalf("an honest peer's event after a clock step: %v", err)
	}
	if res.Rejected != 0 {
		t.Fatalf("rejected %d", res.Rejected)
	}
	if _, ok := recv.Lookup(k); ok {
		t.Fatal("merged before the clock admits it")
	}
	if recv.Deferred() != 1 || recv.Stats().EventsDeferred != 1 {
		t.Fatalf("deferred %d (stats %d), want 1", recv.Deferred(), recv.Stats().EventsDeferred)
	}
	// The vector moved past it: it is never sent again.
	if recv.Vector().Get("o", g.Epoch) != g.To {
		t.Fatalf("vector %v", recv.Vector())
	}
	// A full copy (or a snapshot) taken now carries it with the vector
	// that counts it, and the copy's receiver waits for the clock too.
	third := newTestDB(t, "c", now)
	meta, err := recv.Snapshot(now, func(recs []Record) error {
		_, err := third.MergeRecords(recs, now)
		return err
	})
	if err != nil || meta.Count != 1 {
		t.Fatalf("copy: %d records, %v", meta.Count, err)
	}
	third.MergeVector(meta.Vector, "r", now)
	if third.Deferred() != 1 {
		t.Fatalf("the copy's receiver holds %d deferred, want 1", third.Deferred())
	}
	// Once the clock has caught up, a tick merges it as sent.
	for now.Before(made) {
		now = now.Add(10 * time.Second)
		recv.Tick(now)
		third.Tick(now)
	}
	if b, ok := third.Lookup(k); !ok || b.Replica != want.Replica || b.Generation != want.Generation {
		t.Fatalf("the copy's receiver after the clock caught up: %+v %v", b, ok)
	}
	got, ok := recv.Lookup(k)
	if !ok || got.Replica != want.Replica || got.Generation != want.Generation || got.Expiry != want.Expiry {
		t.Fatalf("after the clock caught up: %+v %v, want %+v", got, ok, want)
	}
	if recv.Deferred() != 0 {
		t.Fatalf("%d still deferred", recv.Deferred())
	}
	rc, rs := recv.Digest(now, 0)
	oc, os := origin.Digest(now, 0)
	if rc != 1 || rc != oc || rs != os {
		t.Fatal("digests differ after the deferred binding was merged")
	}
}

// A group of an epoch that began up to MaxClockStep past MaxFutureEpoch
// ahead of the receiver's clock is kept and applied once the clock catches
// up; further ahead it is refused, and the space for waiting bindings is
// bounded.
func TestFutureEpochGroupWaitsForTheClock(t *testing.T) {
	now := t0
	db := newTestDB(t, "me", now)
	exp := now.Add(20 * time.Minute).UnixMilli()
	ahead := now.Add(db.cfg.MaxFutureEpoch + 3*time.Minute)
	res, err := db.Receive(groupOf("o", ahead.UnixMilli(), 1, 3, exp), now)
	if err != nil || !res.Buffered {
		t.Fatalf("%+v %v", res, err)
	}
	if db.Vector().Get("o", ahead.UnixMilli()) != 0 || db.Deferred() != 3 {
		t.Fatalf("vector %v, deferred %d", db.Vector(), db.Deferred())
	}
	for i := 0; i < 20 && db.Vector().Get("o", ahead.UnixMilli()) == 0; i++ {
		now = now.Add(15 * time.Second)
		db.Tick(now)
	}
	if got := db.Vector().Get("o", ahead.UnixMilli()); got != 3 {
		t.Fatalf("after the clock caught up: vector at %d, want 3", got)
	}
	if db.Deferred() != 0 {
		t.Fatalf("%d still deferred", db.Deferred())
	}
}

func TestDeferralIsBounded(t *testing.T) {
	now := t0
	db := newTestDB(t, "me", now, func(c *Config) { c.MaxGroupEvents = 4096 })
	capMs := db.ttlMs + db.skewMs + db.cfg.MaxFutureEpoch.Milliseconds()
	// Far beyond MaxClockStep: refused as before.
	g := groupOf("o", now.UnixMilli(), 1, 1, now.UnixMilli()+capMs+MaxClockStep.Milliseconds()+60_000)
	res, err := db.Receive(g, now)
	if err != nil || res.Rejected != 1 || db.Deferred() != 0 {
		t.Fatalf("%+v %v deferred %d", res, err, db.Deferred())
	}
	// Within it, until MaxDeferred are waiting; then refused.
	seq := uint64(1)
	for db.Deferred() < MaxDeferred {
		g := groupOf("o", now.UnixMilli(), seq+1, seq+4096, now.UnixMilli()+capMs+60_000)
		for i := range g.Events {
			g.Events[i].Key, _ = NewKey(netip.AddrFrom4([4]byte{10, byte(seq >> 16), byte(seq >> 8), byte(seq)}), "h")
			seq++
		}
		if _, err := db.Receive(g, now); err != nil {
			t.Fatal(err)
		}
	}
	g = groupOf("o", now.UnixMilli(), seq+1, seq+1, now.UnixMilli()+capMs+60_000)
	res, err = db.Receive(g, now)
	if err != nil || res.Rejected != 1 || db.Deferred() != MaxDeferred {
		t.Fatalf("past MaxDeferred: %+v %v deferred %d", res, err, db.Deferred())
	}
}

// Heartbeats of an epoch ahead of the clock (within MaxClockStep) are
// taken and not kept: they hold nothing to apply later, and since
// MaxDeferred counts events, keeping them let a peer whose clock is ahead
// grow the deferred list by one entry per heartbeat, without bound.
func TestFutureEpochHeartbeatsAreNotKept(t *testing.T) {
	now := t0
	db := newTestDB(t, "me", now)
	ahead := now.Add(db.cfg.MaxFutureEpoch + 3*time.Minute).UnixMilli()
	for i := range 10_000 {
		hb := Group{Origin: "o", Sender: "o", Epoch: ahead, From: 1, To: 0, Stated: i%2 == 0,
			Vector: Vector{"o": {{Epoch: ahead, Seq: 5}}}}
		res, err := db.Receive(hb, now)
		if err != nil || !res.Buffered {
			t.Fatalf("heartbeat %d: %+v %v", i, res, err)
		}
	}
	db.deferred.mu.Lock()
	kept := len(db.deferred.groups)
	db.deferred.mu.Unlock()
	if kept != 0 || db.Deferred() != 0 {
		t.Fatalf("%d heartbeats kept for later (deferred %d)", kept, db.Deferred())
	}
	// A group with events is still kept.
	res, err := db.Receive(groupOf("o", ahead, 1, 3, now.Add(20*time.Minute).UnixMilli()), now)
	if err != nil || !res.Buffered || db.Deferred() != 3 {
		t.Fatalf("%+v %v deferred %d", res, err, db.Deferred())
	}
}
