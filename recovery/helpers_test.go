package recovery

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/internal/syncbuf"
	"github.com/tetherproxy/tether/stickydb"
)

// t0 is the tests' epoch of reference: a fixed wall-clock time.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a manual clock, safe for concurrent use.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ms.Store(t.UnixMilli())
	return c
}

func (c *clock) Now() time.Time      { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// logBuf collects zerolog JSON lines from several goroutines.
type logBuf struct{ syncbuf.Buffer }

// lines returns the messages logged at level.
func (l *logBuf) lines(level string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["level"] != level {
			continue
		}
		out = append(out, fmt.Sprint(m["message"], " ", m["error"]))
	}
	return out
}

func newDB(t testing.TB, node string, now time.Time) *stickydb.DB {
	t.Helper()
	cfg := stickydb.DefaultConfig(node)
	cfg.Durable = true
	db, err := stickydb.New(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// node is one Store with its DB, as a process would hold them.
type node struct {
	st   *Store
	db   *stickydb.DB
	rec  *Recovery
	logs *logBuf
	clk  *clock
	dir  string
}

// start opens dir and recovers into a fresh DB at the clock's time.
func start(t testing.TB, dir, name string, clk *clock, tweak func(*Config)) *node {
	t.Helper()
	n := &node{logs: &logBuf{}, clk: clk, dir: dir}
	lg := zerolog.New(n.logs)
	cfg := DefaultConfig(dir)
	cfg.Logger = &lg
	cfg.Now = clk.Now
	if tweak != nil {
		tweak(&cfg)
	}
	st, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.st = st
	n.db = newDB(t, name, clk.Now())
	n.rec, err = st.Recover(n.db, clk.Now())
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return n
}

// crash drops the Store the way a killed process does: the files are
// closed without a flush or a mark, the lock released.
func (n *node) crash() {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	if n.st.w != nil {
		n.st.w.f.Close()
		n.st.w = nil
	}
	n.st.closed = true
	n.st.lock.Close()
}

// key returns test key i; t may be nil (the child process of TestKillNine).
func key(t testing.TB, i int) stickydb.Key {
	ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	if i%5 == 0 {
		ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
	}
	k, err := stickydb.NewKey(ip, fmt.Sprintf("app%d.example", i%7))
	if err != nil {
		panic(err)
	}
	return k
}

// workload makes n own bindings with every kind of event: binds, then a
// rebind of every 7th, a delete of every 11th, a refresh of every 13th.
func workload(t testing.TB, db *stickydb.DB, clk *clock, from, n int) {
	t.Helper()
	replicas := []string{"r1", "r2", "r3"}
	for i := from; i < from+n; i++ {
		if _, _, err := db.BindIfAbsent(key(t, i), replicas[i%3], clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Second)
	for i := from; i < from+n; i++ {
		var err error
		switch {
		case i%7 == 0:
			_, _, err = db.Rebind(key(t, i), "", replicas[(i+1)%3], clk.Now())
		case i%11 == 0:
			_, err = db.Delete(key(t, i), clk.Now())
		case i%13 == 0:
			clk.Add(time.Millisecond)
			_, err = db.Refresh(key(t, i), clk.Now())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// peerGroup makes a change group of n binds by another origin.
func peerGroup(t testing.TB, origin string, epoch int64, from uint64, n int, now time.Time) stickydb.Group {
	t.Helper()
	g := stickydb.Group{Origin: origin, Epoch: epoch, From: from, To: from + uint64(n) - 1, Sender: origin,
		Vector: stickydb.Vector{origin: {{Epoch: epoch, Seq: from + uint64(n) - 1}}}}
	for i := range n {
		g.Events = append(g.Events, stickydb.Event{Seq: from + uint64(i), Kind: stickydb.KindBind, Key: key(t, 1_000_000+int(from)+i),
			Binding: stickydb.Binding{Replica: "p1", Expiry: now.Add(30 * time.Minute).UnixMilli(), Generation: 1, Origin: origin}})
	}
	return g
}

// table returns every live binding, tombstones included.
func table(t testing.TB, db *stickydb.DB, now time.Time) map[stickydb.Key]stickydb.Binding {
	t.Helper()
	m := map[stickydb.Key]stickydb.Binding{}
	if _, err := db.Snapshot(now, func(recs []stickydb.Record) error {
		for _, r := range recs {
			m[r.Key] = r.Binding
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// sameTable fails unless got holds exactly want.
func sameTable(t testing.TB, want, got map[stickydb.Key]stickydb.Binding) {
	t.Helper()
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if bad++; bad <= 5 {
				t.Errorf("%v: want %+v, got %+v (present %v)", k, w, g, ok)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 5 {
				t.Errorf("%v: unexpected %+v", k, g)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d bindings differ", bad, len(want))
	}
}

// noWrong fails if got holds a binding that want does not hold the same.
// Missing bindings are allowed: they come back from peers.
func noWrong(t testing.TB, want, got map[stickydb.Key]stickydb.Binding) {
	t.Helper()
	for k, g := range got {
		if w, ok := want[k]; !ok || w != g {
			t.Fatalf("wrong binding for %v: got %+v, truth %+v (present %v)", k, g, w, ok)
		}
	}
}
