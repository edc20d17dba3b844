package test

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/check"
	"github.com/tetherproxy/tether/test/fleet"
	"github.com/tetherproxy/tether/test/netns"
)

var tableSizes = flag.String("tablesize.sizes", "10000,10000000", "bindings on the node, per run of BenchmarkProxyByTableSize")

// BenchmarkProxyByTableSize (issue 14) starts one node whose disk holds N
// bindings (recovered at start: a node that has served that many clients),
// then measures the proxy under `tether check`'s load (64 keep-alive
// clients, closed loop, 10 s): requests/s, latency p50/p99/max, and
// what the Go runtime says of the time (heap in use, RSS, GC cycles and the
// longest GC pause). The same load against 10k and 10M bindings shows what
// a large table costs the requests (the GC scanning it, map lookups out of
// cache). `make scale-proxy` runs it; not part of `make test`.
func BenchmarkProxyByTableSize(b *testing.B) {
	for _, f := range strings.Split(*tableSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("-tablesize.sizes: %q", f)
		}
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			for range b.N {
				proxyByTableSize(b, n)
			}
		})
	}
}

func proxyByTableSize(b *testing.B, n int) {
	_, spec := backends(b, "a", "b", "c")
	dir := b.TempDir()
	t0 := time.Now()
	// 1M client addresses per Host, as many Hosts as it takes.
	err := netns.SeedDataDirKeys(dir, "node0", []string{"a", "b", "c"}, n, func(i int) (netip.Addr, string) {
		return netns.SeedAddr(i % 1_000_000), fmt.Sprintf("s%d.test", i/1_000_000)
	})
	if err != nil {
		b.Fatal(err)
	}
	seeded := time.Since(t0)
	t1 := time.Now()
	f := fleet.StartEach(b, bin, 1, fleet.Options{Backends: spec, NotReady: map[int]bool{0: true},
		Env: map[string]string{"TETHER_MAX_BINDINGS": strconv.Itoa(max(4_000_000, n+1_000_000)), "TETHER_LOG_LEVEL": "warn"}},
		func(int) map[string]string { return map[string]string{"TETHER_DATA_DIR": dir} })
	node := f.Nodes[0]
	if err := node.WaitReady(5 * time.Minute); err != nil {
		b.Fatalf("%v\n%s", err, node.LogTail(20))
	}
	ready := time.Since(t1)
	live := metricOr(b, node, "tether_bindings_live")
	if live < float64(n) {
		b.Fatalf("the node holds %.0f bindings after recovery, want %d", live, n)
	}

	cfg := check.DefaultConfig()
	cfg.Targets = []string{node.Proxy}
	cfg.Clients = 64
	cfg.Duration = 10 * time.Second
	cfg.Host = appHost
	cfg.Seed = 1
	gc0 := metricOr(b, node, "go_gc_duration_seconds_count")
	k, err := check.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	r, err := k.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	body, err := metricsOf(node, "")
	if err != nil {
		b.Fatal(err)
	}
	gcs := sumFamily(body, "go_gc_duration_seconds_count") - gc0
	maxPause := sumFamily(body, "go_gc_duration_seconds", `quantile="1"`)
	heap := sumFamily(body, "go_memstats_heap_inuse_bytes")
	rss := sumFamily(body, "process_resident_memory_bytes")
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(r.RequestsPerSec, "req/s")
	b.ReportMetric(ms(r.Latency.P50), "p50-ms")
	b.ReportMetric(ms(r.Latency.P99), "p99-ms")
	b.ReportMetric(ms(r.Latency.Max), "max-ms")
	b.ReportMetric(maxPause*1000, "gc-max-pause-ms")
	b.ReportMetric(gcs, "gcs")
	b.ReportMetric(heap/(1<<20), "heap-MiB")
	b.ReportMetric(rss/(1<<20), "rss-MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d bindings: seeded in %v, node started and ready (recovered from disk) in %v holding %.0f; %d requests (%d errors), %.0f req/s, p50 %v p99 %v max %v; %d GCs, longest pause %.2f ms; heap %.0f MiB, RSS %.0f MiB",
		n, seeded.Round(time.Millisecond), ready.Round(time.Millisecond), live, r.Requests, r.Errors, r.RequestsPerSec,
		r.Latency.P50, r.Latency.P99, r.Latency.Max, int(gcs), maxPause*1000, heap/(1<<20), rss/(1<<20))
}

// metricOr reads one metric family's sum, failing b when /metrics does not answer.
func metricOr(b *testing.B, n *fleet.Node, family string) float64 {
	body, err := metricsOf(n, "")
	if err != nil {
		b.Fatal(err)
	}
	return sumFamily(body, family)
}
