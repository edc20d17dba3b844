package recovery

import (
	"context"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// TestModes: the outage decides the mode (Fig. 11 step 655), and each
// long-outage ending (peer copy + Reconcile, or ReconcileLocal) gives the
// table back.
func TestModes(t *testing.T) {
	cases := []struct {
		name   string
		outage time.Duration
		close  bool
		idle   bool // the node made no event for a while before the crash, but was up (liveness marks)
		mode   Mode
		finish string // "peer", "local", ""
	}{
		{"short after a crash", time.Minute, false, false, ModeShort, ""},
		{"short after a clean close", 4 * time.Minute, true, false, ModeShort, ""},
		{"long, peer copy", 6 * time.Minute, false, false, ModeLong, "peer"},
		{"long, no peer", 10 * time.Minute, true, false, ModeLong, "local"},
		{"idle but alive, then a short crash", time.Minute, false, true, ModeShort, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := newClock(t0)
			a := start(t, dir, "a", clk, func(c *Config) { c.FlushInterval = time.Minute; c.CheckInterval = time.Millisecond })
			if err := a.rec.Reconcile(clk.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := a.db.Receive(peerGroup(t, "b", t0.UnixMilli()-1000, 1, 300, clk.Now()), clk.Now()); err != nil {
				t.Fatal(err)
			}
			workload(t, a.db, clk, 0, 1000)
			if _, err := a.st.Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			workload(t, a.db, clk, 1000, 500)
			if _, err := a.st.Flush(); err != nil {
				t.Fatal(err)
			}
			if tc.idle {
				// 20 minutes up without an event: Run's liveness marks keep
				// the outage short.
				stop := runStore(t, a.st)
				for range 20 {
					syncs := a.st.Stats().Syncs
					clk.Add(time.Minute)
					waitFor(t, "a liveness mark", func() bool { return a.st.Stats().Syncs > syncs })
				}
				stop()
			}
			want := table(t, a.db, clk.Now().Add(tc.outage))
			if tc.close {
				if err := a.st.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				a.crash()
			}
			clk.Add(tc.outage)
			b := start(t, dir, "a", clk, nil)
			defer b.st.Close()
			if b.rec.Mode != tc.mode || b.rec.CleanShutdown != tc.close || len(b.rec.Problems) > 0 || b.rec.NewEpoch {
				t.Fatalf("report %+v", b.rec.Report)
			}
			if tc.mode == ModeLong {
				// Own bindings are there at once; the snapshot is not loaded.
				for k, w := range want {
					if got, ok := b.db.Lookup(k); w.Origin == "b" && ok {
						t.Fatalf("peer binding %v %+v loaded before the peer copy", k, got)
					}
				}
				if _, err := b.st.Snapshot(context.Background()); err != ErrPending {
					t.Fatalf("snapshot before Reconcile: %v", err)
				}
			}
			switch tc.finish {
			case "peer":
				// A peer that has everything (a's final table and vector).
				peer := newDB(t, "b", clk.Now())
				var recs []stickydb.Record
				for k, bd := range want {
					recs = append(recs, stickydb.Record{Key: k, Binding: bd})
				}
				if _, err := peer.MergeRecords(recs, clk.Now()); err != nil {
					t.Fatal(err)
				}
				meta, err := peer.Snapshot(clk.Now(), func(rs []stickydb.Record) error {
					_, err := b.db.MergeRecords(rs, clk.Now())
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				b.db.MergeVector(meta.Vector, "b", clk.Now())
				if err := b.rec.Reconcile(clk.Now()); err != nil {
					t.Fatal(err)
				}
			case "local":
				if err := b.rec.ReconcileLocal(clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
			sameTable(t, want, table(t, b.db, clk.Now()))
			if err := b.rec.Reconcile(clk.Now()); err != ErrReconciled && tc.finish != "" {
				t.Fatalf("second Reconcile: %v", err)
			}
			if _, err := b.st.Snapshot(context.Background()); err != nil {
				t.Fatalf("snapshot after Reconcile: %v", err)
			}
		})
	}
}

// TestRecoverRefuses: the start-up errors.
func TestRecoverRefuses(t *testing.T) {
	clk := newClock(t0)
	dir := t.TempDir()
	a := start(t, dir, "a", clk, nil)
	workload(t, a.db, clk, 0, 10)
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("another node's directory", func(t *testing.T) {
		st, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Recover(newDB(t, "z", clk.Now()), clk.Now()); err == nil || !errorsIs(err, ErrWrongNode) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not durable", func(t *testing.T) {
		st, err := Open(Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		db, _ := stickydb.New(stickydb.DefaultConfig("a"), clk.Now())
		if _, err := st.Recover(db, clk.Now()); !errorsIs(err, ErrNotDurable) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not fresh", func(t *testing.T) {
		st, err := Open(Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		db := newDB(t, "a", clk.Now())
		workload(t, db, clk, 0, 1)
		if _, err := st.Recover(db, clk.Now()); !errorsIs(err, ErrNotFresh) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("locked", func(t *testing.T) {
		st, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := Open(Config{Dir: dir}); !errorsIs(err, ErrLocked) {
			t.Fatalf("second Open: %v", err)
		}
	})
	t.Run("flush before recover", func(t *testing.T) {
		st, err := Open(Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Flush(); !errorsIs(err, ErrNotRecovered) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		for _, c := range []Config{{}, {Dir: "x", FlushEvents: -1}, {Dir: "x", ChunkRecords: 1 << 20}, {Dir: "x", KeepSnapshots: -2}} {
			if _, err := Open(c); err == nil {
				t.Fatalf("config %+v accepted", c)
			}
		}
	})
}
