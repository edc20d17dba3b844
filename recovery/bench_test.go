package recovery

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/stickydb"
	"github.com/vmihailenco/msgpack/v5"
)

// benchKey spreads keys over 10 hosts and a large IPv4 space (1 in 8 IPv6).
func benchKey(i int) stickydb.Key {
	ip := netip.AddrFrom4([4]byte{10 + byte(i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
	if i%8 == 0 {
		ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
	}
	k, err := stickydb.NewKey(ip, fmt.Sprintf("shop%d.example.com", i%10))
	if err != nil {
		panic(err)
	}
	return k
}

// fillDB gives db n bindings as a fleet of four makes them: a quarter its
// own (through BindIfAbsent, so also own events), the rest from three
// peers (through MergeRecords, as a full copy would bring them).
func fillDB(b *testing.B, db *stickydb.DB, n int, now time.Time) {
	b.Helper()
	replicas := []string{"web-1", "web-2", "web-3", "web-4", "web-5"}
	peers := []string{"node-b", "node-c", "node-d"}
	recs := make([]stickydb.Record, 0, 4096)
	exp := now.Add(20 * time.Minute).UnixMilli()
	for i := range n {
		k := benchKey(i)
		if i%4 == 0 {
			if _, _, err := db.BindIfAbsent(k, replicas[i%5], now); err != nil {
				b.Fatal(err)
			}
			continue
		}
		recs = append(recs, stickydb.Record{Key: k, Binding: stickydb.Binding{Replica: replicas[i%5], Expiry: exp, Generation: 1, Origin: peers[i%3]}})
		if len(recs) == cap(recs) {
			if _, err := db.MergeRecords(recs, now); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if _, err := db.MergeRecords(recs, now); err != nil {
		b.Fatal(err)
	}
}

func benchDB(b *testing.B, now time.Time) *stickydb.DB {
	cfg := stickydb.DefaultConfig("node-a")
	cfg.Durable = true
	db, err := stickydb.New(cfg, now)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkRecover is the time from a stopped node to a ready DB from
// local disk (ModeShort): Open, a fresh DB, Recover (verify the snapshot,
// load it, replay the log tail, start a segment), with n bindings in the
// snapshot and 10,000 own events in the log after it.
func BenchmarkRecover(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			now := t0
			st, err := Open(Config{Dir: dir, Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			db := benchDB(b, now)
			if _, err := st.Recover(db, now); err != nil {
				b.Fatal(err)
			}
			fillDB(b, db, n, now)
			st.pending = false
			if _, err := st.Snapshot(context.Background()); err != nil {
				b.Fatal(err)
			}
			for i := range 10_000 {
				if _, _, err := db.Rebind(benchKey(4*i), "", "web-9", now); err != nil {
					b.Fatal(err)
				}
			}
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				st, err := Open(Config{Dir: dir, Now: func() time.Time { return now }})
				if err != nil {
					b.Fatal(err)
				}
				db := benchDB(b, now)
				rec, err := st.Recover(db, now.Add(time.Minute))
				if err != nil {
					b.Fatal(err)
				}
				if rec.Mode != ModeShort || db.Len() != n || rec.LogEvents < 10_000 {
					b.Fatalf("report %+v, %d bindings", rec.Report, db.Len())
				}
				b.StopTimer()
				st.Close()
				b.StartTimer()
			}
			// CPU time says what the wall time would be on an idle machine
			// better than the wall time on a shared one does.
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(n)/(b.Elapsed().Seconds()/float64(b.N)), "bindings/s")
		})
	}
}

// BenchmarkSnapshotWrite is one Snapshot of a DB of a million bindings:
// flush, new segment, walk, encode, write, fsync, rename, prune.
func BenchmarkSnapshotWrite(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	now := t0
	st, err := Open(Config{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	db := benchDB(b, now)
	if _, err := st.Recover(db, now); err != nil {
		b.Fatal(err)
	}
	st.pending = false
	fillDB(b, db, n, now)
	var info SnapshotInfo
	b.ResetTimer()
	for b.Loop() {
		if info, err = st.Snapshot(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(info.Bytes)/n, "bytes/binding")
	b.ReportMetric(float64(info.Bytes)/(1<<20), "MiB")
}

// BenchmarkAppend is log throughput with an fsync per flush, at flush
// sizes of 1, 100 and 1000 events (gossip flushes before each push, so a
// busy node flushes many events at a time, a quiet one few). Each
// operation makes the events (BindIfAbsent) and flushes them.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("flush=%d", size), func(b *testing.B) {
			now := t0
			lg := zerolog.Nop()
			st, err := Open(Config{Dir: b.TempDir(), Now: func() time.Time { return now }, Logger: &lg})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			db := benchDB(b, now)
			if _, err := st.Recover(db, now); err != nil {
				b.Fatal(err)
			}
			keys := make([]stickydb.Key, 200_000)
			for i := range keys {
				keys[i] = benchKey(i)
			}
			next := 0
			names := []string{"web-0", "web-1"}
			b.ResetTimer()
			for b.Loop() {
				for range size {
					if _, _, err := db.Rebind(keys[next%len(keys)], "", names[next%2], now); err != nil {
						b.Fatal(err)
					}
					next++
				}
				if _, err := st.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// chunkBody returns one snapshot chunk of 4096 records.
func chunkBody(b *testing.B) []byte {
	var buf bytes.Buffer
	enc := newSnapEncoder(&buf, 4096, t0.UnixMilli())
	recs := make([]stickydb.Record, 4096)
	for i := range recs {
		recs[i] = stickydb.Record{Key: benchKey(i), Binding: stickydb.Binding{Replica: "web-1", Expiry: t0.UnixMilli() + 1e6, Generation: 1, Origin: "node-b"}}
	}
	if err := enc.add(recs); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()[frameHeader:]
}

// BenchmarkDecodeChunk compares mpReader with vmihailenco's Decoder on
// one chunk (4096 records), decoding the same fields, without building
// keys: the reason mpReader exists.
func BenchmarkDecodeChunk(b *testing.B) {
	body := chunkBody(b)
	b.Run("mpReader", func(b *testing.B) {
		for b.Loop() {
			r, _, _, count, _ := chunkHead(body, nil)
			var sum int64
			for ; count > 0; count-- {
				r.arrayLen()
				sum += int64(len(r.raw())) + int64(r.uint())
				if !r.nilNext() {
					sum += int64(r.uint())
				}
				sum += r.int() + int64(r.uint()) + int64(r.uint())
				r.bool()
			}
			if r.err != nil || sum == 0 {
				b.Fatal(r.err)
			}
		}
	})
	b.Run("vmihailenco", func(b *testing.B) {
		d := msgpack.NewDecoder(nil)
		br := bytes.NewReader(nil)
		for b.Loop() {
			br.Reset(body)
			d.Reset(br)
			d.DecodeArrayLen()
			d.DecodeUint64()
			d.DecodeInt64()
			nn, _ := d.DecodeArrayLen()
			for range nn {
				d.DecodeString()
			}
			count, _ := d.DecodeArrayLen()
			var sum int64
			for ; count > 0; count-- {
				d.DecodeArrayLen()
				ip, _ := d.DecodeBytes()
				h, _ := d.DecodeUint64()
				sum += int64(len(ip)) + int64(h)
				if c, _ := d.PeekCode(); c == 0xc0 {
					d.DecodeNil()
				} else {
					r, _ := d.DecodeUint64()
					sum += int64(r)
				}
				e, _ := d.DecodeInt64()
				g, _ := d.DecodeUint64()
				o, err := d.DecodeUint64()
				d.DecodeBool()
				if err != nil {
					b.Fatal(err)
				}
				sum += e + int64(g) + int64(o)
			}
			if sum == 0 {
				b.Fatal("nothing decoded")
			}
		}
	})
}

// BenchmarkMergeRecords is the core's share of a snapshot load: merging
// 4096 decoded records into a DB, per chunk (fresh keys each time until
// the DB holds a million).
func BenchmarkMergeRecords(b *testing.B) {
	const n = 1 << 20
	all := make([]stickydb.Record, n)
	for i := range all {
		all[i] = stickydb.Record{Key: benchKey(i), Binding: stickydb.Binding{Replica: "web-1", Expiry: t0.UnixMilli() + 1e6, Generation: 1, Origin: "node-b"}}
	}
	recs := make([]stickydb.Record, 4096)
	db := benchDB(b, t0)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		if i+len(recs) > n {
			b.StopTimer()
			db, i = benchDB(b, t0), 0
			b.StartTimer()
		}
		copy(recs, all[i:])
		i += len(recs)
		if _, err := db.MergeRecords(recs, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// cpuTime is the process's user + system CPU time so far (all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
