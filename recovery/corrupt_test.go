package recovery

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// fixture is a data directory written by node "a" that then crashed (no
// Close), with the truth to check a recovery against.
type fixture struct {
	dir       string
	clk       *clock
	epoch     int64
	events    []stickydb.Event                             // every own event, in order
	snapTable map[uint64]map[stickydb.Key]stickydb.Binding // table at each snapshot, by index
}

// makeFixture writes 4 rounds of own events, one flush each, with a
// snapshot after each of the first `snaps` rounds (and another origin's
// bindings in them). A small segBytes makes a segment per round.
func makeFixture(t *testing.T, snaps int, segBytes int64) fixture {
	return makeFixtureWith(t, snaps, func(c *Config) {
		if segBytes > 0 {
			c.SegmentBytes = segBytes
		}
	})
}

func makeFixtureWith(t *testing.T, snaps int, tweak func(*Config)) fixture {
	t.Helper()
	f := fixture{dir: t.TempDir(), clk: newClock(t0), snapTable: map[uint64]map[stickydb.Key]stickydb.Binding{}}
	a := start(t, f.dir, "a", f.clk, tweak)
	if err := a.rec.Reconcile(f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if snaps > 0 {
		if _, err := a.db.Receive(peerGroup(t, "b", t0.Add(-time.Hour).UnixMilli(), 1, 200, f.clk.Now()), f.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 4 {
		workload(t, a.db, f.clk, round*300, 300)
		if _, err := a.st.Flush(); err != nil {
			t.Fatal(err)
		}
		if round < snaps {
			info, err := a.st.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			f.snapTable[info.Index] = table(t, a.db, f.clk.Now())
		}
	}
	a.crash()
	g := a.db.Unpersisted(0, 1<<30)
	f.epoch, f.events = g.Epoch, g.Events
	f.clk.Add(10 * time.Second)
	return f
}

// truth is what a recovery that kept own events (lo, n] on top of the
// snapshot `snap` (0: none) must hold: built in a fresh DB straight from
// the recorded events, not through any file.
func (f fixture) truth(t *testing.T, snap uint64, lo, n uint64) map[stickydb.Key]stickydb.Binding {
	t.Helper()
	ref := newDB(t, "a", f.clk.Now())
	var recs []stickydb.Record
	for k, b := range f.snapTable[snap] {
		recs = append(recs, stickydb.Record{Key: k, Binding: b})
	}
	for _, ev := range f.events {
		if ev.Seq > lo && ev.Seq <= n {
			recs = append(recs, stickydb.Record{Key: ev.Key, Binding: ev.Binding})
		}
	}
	if _, err := ref.MergeRecords(recs, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	return table(t, ref, f.clk.Now())
}

// frame is one frame of a file, for aiming damage.
type frame struct {
	off, size int64
	typ       uint64
	seq       uint64 // events only
}

func frames(t *testing.T, path string) []frame {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []frame
	for off := int64(magicLen); off < int64(len(data)); {
		n := int64(binary.LittleEndian.Uint32(data[off:]))
		fr := frame{off: off, size: frameHeader + n}
		var rec walRecord
		body := data[off+frameHeader : off+frameHeader+n]
		if strings.HasSuffix(path, walSuffix) {
			if err := decodeWAL(body, "a", &rec); err != nil {
				t.Fatalf("fixture frame at %d: %v", off, err)
			}
			fr.typ, fr.seq = rec.typ, rec.event.Seq
		} else {
			r := mpReader{b: body}
			r.arrayLen()
			fr.typ = r.uint()
		}
		out = append(out, fr)
		off += fr.size
	}
	return out
}

// eventFrame returns the i-th event frame of a segment (negative: from the end).
func eventFrame(t *testing.T, path string, i int) frame {
	t.Helper()
	var evs []frame
	for _, fr := range frames(t, path) {
		if fr.typ == typeEvent {
			evs = append(evs, fr)
		}
	}
	if i < 0 {
		i += len(evs)
	}
	return evs[i]
}

func seg(f fixture, i uint64) string  { return filepath.Join(f.dir, segName(i)) }
func snap(f fixture, i uint64) string { return filepath.Join(f.dir, snapName(i)) }

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x5a
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestDamage: every kind of damage to log and snapshot files starts with a
// warning, no panic, a new epoch, and a table that holds exactly the
// bindings of the events before the damage (so never a wrong one), with
// the bad bytes kept aside. A second restart then finds a clean directory.
func TestDamage(t *testing.T) {
	type want struct {
		warn string // in a warning
		mode Mode
		snap uint64 // snapshot used (0: none)
	}
	lastSeq := func(f fixture) uint64 { return f.events[len(f.events)-1].Seq }
	cases := []struct {
		name   string
		snaps  int
		segs   int64                                        // SegmentBytes; 0: default
		damage func(t *testing.T, f fixture) (lo, n uint64) // returns what must be kept
		want   want
	}{
		{"record cut mid-way", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fr := eventFrame(t, seg(f, 1), -1)
			truncate(t, seg(f, 1), fr.off+fr.size/2)
			return 0, fr.seq - 1
		}, want{warn: "torn record", mode: ModeShort}},
		{"frame header cut", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fr := eventFrame(t, seg(f, 1), -1)
			truncate(t, seg(f, 1), fr.off+3)
			return 0, fr.seq - 1
		}, want{warn: "frame header cut", mode: ModeShort}},
		{"flipped byte in body", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fr := eventFrame(t, seg(f, 1), 500)
			flip(t, seg(f, 1), fr.off+frameHeader+fr.size/3)
			return 0, fr.seq - 1
		}, want{warn: "checksum", mode: ModeShort}},
		{"flipped byte in CRC", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fr := eventFrame(t, seg(f, 1), 200)
			flip(t, seg(f, 1), fr.off+5)
			return 0, fr.seq - 1
		}, want{warn: "checksum", mode: ModeShort}},
		{"flipped byte in length", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fr := eventFrame(t, seg(f, 1), 300)
			flip(t, seg(f, 1), fr.off)
			return 0, fr.seq - 1
		}, want{warn: "corrupt record", mode: ModeShort}},
		{"huge length field", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fr := eventFrame(t, seg(f, 1), 10)
			data, _ := os.ReadFile(seg(f, 1))
			binary.LittleEndian.PutUint32(data[fr.off:], 0xfffffff0)
			os.WriteFile(seg(f, 1), data, 0o600)
			return 0, fr.seq - 1
		}, want{warn: "over the limit", mode: ModeShort}},
		{"zero-filled tail", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fh, _ := os.OpenFile(seg(f, 1), os.O_APPEND|os.O_WRONLY, 0)
			fh.Write(make([]byte, 4096))
			fh.Close()
			return 0, lastSeq(f)
		}, want{warn: "zero length", mode: ModeShort}},
		{"zero-length log segment", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			truncate(t, seg(f, 1), 0)
			return 0, 0
		}, want{warn: "empty file", mode: ModeLong}},
		{"log segment header damaged", 0, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			flip(t, seg(f, 1), magicLen+frameHeader+2)
			return 0, 0
		}, want{warn: "unreadable", mode: ModeLong}},
		{"zero-length snapshot", 1, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			truncate(t, snap(f, 2), 0)
			return baseOf(t, seg(f, 2)), lastSeq(f)
		}, want{warn: "snapshot ignored", mode: ModeLong}},
		{"snapshot with a bad chunk", 1, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			fr := frames(t, snap(f, 2))[0]
			flip(t, snap(f, 2), fr.off+fr.size/2)
			return baseOf(t, seg(f, 2)), lastSeq(f)
		}, want{warn: "snapshot ignored", mode: ModeLong}},
		{"snapshot cut mid-way", 1, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			truncate(t, snap(f, 2), fileSize(t, snap(f, 2))*2/3)
			return baseOf(t, seg(f, 2)), lastSeq(f)
		}, want{warn: "snapshot ignored", mode: ModeLong}},
		{"snapshot trailer lost", 1, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			frs := frames(t, snap(f, 2))
			truncate(t, snap(f, 2), frs[len(frs)-1].off)
			return baseOf(t, seg(f, 2)), lastSeq(f)
		}, want{warn: "no trailer", mode: ModeLong}},
		{"newest snapshot bad, older one used", 2, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			flip(t, snap(f, 3), magicLen+frameHeader+4)
			return 0, lastSeq(f)
		}, want{warn: "snapshot ignored", mode: ModeShort, snap: 2}},
		{"snapshot's log segment missing", 2, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			os.Remove(seg(f, 3))
			return 0, 0
		}, want{warn: "missing", mode: ModeShort, snap: 3}},
		{"middle log segment missing", 0, 4096, func(t *testing.T, f fixture) (uint64, uint64) {
			n := baseOf(t, seg(f, 2))
			os.Remove(seg(f, 2))
			return 0, n
		}, want{warn: "missing", mode: ModeShort}},
		{"middle log segment empty", 0, 4096, func(t *testing.T, f fixture) (uint64, uint64) {
			n := baseOf(t, seg(f, 3))
			truncate(t, seg(f, 3), 0)
			return 0, n
		}, want{warn: "empty file", mode: ModeShort}},
		{"torn tail after a fallback snapshot", 2, 0, func(t *testing.T, f fixture) (uint64, uint64) {
			flip(t, snap(f, 3), magicLen+frameHeader+4)
			fr := eventFrame(t, seg(f, 3), -1)
			truncate(t, seg(f, 3), fr.off+fr.size-1)
			return 0, fr.seq - 1
		}, want{warn: "torn record", mode: ModeShort, snap: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // mostly fsync waits
			f := makeFixture(t, tc.snaps, tc.segs)
			lo, n := tc.damage(t, f)
			b := start(t, f.dir, "a", f.clk, nil)
			rep := b.rec.Report
			warns := strings.Join(b.logs.lines("warn"), "\n")
			if !strings.Contains(warns, tc.want.warn) {
				t.Fatalf("warnings %q lack %q", warns, tc.want.warn)
			}
			if len(rep.Problems) == 0 || !rep.NewEpoch || rep.Mode != tc.want.mode {
				t.Fatalf("report: mode %v (want %v), new epoch %v, problems %q", rep.Mode, tc.want.mode, rep.NewEpoch, rep.Problems)
			}
			if e, s := b.db.Position(); e <= f.epoch || s != 0 {
				t.Fatalf("position (%d, %d) after damage, old epoch %d", e, s, f.epoch)
			}
			if want := snapPath(f, tc.want.snap); rep.Snapshot != want {
				t.Fatalf("snapshot %q, want %q", rep.Snapshot, want)
			}
			// Own events kept: exactly those up to n.
			var last uint64
			if g := b.rec.OwnEvents(); len(g) > 0 {
				last = g[len(g)-1].To
			}
			if last != n && !(n == 0 && last == 0) {
				t.Fatalf("log kept own events up to %d, want %d", last, n)
			}
			if b.db.Vector().Get("a", f.epoch) < n {
				t.Fatalf("vector %v does not count the kept events up to %d", b.db.Vector(), n)
			}
			if rep.Mode == ModeLong {
				if err := b.rec.Reconcile(f.clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
			sameTable(t, f.truth(t, tc.want.snap, lo, n), table(t, b.db, f.clk.Now()))
			for _, p := range rep.KeptAside {
				if _, err := os.Stat(p); err != nil {
					t.Fatalf("kept-aside file: %v", err)
				}
			}

			// The directory is clean now: a restart finds no problem and the same table.
			workload(t, b.db, f.clk, 5000, 50)
			if _, err := b.st.Flush(); err != nil {
				t.Fatal(err)
			}
			before := table(t, b.db, f.clk.Now())
			if err := b.st.Close(); err != nil {
				t.Fatal(err)
			}
			c := start(t, f.dir, "a", f.clk, nil)
			defer c.st.Close()
			if len(c.rec.Problems) != 0 || c.rec.NewEpoch {
				t.Fatalf("second restart: problems %q", c.rec.Problems)
			}
			if c.rec.Mode == ModeShort {
				sameTable(t, before, table(t, c.db, f.clk.Now()))
			} else {
				noWrong(t, before, table(t, c.db, f.clk.Now()))
			}
		})
	}
}

