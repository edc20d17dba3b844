package recovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tetherproxy/tether/stickydb"
)

// FuzzScanSegment feeds arbitrary bytes to the log reader as a segment
// file. It must never panic, never hand out an event that breaks the
// numbering, and the prefix it calls good must read back cleanly with the
// same events: that prefix is what Recover keeps when it cuts.
// The seed corpus (testdata/fuzz/FuzzScanSegment) holds real segments,
// whole and damaged; `go test -fuzz FuzzScanSegment` explores from there.
func FuzzScanSegment(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := scanSegment(bytes.NewReader(data), int64(len(data)), "a", 1)
		if err != nil {
			if !errors.Is(err, ErrWrongNode) {
				t.Fatalf("error %v: only ErrWrongNode may stop a scan of bytes in memory", err)
			}
			return
		}
		if sc.good < 0 || sc.good > int64(len(data)) {
			t.Fatalf("good offset %d outside %d bytes", sc.good, len(data))
		}
		for i, ev := range sc.events {
			if ev.Seq != sc.header.Base+uint64(i)+1 || !ev.Key.Valid() {
				t.Fatalf("event %d: %+v after base %d", i, ev, sc.header.Base)
			}
		}
		if sc.problem == nil {
			if sc.good != int64(len(data)) {
				t.Fatalf("clean scan stopped at %d of %d", sc.good, len(data))
			}
			return
		}
		if !errors.Is(sc.problem, errTorn) && !errors.Is(sc.problem, errCorrupt) {
			t.Fatalf("problem %v is neither torn nor corrupt", sc.problem)
		}
		if sc.good <= magicLen {
			return // nothing readable: Recover sets the file aside whole
		}
		again, err := scanSegment(bytes.NewReader(data[:sc.good]), sc.good, "a", 1)
		if err != nil || again.problem != nil || len(again.events) != len(sc.events) {
			t.Fatalf("the kept prefix of %d bytes reads back with %v, %v, %d events (want %d)",
				sc.good, err, again.problem, len(again.events), len(sc.events))
		}
	})
}

// FuzzVerifySnapshot feeds arbitrary bytes to the snapshot reader. It must
// never panic, and a file it passes must decode chunk by chunk into valid
// records.
func FuzzVerifySnapshot(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		info, problem, err := verifySnapshot(bytes.NewReader(data), int64(len(data)), "a", 2)
		if err != nil || problem != nil {
			return
		}
		fr := newFrameReader(bytes.NewReader(data[magicLen:]), magicLen, int64(len(data)), maxSnapBody)
		n := 0
		for {
			body, err := fr.next()
			if err != nil {
				t.Fatalf("frame after a clean verify: %v", err)
			}
			recs, _, err := decodeChunk(body, nil, nil)
			if err != nil {
				if r := (mpReader{b: body}); r.arrayLen() > 0 && r.uint() == typeTrailer {
					break
				}
				// A chunk that checks out but does not decode: loadSnapshot
				// reports it and loads the others. Still no panic.
				continue
			}
			for _, r := range recs {
				if !r.Key.Valid() || r.Binding.Origin == "" || (!r.Binding.Deleted && r.Binding.Replica == "") {
					t.Fatalf("invalid record %+v", r)
				}
			}
			n += len(recs)
		}
		if n > info.meta.Count {
			t.Fatalf("%d records decoded, trailer counts %d", n, info.meta.Count)
		}
	})
}

// TestWriteFuzzSeeds rewrites the seed corpora from real files. Run it with
// TETHER_WRITE_FUZZ_SEEDS=1 after a format change; otherwise it checks
// that the committed seeds are there.
func TestWriteFuzzSeeds(t *testing.T) {
	segSeeds, snapSeeds := fuzzSeeds(t)
	// The whole seeds must be good files, or the corpus explores nothing useful.
	w := segSeeds["whole"]
	if sc, err := scanSegment(bytes.NewReader(w), int64(len(w)), "a", 1); err != nil || sc.problem != nil || len(sc.events) < 12 || !sc.closed {
		t.Fatalf("whole segment seed: %v %v, %d events", err, sc.problem, len(sc.events))
	}
	w = snapSeeds["whole"]
	if info, problem, err := verifySnapshot(bytes.NewReader(w), int64(len(w)), "a", 2); err != nil || problem != nil || info.meta.Count < 12 {
		t.Fatalf("whole snapshot seed: %v %v, %d records", err, problem, info.meta.Count)
	}
	write := os.Getenv("TETHER_WRITE_FUZZ_SEEDS") == "1"
	for target, seeds := range map[string]map[string][]byte{"FuzzScanSegment": segSeeds, "FuzzVerifySnapshot": snapSeeds} {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seeds {
			path := filepath.Join(dir, name)
			if !write {
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("seed %s missing (run with TETHER_WRITE_FUZZ_SEEDS=1): %v", path, err)
				}
				continue
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fuzzSeeds writes a small log and snapshot through the real Store and
// derives damaged variants from them.
func fuzzSeeds(t *testing.T) (map[string][]byte, map[string][]byte) {
	dir := t.TempDir()
	clk := newClock(t0)
	a := start(t, dir, "a", clk, nil)
	if err := a.rec.Reconcile(clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Receive(peerGroup(t, "b", t0.UnixMilli()-1000, 1, 3, clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	workload(t, a.db, clk, 0, 12)
	if _, err := a.st.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	workload(t, a.db, clk, 100, 12)
	if _, err := a.db.Delete(key(t, 101), clk.Now()); err != nil && !errors.Is(err, stickydb.ErrNotFound) {
		t.Fatal(err)
	}
	if err := a.st.heartbeat(clk.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	// Snapshot 2 covers segments before 2; segment 2 holds the rest. Its
	// header names segment 2, so re-number for the fuzz target's index 1.
	seg2, err := os.ReadFile(filepath.Join(dir, segName(2)))
	if err != nil {
		t.Fatal(err)
	}
	segData := renumberSegment(t, seg2, 1)
	snapData, err := os.ReadFile(filepath.Join(dir, snapName(2)))
	if err != nil {
		t.Fatal(err)
	}
	damage := func(data []byte) map[string][]byte {
		m := map[string][]byte{"whole": data, "empty": {}, "magic-only": data[:magicLen]}
		for i, cut := range []int{len(data) - 1, len(data) / 2, magicLen + 3} {
			m[fmt.Sprintf("cut-%d", i)] = data[:cut]
		}
		for i, at := range []int{magicLen, magicLen + 5, magicLen + 12, len(data) / 2, len(data) - 2} {
			d := bytes.Clone(data)
			d[at] ^= 0xff
			m[fmt.Sprintf("flip-%d", i)] = d
		}
		m["zero-tail"] = append(bytes.Clone(data), make([]byte, 64)...)
		return m
	}
	return damage(segData), damage(snapData)
}

// renumberSegment rewrites the header of a segment to say index i.
func renumberSegment(t *testing.T, data []byte, i uint64) []byte {
	sc, err := scanSegment(bytes.NewReader(data), int64(len(data)), "a", 2)
	if err != nil || sc.problem != nil {
		t.Fatalf("seed segment: %v %v", err, sc.problem)
	}
	h := sc.header
	h.Index = i
	fb := newFrameBuf()
	fb.buf.WriteString(walMagic)
	fb.header(h)
	hdrLen := int(uint32(data[magicLen]) | uint32(data[magicLen+1])<<8 | uint32(data[magicLen+2])<<16 | uint32(data[magicLen+3])<<24)
	return append(fb.bytes(), data[magicLen+frameHeader+hdrLen:]...)
}
