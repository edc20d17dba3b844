package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tetherproxy/tether/recovery"
	"github.com/tetherproxy/tether/stickydb"
)

// TableResult is one table size's figures on one node.
type TableResult struct {
	Bindings       int     `json:"bindings"`
	FillSec        float64 `json:"fill_s"`
	HeapBytes      uint64  `json:"heap_bytes"` // HeapAlloc after GC, minus before
	BytesPerBind   float64 `json:"heap_bytes_per_binding"`
	RSSMiB         float64 `json:"rss_mib"`
	SnapshotSec    float64 `json:"snapshot_write_s"`
	SnapshotMiB    float64 `json:"snapshot_mib"`
	RecoverSec     float64 `json:"recover_s"`
	Recovered      int     `json:"recovered"`
	FindPageMs     float64 `json:"find_first_page_ms"` // host + replica filter, 100 rows
	FindScanMs     float64 `json:"find_no_match_ms"`   // client prefix matching nothing: a full scan
	FindScanned    int     `json:"find_no_match_scanned"`
	OpP50us        float64 `json:"op_p50_us"` // Touch/BindIfAbsent under a proxy-like load
	OpP99us        float64 `json:"op_p99_us"`
	OpP999us       float64 `json:"op_p999_us"`
	OpMaxus        float64 `json:"op_max_us"`
	Ops            int     `json:"ops"`
	GCs            uint32  `json:"gcs"`
	GCPauseMaxMs   float64 `json:"gc_pause_max_ms"`
	GCPauseTotalMs float64 `json:"gc_pause_total_ms"`
}

var tableHosts = func() []string {
	h := make([]string, 32)
	for i := range h {
		h[i] = fmt.Sprintf("shop%d.example.com", i)
	}
	return h
}()

func tableKey(i int) stickydb.Key {
	// Spread over 10.0.0.0/8 and 11.0.0.0/8: 2^25 distinct addresses.
	k, _ := stickydb.NewKey(netip.AddrFrom4([4]byte{10 + byte(i>>24&1), byte(i >> 16), byte(i >> 8), byte(i)}), tableHosts[i%len(tableHosts)])
	return k
}

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func durableDB(size int) (*stickydb.DB, error) {
	dc := stickydb.DefaultConfig("n0")
	dc.Durable = true
	dc.MaxBindings = max(dc.MaxBindings, size)
	dc.MaxBindingsPerOrigin = max(dc.MaxBindingsPerOrigin, size)
	return stickydb.New(dc, time.Now())
}

