package recovery

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// runStore starts Run and returns a stop function that checks it ended.
func runStore(t *testing.T, st *Store) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop")
		}
	}
}

func fastRun(c *Config) {
	c.FlushEvents = 10
	c.FlushInterval = time.Hour
	c.CheckInterval = time.Millisecond
	c.SnapshotInterval = 10 * time.Hour
}

// TestRunFlushesByCount: FlushEvents waiting events are flushed without
// anyone calling Flush.
func TestRunFlushesByCount(t *testing.T) {
	clk := newClock(t0)
	a := start(t, t.TempDir(), "a", clk, fastRun)
	defer a.st.Close()
	stop := runStore(t, a.st)
	defer stop()
	for i := range 10 {
		if _, _, err := a.db.BindIfAbsent(key(t, i), "r1", clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "10 events flushed", func() bool { return a.st.Stats().Persisted == 10 })
	if g := a.db.OwnEvents(0, 100); g.To != 10 {
		t.Fatalf("OwnEvents up to %d", g.To)
	}
}

// TestRunFlushesByTime: fewer than FlushEvents events are flushed once
// FlushInterval has passed, with a liveness mark.
func TestRunFlushesByTime(t *testing.T) {
	clk := newClock(t0)
	a := start(t, t.TempDir(), "a", clk, fastRun)
	defer a.st.Close()
	stop := runStore(t, a.st)
	defer stop()
	for i := range 3 {
		if _, _, err := a.db.BindIfAbsent(key(t, i), "r1", clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Hour)
	waitFor(t, "3 events flushed by time", func() bool { return a.st.Stats().Persisted == 3 })
	alive := func() int64 {
		sc, err := scanFile(filepath.Join(a.dir, segName(1)), "a", 1)
		if err != nil || sc.problem != nil {
			t.Fatal(err, sc.problem)
		}
		return sc.lastAlive
	}
	if got := alive(); got != clk.Now().UnixMilli() {
		t.Fatalf("last alive %d after the flush, want %d", got, clk.Now().UnixMilli())
	}
	// An hour without events: the liveness mark alone moves the time on.
	syncs := a.st.Stats().Syncs
	clk.Add(time.Hour)
	waitFor(t, "a liveness mark", func() bool { return a.st.Stats().Syncs > syncs })
	if got := alive(); got != clk.Now().UnixMilli() {
		t.Fatalf("last alive %d after the mark, want %d", got, clk.Now().UnixMilli())
	}
}

// TestRunSnapshots: a snapshot every SnapshotInterval, old snapshots and
// the segments they cover deleted; none while a long recovery is pending.
func TestRunSnapshots(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	a := start(t, dir, "a", clk, func(c *Config) { fastRun(c); c.SnapshotInterval = time.Minute })
	stop := runStore(t, a.st)
	if a.rec.Mode != ModeEmpty {
		t.Fatalf("mode %v", a.rec.Mode)
	}
	clk.Add(2 * time.Minute)
	// Pending (ModeEmpty not reconciled): no snapshot, whatever the clock says.
	if _, err := a.st.Snapshot(context.Background()); err != ErrPending {
		t.Fatalf("snapshot while pending: %v", err)
	}
	if err := a.rec.Reconcile(clk.Now()); err != nil {
		t.Fatal(err)
	}
	for round := range 4 {
		workload(t, a.db, clk, round*100, 100)
		clk.Add(time.Minute)
		want := uint64(round + 1)
		waitFor(t, "a snapshot", func() bool { return a.st.Stats().Snapshots >= want })
	}
	stop()
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	var snaps, segs int
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if _, ok := parseIndex(e.Name(), snapSuffix); ok {
			snaps++
		}
		if _, ok := parseIndex(e.Name(), walSuffix); ok {
			segs++
		}
	}
	if snaps != 2 || segs > 3 {
		t.Fatalf("%d snapshots and %d segments kept, want 2 and at most 3", snaps, segs)
	}
	want := table(t, a.db, clk.Now())
	b := start(t, dir, "a", clk, nil)
	defer b.st.Close()
	if b.rec.Mode != ModeShort || len(b.rec.Problems) > 0 {
		t.Fatalf("report %+v", b.rec.Report)
	}
	sameTable(t, want, table(t, b.db, clk.Now()))
}

// TestNewEpochThroughStore: an epoch change goes into the log, and a
// restart comes back in it with the older epoch's bindings.
func TestNewEpochThroughStore(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	a := start(t, dir, "a", clk, nil)
	workload(t, a.db, clk, 0, 100)
	e1, s1 := a.db.Position()
	clk.Add(time.Second)
	if err := a.st.NewEpoch(clk.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	workload(t, a.db, clk, 100, 100)
	e2, s2 := a.db.Position()
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	want := table(t, a.db, clk.Now())
	b := start(t, dir, "a", clk, nil)
	defer b.st.Close()
	if e, s := b.db.Position(); e != e2 || s != s2 || b.rec.NewEpoch {
		t.Fatalf("position (%d, %d), want (%d, %d)", e, s, e2, s2)
	}
	if v := b.db.Vector(); v.Get("a", e1) != s1 || v.Get("a", e2) != s2 {
		t.Fatalf("vector %v", v)
	}
	sameTable(t, want, table(t, b.db, clk.Now()))
}
