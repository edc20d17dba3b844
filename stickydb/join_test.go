package stickydb

import (
	"net/netip"
	"testing"
	"time"
)

// Two nodes bind one client in the same second (one generation) to
// different replicas; the binding that wins by rank (win) ends earlier than
// the loser, which its node keeps refreshing. A node that merged both holds
// the winner with the loser's later expiry: a state no event said. A node
// that holds only the loser and gets the winner's own event after that
// event's horizon drops it on arrival. Without announcing the join, the two
// kept different bindings for good while their vectors were equal.
func TestJoinIsAnnounced(t *testing.T) {
	now := t0
	ip := netip.MustParseAddr("192.0.2.9")
	k, _ := NewKey(ip, "shop")
	win, lose := "ra", "rb"
	if !replicaBeats(k.Hash(), Binding{Replica: win}, Binding{Replica: lose}) {
		win, lose = lose, win
	}
	x := newTestDB(t, "x", now) // binds the winner
	y := newTestDB(t, "y", now) // binds the loser and keeps it alive
	z := newTestDB(t, "z", now) // hears both while both are alive
	w := newTestDB(t, "w", now) // hears the loser, and the winner too late
	dbs := []*DB{x, y, z, w}
	sent := map[*DB]uint64{}
	deliver := func(from *DB, to ...*DB) {
		g := from.OwnEvents(sent[from], 1000)
		if len(g.Events) == 0 {
			return
		}
		sent[from] = g.To
		for _, d := range to {
			if d == from {
				continue
			}
			res, err := d.Receive(g, now)
			if err != nil {
				t.Fatalf("%s -> %s: %v", from.Node(), d.Node(), err)
			}
			if testing.Verbose() {
				b, _ := d.Lookup(k)
				t.Logf("%s -> %s: %d..%d %+v; now %+v", from.Node(), d.Node(), g.From, g.To, res, b)
			}
		}
	}
	if _, _, err := x.BindIfAbsent(k, win, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := y.BindIfAbsent(k, lose, now.Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	xg := x.OwnEvents(0, 10) // the winner's only event, kept for later
	deliver(x, z)            // only z hears the winner while it is alive
	deliver(y, x, z, w)
	if b, _ := z.Lookup(k); b.Replica != win {
		t.Fatalf("z holds %+v, want the winner %s", b, win)
	}
	// y's client keeps coming back: y refreshes the loser, well past the
	// winner's expiry.
	for range 3 {
		now = now.Add(y.cfg.TTL / 2)
		if h, ok := y.Touch(k, now); !ok || !h.RefreshDue {
			t.Fatalf("y: %+v %v", h, ok)
		}
		if _, err := y.Refresh(k, now); err != nil {
			t.Fatal(err)
		}
		deliver(y, x, z, w)
		deliver(z, x, y, w) // z's announcements, if any
		deliver(x, y, z, w)
	}
	// The winner's own event reaches w only now, past its horizon.
	if _, err := w.Receive(xg, now); err != nil {
		t.Fatal(err)
	}
	deliver(z, x, y, w)
	for _, d := range dbs {
		deliver(d, dbs...)
	}
	want, _ := z.Lookup(k)
	for _, d := range dbs {
		b, ok := d.Lookup(k)
		if !ok || !sameClass(b, want) || b.Expiry != want.Expiry {
			t.Errorf("%s holds %+v (%v), z holds %+v", d.Node(), b, ok, want)
		}
	}
	if want.Replica != win {
		t.Errorf("the fleet holds %s, want the winner by rank %s", want.Replica, win)
	}
	if z.Stats().JoinsAnnounced == 0 {
		t.Error("z announced no join")
	}
}
