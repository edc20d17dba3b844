package gossip

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// BenchmarkReadyFromPeer (issue 5) measures a node that starts empty
// (epoch mode, or a long outage) until it is ready with a peer's whole
// database: join, ask for a full copy, receive and merge it, on loopback.
// Target: <= 2 s for 1M bindings.
func BenchmarkReadyFromPeer(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			c := startCluster(b, 1, clusterOpts{})
			src := c.nodes[0].DB()
			now := time.Now()
			exp := now.Add(20 * time.Minute).UnixMilli()
			recs := make([]stickydb.Record, 0, 10_000)
			hosts := []string{"shop.example.com", "api.example.com", "www.example.org"}
			for i := 0; i < n; i++ {
				k, _ := stickydb.NewKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), hosts[i%3])
				recs = append(recs, stickydb.Record{Key: k, Binding: stickydb.Binding{Replica: replicas[i%3], Expiry: exp, Generation: 1, Origin: "n0"}})
				if len(recs) == cap(recs) || i == n-1 {
					src.MergeRecords(recs, now)
					recs = recs[:0]
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.opts.node = func(_ int, cfg *Config) { cfg.InitialCopy = true }
				start := time.Now()
				node := c.add(1)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := node.WaitReady(ctx)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(start)
				if got := node.DB().Len(); got != n {
					b.Fatalf("ready with %d of %d bindings", got, n)
				}
				b.ReportMetric(took.Seconds(), "s-to-ready")
				b.StopTimer()
				_ = node.Close()
				b.StartTimer()
			}
		})
	}
}