func snapPath(f fixture, i uint64) string {
	if i == 0 {
		return ""
	}
	return snap(f, i)
}

// baseOf reads a segment header's base.
func baseOf(t *testing.T, path string) uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec walRecord
	n := binary.LittleEndian.Uint32(data[magicLen:])
	if err := decodeWAL(data[magicLen+frameHeader:magicLen+frameHeader+int(n)], "", &rec); err != nil {
		t.Fatal(err)
	}
	return rec.header.Base
}

// TestSnapshotChunkThatDoesNotDecode: a chunk whose checksum is right but
// whose content is not (a writer bug, or a CRC collision) spoils only
// itself: the other chunks load, the vector claims only the own position,
// and the node takes the database from a peer (ModeLong, new epoch).
func TestSnapshotChunkThatDoesNotDecode(t *testing.T) {
	f := makeFixtureWith(t, 1, func(c *Config) { c.ChunkRecords = 50 })
	path := snap(f, 2)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fr := frames(t, path)[0]
	body := data[fr.off+frameHeader : fr.off+fr.size]
	r, _, names, _, _ := chunkHead(body, nil)
	// First record: array header, bin header, address, then the host index.
	at := r.i + 1
	at += 2 + int(body[at+1])
	if int(body[at]) >= len(names) || body[at] > 0x7f {
		t.Fatalf("fixture: host index byte %#x", body[at])
	}
	body[at] = 0x7f // a valid integer, an index out of range
	sealFrame(data[:fr.off+fr.size], int(fr.off))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	b := start(t, f.dir, "a", f.clk, nil)
	defer b.st.Close()
	rep := b.rec.Report
	if rep.Mode != ModeLong || !rep.NewEpoch || rep.Loaded == 0 || !strings.Contains(strings.Join(b.logs.lines("warn"), "\n"), "did not decode") {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := b.db.Vector()["b"]; ok {
		t.Fatalf("vector %v claims the other origin's events", b.db.Vector())
	}
	noWrong(t, f.truth(t, 2, 0, f.events[len(f.events)-1].Seq), table(t, b.db, f.clk.Now()))
}
