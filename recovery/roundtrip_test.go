package recovery

import (
	"context"
	"testing"
	"time"
)

// TestRoundTrip: own events and a snapshot (with another origin's
// bindings and vector entry) written by one DB come back into a fresh DB
// exactly: every binding, the vector and the own position.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	a := start(t, dir, "a", clk, nil)
	if a.rec.Mode != ModeEmpty {
		t.Fatalf("mode %v on an empty directory", a.rec.Mode)
	}
	if err := a.rec.Reconcile(clk.Now()); err != nil {
		t.Fatal(err)
	}
	peerEpoch := t0.Add(-time.Hour).UnixMilli()
	if _, err := a.db.Receive(peerGroup(t, "b", peerEpoch, 1, 500, clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	workload(t, a.db, clk, 0, 3000)
	if _, err := a.st.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	workload(t, a.db, clk, 3000, 2000) // after the snapshot: from the log only
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	want, wantVec := table(t, a.db, clk.Now()), a.db.Vector()
	we, ws := a.db.Position()

	clk.Add(time.Minute)
	b := start(t, dir, "a", clk, nil)
	defer b.st.Close()
	if b.rec.Mode != ModeShort || len(b.rec.Problems) != 0 || !b.rec.CleanShutdown || b.rec.NewEpoch {
		t.Fatalf("report %+v", b.rec.Report)
	}
	sameTable(t, want, table(t, b.db, clk.Now()))
	if got := b.db.Vector(); !got.Equal(wantVec) {
		t.Fatalf("vector %v, want %v", got, wantVec)
	}
	if e, s := b.db.Position(); e != we || s != ws {
		t.Fatalf("position (%d, %d), want (%d, %d)", e, s, we, ws)
	}
}
