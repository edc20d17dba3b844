package gossip

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
)

// latencyRun binds probes keys, each on the next node in turn, and measures
// how long until every other node's DB holds it (Lookup, woken by the DB's
// Watch: no poll interval in the figure). Probes are spaced
// a little over one push interval apart, so each one finds the sender
// quiet when there is no load. With load > 0 a background writer binds
// that many keys per second, spread over the nodes, all along.
func latencyRun(t testing.TB, c *cluster, probes int, load int) []time.Duration {
	t.Helper()
	nodes := c.live()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if load > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			const every = 2 * time.Millisecond
			perTick := max(1, load*int(every)/int(time.Second))
			tk := time.NewTicker(every)
			defer tk.Stop()
			for i := 0; ; {
				select {
				case <-stop:
					return
				case <-tk.C:
				}
				for range perTick {
					now := time.Now()
					k := mustKey(t, fmt.Sprintf("172.16.%d.%d", i>>8&255, i&255), fmt.Sprintf("load%d.example", i>>16))
					_, _, _ = nodes[i%len(nodes)].Store().BindIfAbsent(k, replicas[i%3], now)
					i++
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	pace := time.NewTicker(c.nodes[0].cfg.PushInterval + 5*time.Millisecond)
	defer pace.Stop()
	out := make([]time.Duration, 0, probes)
	for i := range probes {
		<-pace.C
		from := nodes[i%len(nodes)]
		k, err := stickydb.NewKey(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), fmt.Sprintf("probe%d.example", load))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, created, err := from.Store().BindIfAbsent(k, "backend-a", t0); err != nil || !created {
			t.Fatalf("probe %d: created %v, %v", i, created, err)
		}
		timeout := time.NewTimer(5 * time.Second)
		for _, n := range nodes {
			for {
				changed, cancel := n.DB().Watch(k) // before the lookup: a merge in between closes it
				_, ok := n.DB().Lookup(k)
				if !ok {
					select {
					case <-changed:
					case <-timeout.C:
						t.Fatalf("probe %d from %s not on %s after 5s", i, from.Name(), n.Name())
					}
				}
				cancel()
				if ok {
					break
				}
			}
		}
		out = append(out, time.Since(t0))
		timeout.Stop()
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// TestConvergenceLatency shows that a binding reaches every node, idle and
// under load, and logs the percentiles. The speed targets (p50 <= 2 ms
// idle, p99 <= 25 ms under load) are checked by BenchmarkConvergence,
// without the race detector.
func TestConvergenceLatency(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{key: []byte("0123456789abcdef")})
	for _, tc := range []struct {
		name string
		load int
	}{{"idle", 0}, {"load", 2000}} {
		t.Run(tc.name, func(t *testing.T) {
			lat := latencyRun(t, c, 40, tc.load)
			t.Logf("%s: p50 %v p99 %v max %v (race detector: %v)", tc.name, percentile(lat, .5), percentile(lat, .99), slices.Max(lat), raceEnabled)
		})
	}
	c.waitConverged(10 * time.Second)
}

// BenchmarkConvergence measures the time from a bind on one node until all
// three nodes hold it, on loopback with encryption: p50 and p99 in ms,
// idle and under a background load of new bindings (per second, fleet-wide,
// spread over the nodes). Under load it also reports what replication
// costs: every byte the nodes' transports wrote (memberlist framing,
// encryption, probes and heartbeats included) per binding per peer, and
// the process's CPU time (the three nodes, and the load generator's binds)
// per binding made.
//
//	go test -run '^$' -bench Convergence -benchtime 400x ./gossip/
func BenchmarkConvergence(b *testing.B) {
	for _, r := range []struct {
		load int
		loss float64 // of packets (UDP), both ways
	}{{0, 0}, {1000, 0}, {10000, 0}, {1000, 0.01}} {
		load := r.load
		name := fmt.Sprintf("load=%d", load)
		if r.loss > 0 {
			name += fmt.Sprintf(",loss=%g%%", r.loss*100)
		}
		b.Run(name, func(b *testing.B) {
			f := faultnet.New(1)
			c := startCluster(b, 3, clusterOpts{key: []byte("0123456789abcdef"), faults: f})
			f.SetPacketLoss(r.loss)
			sent := func() (s uint64) {
				for _, n := range c.nodes {
					s += c.transport(n.Name()).BytesSent()
				}
				return s
			}
			made := func() (m uint64) {
				for _, n := range c.nodes {
					_, seq := n.DB().Position()
					m += seq
				}
				return m
			}
			bytes0, made0, cpu0, t0 := sent(), made(), cpuTime(), time.Now()
			b.ResetTimer()
			lat := latencyRun(b, c, b.N, load)
			b.StopTimer()
			c.waitConverged(10 * time.Second)
			f.SetPacketLoss(0)
			binds := made() - made0
			var buffered, asked uint64
			for _, n := range c.nodes {
				st := n.DB().Stats()
				buffered += st.GroupsBuffered
				asked += st.RequestsOrigin + st.RequestsThird + st.RequestsFull
			}
			b.ReportMetric(float64(buffered), "buffered")
			b.ReportMetric(float64(asked), "range-requests")
			b.ReportMetric(float64(percentile(lat, .5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(lat, .99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(slices.Max(lat).Microseconds())/1000, "max-ms")
			if load > 0 && binds > 0 {
				b.ReportMetric(float64(sent()-bytes0)/float64(binds*2), "wireB/binding/peer")
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(binds), "cpu-µs/binding")
				b.ReportMetric(float64(binds)/time.Since(t0).Seconds(), "binds/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