func runTable(size int, dir string, opDur time.Duration, logf func(string, ...any)) (TableResult, error) {
	r := TableResult{Bindings: size}
	before := heapAfterGC()
	db, err := durableDB(size)
	if err != nil {
		return r, err
	}
	lg := zerolog.Nop()
	st, err := recovery.Open(recovery.Config{Dir: dir, Logger: &lg})
	if err != nil {
		return r, err
	}
	now := time.Now()
	rec, err := st.Recover(db, now)
	if err != nil {
		return r, err
	}
	if err := rec.ReconcileLocal(now); err != nil {
		return r, err
	}
	// Fill as a full copy from a peer would: records of another origin.
	t0 := time.Now()
	exp := now.Add(20 * time.Minute).UnixMilli()
	recs := make([]stickydb.Record, 0, 8192)
	for i := 0; i < size; i++ {
		recs = append(recs, stickydb.Record{Key: tableKey(i), Binding: stickydb.Binding{Replica: replicas[i%4], Expiry: exp, Generation: 1, Origin: "n1"}})
		if len(recs) == cap(recs) || i == size-1 {
			if _, err := db.MergeRecords(recs, now); err != nil {
				return r, err
			}
			recs = recs[:0]
		}
	}
	recs = nil
	r.FillSec = time.Since(t0).Seconds()
	if db.Len() != size {
		return r, fmt.Errorf("filled %d of %d", db.Len(), size)
	}
	after := heapAfterGC()
	r.HeapBytes = after - before
	r.BytesPerBind = float64(after-before) / float64(size)
	r.RSSMiB = rssMiB()
	logf("table %d: filled in %.1fs, %.1f B/binding heap, RSS %.0f MiB", size, r.FillSec, r.BytesPerBind, r.RSSMiB)

	// Admin search.
	q := stickydb.Query{Host: tableHosts[3], Replica: replicas[3], Limit: 100}
	t0 = time.Now()
	page, err := db.Find(q, time.Now())
	if err != nil {
		return r, err
	}
	r.FindPageMs = ms(time.Since(t0))
	if len(page.Rows) == 0 {
		return r, fmt.Errorf("find: no rows")
	}
	t0 = time.Now()
	page, err = db.Find(stickydb.Query{Client: netip.MustParsePrefix("192.0.2.0/24"), Limit: 100}, time.Now())
	if err != nil {
		return r, err
	}
	r.FindScanMs = ms(time.Since(t0))
	r.FindScanned = page.Scanned

	// Proxy-like load: hits on known keys and some new clients, each op
	// allocating what a request would (4 KiB of garbage), so the GC runs
	// as it would in a proxy with this table.
	r.opLoad(db, size, opDur)
	logf("table %d: ops p99 %.1fµs max %.1fµs, %d GCs, pause max %.2fms", size, r.OpP99us, r.OpMaxus, r.GCs, r.GCPauseMaxMs)

	// Snapshot, then recovery into a fresh DB.
	info, err := st.Snapshot(context.Background())
	if err != nil {
		return r, err
	}
	r.SnapshotSec = info.Duration.Seconds()
	r.SnapshotMiB = float64(info.Bytes) / (1 << 20)
	if err := st.Close(); err != nil {
		return r, err
	}
	want := db.Len()
	db = nil
	runtime.GC()
	db2, err := durableDB(size)
	if err != nil {
		return r, err
	}
	st2, err := recovery.Open(recovery.Config{Dir: dir, Logger: &lg})
	if err != nil {
		return r, err
	}
	defer st2.Close()
	t0 = time.Now()
	rec, err = st2.Recover(db2, time.Now())
	if err != nil {
		return r, err
	}
	r.RecoverSec = time.Since(t0).Seconds()
	r.Recovered = db2.Len()
	if rec.Mode != recovery.ModeShort || r.Recovered != want {
		return r, fmt.Errorf("recovered %d of %d (mode %v)", r.Recovered, want, rec.Mode)
	}
	logf("table %d: snapshot %.1fs %.0f MiB, recovery %.1fs", size, r.SnapshotSec, r.SnapshotMiB, r.RecoverSec)
	runtime.KeepAlive(db2)
	return r, nil
}

var garbage atomic.Pointer[[]byte]

func (r *TableResult) opLoad(db *stickydb.DB, size int, d time.Duration) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const workers = 2
	lats := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	stopAt := time.Now().Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]time.Duration, 0, 1<<20)
			x := uint64(w + 1)
			for i := 0; time.Now().Before(stopAt) && len(out) < cap(out); i++ {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				buf := make([]byte, 4096)
				garbage.Store(&buf)
				t0 := time.Now()
				if i%10 == 0 {
					// a new client
					_, _, _ = db.BindIfAbsent(tableKey(size+int(x%(1<<24))), replicas[i%4], t0)
				} else {
					_, _ = db.Touch(tableKey(int(x%uint64(size))), t0)
				}
				out = append(out, time.Since(t0))
			}
			lats[w] = out
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&m1)
	all := slices.Concat(lats...)
	slices.Sort(all)
	r.Ops = len(all)
	at := func(p float64) float64 { return float64(all[int(float64(len(all)-1)*p)].Nanoseconds()) / 1000 }
	r.OpP50us, r.OpP99us, r.OpP999us, r.OpMaxus = at(.5), at(.99), at(.999), at(1)
	r.GCs = m1.NumGC - m0.NumGC
	var maxP, total uint64
	for g := m0.NumGC; g < m1.NumGC; g++ {
		p := m1.PauseNs[g%256]
		maxP = max(maxP, p)
		total += p
	}
	r.GCPauseMaxMs = float64(maxP) / 1e6
	r.GCPauseTotalMs = float64(total) / 1e6
	debug.FreeOSMemory()
}
