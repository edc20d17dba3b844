package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
)

// BenchmarkEncodeGroup: encoding speed of a pushed group of n binds, and
// its size per binding (B/binding; memberlist adds ~50 B per message).
func BenchmarkEncodeGroup(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("binds=%d", n), func(b *testing.B) {
			g := sampleGroup(b, n, true)
			var size int
			b.ReportAllocs()
			for b.Loop() {
				size = len(encodeGroup(&g, groupMeta{}))
			}
			b.ReportMetric(float64(size)/float64(n), "B/binding")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/binding")
		})
	}
}

// BenchmarkDecodeGroup: decoding speed of the same groups, and of a
// pushed group in a 50-node fleet (two binds and the sender's vector).
func BenchmarkDecodeGroup(b *testing.B) {
	caps := defaultCaps()
	for _, c := range []struct{ binds, origins int }{{1, 0}, {100, 0}, {1000, 0}, {2, 50}} {
		name := fmt.Sprintf("binds=%d", c.binds)
		if c.origins > 0 {
			name += fmt.Sprintf(",vector=%d", c.origins)
		}
		b.Run(name, func(b *testing.B) {
			g := sampleGroup(b, c.binds, true)
			for i := range c.origins {
				g.Vector[fmt.Sprintf("n%d", i)] = []stickydb.EpochSeq{{Epoch: 1_764_000_000_000 + int64(i), Seq: uint64(1000 + i)}}
			}
			msg := encodeGroup(&g, groupMeta{})
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := decodeGroup(msg[headerLen:], caps); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*c.binds), "ns/binding")
		})
	}
}

// BenchmarkWireCost measures what replication really costs on the wire:
// node n0 of a 3-node encrypted fleet binds batches of 200 new keys (each
// batch leaves as one group), and every byte n0's transport writes while
// the others take them in (memberlist framing, CRC, encryption, label,
// heartbeats and probes included) is divided by bindings x peers.
//
//	go test -run '^$' -bench WireCost -benchtime 50x ./gossip/
func BenchmarkWireCost(b *testing.B) {
	f := faultnet.New(1)
	c := startCluster(b, 3, clusterOpts{key: []byte("0123456789abcdef"), faults: f})
	src := c.nodes[0]
	tr := c.transport(src.Name())
	const batch = 200
	before := tr.BytesSent()
	total := 0
	b.ResetTimer()
	for i := range b.N {
		now := time.Now()
		for j := range batch {
			k := testKey(b, i*batch+j)
			if _, _, err := src.Store().BindIfAbsent(k, replicas[j%3], now); err != nil {
				b.Fatal(err)
			}
		}
		total += batch
		last := testKey(b, i*batch+batch-1)
		eventually(b, 5*time.Second, func() bool {
			for _, n := range c.nodes[1:] {
				if _, ok := n.DB().Lookup(last); !ok {
					return false
				}
			}
			return true
		}, func() string { return "batch not replicated" })
	}
	b.StopTimer()
	sent := tr.BytesSent() - before
	b.ReportMetric(float64(sent)/float64(total*2), "wireB/binding/peer")
	st := src.Stats()
	b.ReportMetric(float64(st.BytesSent)/float64(st.EventsSent), "msgB/binding/peer")
	b.ReportMetric(0, "ns/op")
	var _ = stickydb.KindBind
}
