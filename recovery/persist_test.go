package recovery

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// onDisk returns the highest own event number of epoch that the log files
// hold whole (a frame being written at that moment is not counted).
func onDisk(t *testing.T, dir string, epoch int64) uint64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var hi uint64
	for _, e := range ents {
		i, ok := parseIndex(e.Name(), walSuffix)
		if !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := scanSegment(bytes.NewReader(data), int64(len(data)), "a", i)
		if err != nil {
			t.Fatal(err)
		}
		if sc.header.Epoch == epoch && len(sc.events) > 0 {
			hi = max(hi, sc.last())
		}
	}
	return hi
}

// TestPersistBeforeSend: while request goroutines make own events, what
// the DB lets leave (OwnEvents, the advertised vector) never runs ahead of
// what the log files hold, and Flush's answer is exactly what may leave.
func TestPersistBeforeSend(t *testing.T) {
	clk := newClock(t0)
	a := start(t, t.TempDir(), "a", clk, nil)
	defer a.st.Close()
	if err := a.rec.Reconcile(clk.Now()); err != nil {
		t.Fatal(err)
	}
	epoch, _ := a.db.Position()

	workload(t, a.db, clk, 0, 50)
	if g := a.db.OwnEvents(0, 1<<20); len(g.Events) != 0 {
		t.Fatalf("%d own events may leave before any flush", len(g.Events))
	}

	var stop atomic.Bool
	var made atomic.Int64
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; i < 2000 && !stop.Load(); i++ {
				if _, _, err := a.db.BindIfAbsent(key(t, 10_000+w*100_000+i), "r1", clk.Now()); err != nil {
					t.Error(err)
					return
				}
				made.Add(1)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for round := 0; round < 30 && time.Now().Before(deadline); round++ {
		n, err := a.st.Flush()
		if err != nil {
			t.Fatal(err)
		}
		g := a.db.OwnEvents(0, 1<<20)
		vec := a.db.Vector().Get("a", epoch)
		disk := onDisk(t, a.dir, epoch)
		if g.To != n || vec != n || disk < n {
			t.Fatalf("round %d: flush says %d, OwnEvents up to %d, vector %d, disk %d", round, n, g.To, vec, disk)
		}
	}
	stop.Store(true)
	wg.Wait()
	if made.Load() == 0 {
		t.Fatal("no concurrent events made")
	}
}

// TestFlushConcurrent: many goroutines flushing at once (gossip pushes to
// several peers) each get a number that is on disk, and the number only
// grows.
func TestFlushConcurrent(t *testing.T) {
	clk := newClock(t0)
	a := start(t, t.TempDir(), "a", clk, nil)
	defer a.st.Close()
	epoch, _ := a.db.Position()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seen []uint64
	for w := range 4 {
		wg.Go(func() {
			var last uint64
			for i := range 300 {
				if _, _, err := a.db.BindIfAbsent(key(t, w*1000+i), "r2", clk.Now()); err != nil {
					t.Error(err)
					return
				}
				n, err := a.st.Flush()
				if err != nil || n < last {
					t.Errorf("flush %d after %d: %v", n, last, err)
					return
				}
				last = n
				if g := a.db.OwnEvents(0, 1<<20); g.To < n {
					t.Errorf("OwnEvents up to %d after flush said %d", g.To, n)
					return
				}
			}
			mu.Lock()
			seen = append(seen, last)
			mu.Unlock()
		})
	}
	wg.Wait()
	n, _ := a.st.Flush()
	if disk := onDisk(t, a.dir, epoch); n != 1200 || disk != 1200 {
		t.Fatalf("flushed %d, on disk %d, want 1200", n, disk)
	}
	if s := a.st.Stats(); s.Syncs > s.Flushes || s.EventsWritten != 1200 {
		t.Fatalf("stats %+v", s)
	}
}

// TestFlushIdleIsCheap: with nothing waiting, Flush does no I/O.
func TestFlushIdleIsCheap(t *testing.T) {
	clk := newClock(t0)
	a := start(t, t.TempDir(), "a", clk, nil)
	defer a.st.Close()
	workload(t, a.db, clk, 0, 10)
	if _, err := a.st.Flush(); err != nil {
		t.Fatal(err)
	}
	before := a.st.Stats()
	for range 1000 {
		if _, err := a.st.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if after := a.st.Stats(); after.Syncs != before.Syncs || after.BytesWritten != before.BytesWritten {
		t.Fatalf("idle flushes wrote: %+v -> %+v", before, after)
	}
	if testing.AllocsPerRun(100, func() { _, _ = a.st.Flush() }) != 0 {
		t.Fatal("an idle Flush allocates")
	}
}

// TestWriteFailureIsSticky: once a write fails, Flush keeps failing and
// the DB releases nothing more, so no event leaves that is not on disk.
func TestWriteFailureIsSticky(t *testing.T) {
	clk := newClock(t0)
	a := start(t, t.TempDir(), "a", clk, nil)
	defer a.st.Close()
	workload(t, a.db, clk, 0, 10)
	n, err := a.st.Flush()
	if err != nil {
		t.Fatal(err)
	}
	a.st.mu.Lock()
	a.st.w.f.Close() // the disk goes away under the log
	a.st.mu.Unlock()
	workload(t, a.db, clk, 100, 10)
	for range 3 {
		if _, err := a.st.Flush(); !errors.Is(err, ErrFailed) {
			t.Fatalf("flush after a failed write: %v", err)
		}
	}
	if g := a.db.OwnEvents(0, 1<<20); g.To != n {
		t.Fatalf("OwnEvents up to %d after the failure, last good flush %d", g.To, n)
	}
	if !a.st.Stats().Failed {
		t.Fatal("stats do not show the failure")
	}
}

// TestRestartCycle: bindings made and flushed survive a crash (no Close)
// with the same replica, generation, expiry and origin; those made after
// the last flush are gone, and nothing else changed.
func TestRestartCycle(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	a := start(t, dir, "a", clk, nil)
	workload(t, a.db, clk, 0, 2000)
	if _, err := a.st.Flush(); err != nil {
		t.Fatal(err)
	}
	flushed := table(t, a.db, clk.Now())
	workload(t, a.db, clk, 2000, 100) // never flushed, never sent
	a.crash()

	clk.Add(30 * time.Second)
	b := start(t, dir, "a", clk, nil)
	defer b.st.Close()
	if b.rec.Mode != ModeShort || b.rec.CleanShutdown {
		t.Fatalf("report %+v", b.rec.Report)
	}
	sameTable(t, flushed, table(t, b.db, clk.Now()))
	for k, want := range flushed {
		got, ok := b.db.Lookup(k)
		if !ok || got != want {
			t.Fatalf("%v: %+v, want %+v", k, got, want)
		}
	}
	// The numbering goes on after the last flushed event.
	_, s := b.db.Position()
	if _, _, err := b.db.BindIfAbsent(key(t, 99_999), "r1", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if g := b.db.Unpersisted(s, 10); len(g.Events) != 1 || g.Events[0].Seq != s+1 {
		t.Fatalf("next event %+v after %d", g, s)
	}
}

// TestOwnLogOverrun: more own events than the DB's log cap made before a
// flush (a stalled disk) all reach the log, since the durable core keeps
// unpersisted events past its cap; a restart gets back every binding and
// continues the numbering, reporting no damage.
func TestOwnLogOverrun(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	n := &node{logs: &logBuf{}, clk: clk, dir: dir}
	st, err := Open(Config{Dir: dir, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := stickydb.DefaultConfig("a")
	cfg.Durable, cfg.OwnLogCap = true, 10
	n.db, err = stickydb.New(cfg, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recover(n.db, clk.Now()); err != nil {
		t.Fatal(err)
	}
	workload(t, n.db, clk, 0, 40)
	epoch, seq := n.db.Position()
	got, err := st.Flush()
	if err != nil || got != seq {
		t.Fatalf("flush %d, %v; position %d", got, err, seq)
	}
	// Durable: the own log runs over its cap until the events are written
	// (stickydb pins them), so the log gets every event and has no hole.
	if ss := st.Stats(); ss.Holes != 0 || ss.EventsWritten != seq {
		t.Fatalf("want every one of %d events written, no hole: stats %+v", seq, ss)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	b := start(t, dir, "a", clk, nil)
	defer b.st.Close()
	if e, s := b.db.Position(); e != epoch || s != seq || len(b.rec.Problems) != 0 {
		t.Fatalf("position (%d, %d), want (%d, %d); problems %q", e, s, epoch, seq, b.rec.Problems)
	}
	if got, want := b.db.Len(), n.db.Len(); got != want {
		t.Fatalf("restart holds %d bindings, the node had %d", got, want)
	}
}
