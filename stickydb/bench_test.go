package stickydb

import (
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// benchKeys returns n distinct keys over a few hosts, as a real fleet sees.
func benchKeys(n int) []Key {
	hosts := []string{"shop.example.com", "api.example.com", "www.example.org", "cart.example.net"}
	keys := make([]Key, n)
	for i := range keys {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		keys[i], _ = NewKey(ip, hosts[i%len(hosts)])
	}
	return keys
}

// loadDB fills a DB with n bindings through MergeRecords (a full copy), the
// fastest way in; the hit path does not care how a binding arrived.
func loadDB(tb testing.TB, n int, now time.Time) (*DB, []Key) {
	tb.Helper()
	db, err := New(DefaultConfig("bench"), now)
	if err != nil {
		tb.Fatal(err)
	}
	keys := benchKeys(n)
	exp := now.Add(30 * time.Minute).UnixMilli()
	const batch = 10_000
	recs := make([]Record, 0, batch)
	for i, k := range keys {
		recs = append(recs, Record{Key: k, Binding: Binding{Replica: fmt.Sprintf("r%d", i%8), Expiry: exp, Generation: 1, Origin: fmt.Sprintf("n%d", i%5)}})
		if len(recs) == batch || i == len(keys)-1 {
			if _, err := db.MergeRecords(recs, now); err != nil {
				tb.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	return db, keys
}

// BenchmarkTouchHit is the request hot path at 1M bindings: a hit that
// extends the binding. Run with -cpu 1,2: throughput should grow with cores.
func BenchmarkTouchHit1M(b *testing.B) {
	now := t0
	db, keys := loadDB(b, 1_000_000, now)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919) * 104729 % uint64(len(keys)))
		for pb.Next() {
			if _, ok := db.Touch(keys[i], now); !ok {
				b.Fatal("miss")
			}
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
}

func BenchmarkBindIfAbsentMiss(b *testing.B) {
	now := t0
	db, _ := loadDB(b, 0, now)
	keys := benchKeys(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := db.BindIfAbsent(keys[i], "r1", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyGroup1000 receives change groups of 1,000 new bindings.
func BenchmarkApplyGroup1000(b *testing.B) {
	now := t0
	exp := now.Add(30 * time.Minute).UnixMilli()
	keys := benchKeys(1000 * 64)
	groups := make([]Group, 64)
	for gi := range groups {
		g := Group{Origin: "o", Epoch: 1, From: uint64(gi*1000 + 1), To: uint64(gi*1000 + 1000), Sender: "o"}
		for j := 0; j < 1000; j++ {
			g.Events = append(g.Events, Event{Seq: g.From + uint64(j), Kind: KindBind, Key: keys[gi*1000+j],
				Binding: Binding{Replica: "r1", Expiry: exp, Generation: 1, Origin: "o"}})
		}
		groups[gi] = g
	}
	b.ReportAllocs()
	b.ResetTimer()
	var db *DB
	for i := 0; i < b.N; i++ {
		if i%64 == 0 {
			b.StopTimer()
			db, _ = New(DefaultConfig("bench"), now)
			b.StartTimer()
		}
		g := groups[i%64]
		g.Events = append([]Event(nil), g.Events...)
		if res, err := db.Receive(g, now); err != nil || res.Applied != 1000 {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
}

// BenchmarkSnapshot1M walks 1M bindings (what a disk snapshot or a full
// copy reads); BenchmarkRestore1M merges them into an empty DB.
func BenchmarkSnapshot1M(b *testing.B) {
	now := t0
	db, _ := loadDB(b, 1_000_000, now)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		meta, err := db.Snapshot(now, func(r []Record) error { n += len(r); return nil })
		if err != nil || n != 1_000_000 || meta.Count != n {
			b.Fatal(err, n)
		}
	}
}

func BenchmarkRestore1M(b *testing.B) {
	now := t0
	src, _ := loadDB(b, 1_000_000, now)
	var recs []Record
	src.Snapshot(now, func(r []Record) error { recs = append(recs, r...); return nil })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		db, _ := New(DefaultConfig("bench"), now)
		db.Reserve(len(recs))
		if _, err := db.MergeRecords(recs, now); err != nil {
			b.Fatal(err)
		}
		if db.Len() != len(recs) {
			b.Fatal("short")
		}
	}
}

// BenchmarkHeapPerBinding reports heap bytes per live binding at 1M
// (runtime.MemStats after GC), the table's memory cost.
func BenchmarkHeapPerBinding1M(b *testing.B) {
	keys := benchKeys(1_000_000) // made before the count: the hosts are shared literals
	heapPerBinding(b, len(keys), func(j int) Key { return keys[j] })
}

// BenchmarkHeapPerBindingLongHost is BenchmarkHeapPerBinding1M's cost for
// a Host flood's bindings: 200,000 distinct 253-byte Hosts (the longest a
// DNS name can be). The table keeps each key's Host, so a binding costs
// its length more; the per-source quota bounds how many one address makes.
func BenchmarkHeapPerBindingLongHost(b *testing.B) {
	label := strings.Repeat("x", 60)
	heapPerBinding(b, 200_000, func(j int) Key {
		// Made during the count and kept by nothing but the table, so the
		// Hosts' bytes count.
		host := fmt.Sprintf("%09d.%s.%s.%s.%s", j, label, label, label, label) // 253 bytes
		k, err := NewKey(netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}), host)
		if err != nil {
			b.Fatal(err)
		}
		return k
	})
}

// heapPerBinding merges n bindings, key(j) each, into a new table and
// reports the heap it grew by per live binding, after GC.
func heapPerBinding(b *testing.B, n int, key func(j int) Key) {
	for i := 0; i < b.N; i++ {
		now := t0
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		db, _ := New(DefaultConfig("bench"), now)
		exp := now.Add(30 * time.Minute).UnixMilli()
		recs := make([]Record, 1)
		for j := 0; j < n; j++ {
			recs[0] = Record{Key: key(j), Binding: Binding{Replica: fmt.Sprintf("r%d", j%8), Expiry: exp, Generation: 1, Origin: "n1"}}
			db.MergeRecords(recs, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(db.Len()), "B/binding")
		runtime.KeepAlive(db)
	}
}

// BenchmarkMemoryLatency is the machine's floor for BenchmarkTouchHit1M:
// one dependent read at a random cache line of a 64 MB Go heap slice (about
// the size of a 1M-binding table), as a pointer chase so reads cannot
// overlap. A hit at 1M needs at least one such read (the map slot); its
// ns/op over this one's is the figure to compare across machines.
func BenchmarkMemoryLatency(b *testing.B) {
	const lines = 64 << 20 / 64
	next := make([]uint64, lines*8) // one word used per 64-byte line
	perm := mrand.New(mrand.NewPCG(1, 2)).Perm(lines)
	for i, l := range perm {
		next[l*8] = uint64(perm[(i+1)%lines] * 8)
	}
	p := uint64(perm[0] * 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p = next[p]
	}
	sink = p
}

var sink uint64

// BenchmarkEventLogSteady is one origin's change log table at its cap
// (ChangeLogTableCap, 1,000 by default): trimmed at the front by the cap
// and appended at the back, one event at a time, as a node applies the
// origin's pushed events.
func BenchmarkEventLogSteady(b *testing.B) {
	const capacity = 1000
	l := newEventLog(capacity, newNames())
	var next uint64
	ev := make([]Event, 1)
	add := func() {
		next++
		ev[0] = Event{Seq: next}
		l.add(1, ev)
	}
	for range 4 * capacity {
		add()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		add()
	}
}
