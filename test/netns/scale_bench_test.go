package netns

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/internal/procstat"
)

var (
	scaleSizes  = flag.String("netns.sizes", "10,25", "fleet sizes of BenchmarkNamespaceFleet")
	scaleRate   = flag.Int("netns.scale-rate", 500, "new bindings per second, fleet-wide, through the proxies (BenchmarkNamespaceFleet)")
	scaleWindow = flag.Duration("netns.scale-window", 10*time.Second, "measuring window of BenchmarkNamespaceFleet (idle and loaded each)")
	scaleProf   = flag.String("netns.cpuprofile", "", "write node0's CPU profile of the idle window to this path (BenchmarkNamespaceFleet)")
)

// BenchmarkNamespaceFleet runs N tether processes, each a host of its own
// (a namespace on the bridge, no loopback), three replicas on hosts of
// their own and a client host with 250 source addresses, and measures at a
// fixed fleet-wide rate of new bindings made through the proxies:
// convergence (a probe binds a new client through one node every 100 ms;
// the time from its response until every other node's admin API shows the
// binding, all polled at once, each every N/5 ms and at least every 1 ms:
// at 25 nodes, polling each every millisecond was 24,000 requests/s,
// more than the load itself), CPU per node (each process's user+system
// time) and wire bytes per node (the host's eth0 counters: memberlist,
// gossip and proxy traffic), idle and loaded; then the cost of a crash
// (one node killed: the survivors' CPU and bytes in the next window).
//
// Not part of `make test`: `make scale-netns` runs it. On a shared 2-core
// machine every process, the load and the probes share the two cores.
func BenchmarkNamespaceFleet(b *testing.B) {
	if err := Available(); err != nil {
		b.Fatalf("network namespaces: %v", err)
	}
	for _, f := range strings.Split(*scaleSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			b.Fatalf("-netns.sizes: %q", f)
		}
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				runScale(b, n, *scaleRate, *scaleWindow)
			}
		})
	}
}

type scaleFleet struct {
	tb    testing.TB
	lab   *Lab
	nodes []*Node
	cl    *Host
	// slowRead: the longest reading of the fleet's usage (a starved
	// machine shows here: 25 ip commands and 25 metrics pages).
	slowRead struct{ total, links, metrics time.Duration }
	// one keep-alive client per source address of the client host
	clients []*http.Client
}

func newScaleFleet(tb testing.TB, nodes int) *scaleFleet {
	s := &scaleFleet{tb: tb, lab: New(tb)}
	dir := tb.TempDir()
	s.cl = s.lab.AddHost("clients", 250)
	var routes strings.Builder
	routes.WriteString("health: {path: /healthz, interval: 5s, timeout: 1s, rise: 1, fall: 3}\npools:\n  - name: default\n    backends:\n")
	for i := range 3 {
		name := fmt.Sprintf("r%d", i)
		h := s.lab.AddHost("rep"+name, 0)
		ln, err := h.Listen(h.Addr.String() + ":8080")
		if err != nil {
			tb.Fatal(err)
		}
		srv := &http.Server{Handler: demobackend.New(name), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		tb.Cleanup(func() { srv.Close() })
		fmt.Fprintf(&routes, "      - {name: %s, url: \"http://%s:8080\"}\n", name, h.Addr)
	}
	routesPath := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routesPath, []byte(routes.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	var hosts []*Host
	var seeds []string
	for i := range nodes {
		h := s.lab.AddHost(fmt.Sprintf("node%d", i), 0)
		hosts = append(hosts, h)
		if i < 3 {
			seeds = append(seeds, h.Addr.String()+":"+GossipPort)
		}
	}
	env := map[string]string{
		"TETHER_ROUTES_FILE": routesPath,
		"TETHER_JOIN":        strings.Join(seeds, ","),
		"TETHER_LOG_LEVEL":   "warn",
	}
	for _, h := range hosts {
		s.nodes = append(s.nodes, NewNode(bin, dir, h, s.cl, false, env))
	}
	for _, n := range s.nodes {
		if err := n.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(n.Stop)
	}
	for _, n := range s.nodes {
		if err := n.WaitReady(2 * time.Minute); err != nil {
			tb.Fatalf("%v\n%s", err, n.LogTail(30))
		}
	}
	for _, src := range s.cl.Extra {
		s.clients = append(s.clients, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: s.cl.Dialer(src, 3*time.Second), MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}})
	}
	tb.Cleanup(func() {
		for _, c := range s.clients {
			c.CloseIdleConnections()
		}
	})
	return s
}

// bind makes a new binding of (client address c, host) through node n.
func (s *scaleFleet) bind(ctx context.Context, c int, host string, n *Node) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Proxy+"/", nil)
	if err != nil {
		return err
	}
	req.Host = host
	resp, err := s.clients[c].Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", n.Name, resp.StatusCode)
	}
	return nil
}

// profile writes node i's CPU profile of the next d to path.
func (s *scaleFleet) profile(i int, d time.Duration, path string) {
	code, body, err := s.nodes[i].Do(http.MethodGet, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d", code)
	}
	if err == nil {
		err = os.WriteFile(path, body, 0o644)
	}
	if err != nil {
		s.tb.Logf("cpu profile of %s: %v", s.nodes[i].Name, err)
	}
}

// usage is what the fleet's processes and links have used so far.
type usage struct {
	at     time.Time
	cpu    []time.Duration // per node: user+system
	link   []uint64        // per node: eth0 bytes sent + received (everything: proxy, health checks, gossip)
	gossip []float64       // per node: tether_gossip_bytes_sent_total
	msgs   []float64       // per node: tether_gossip_messages_sent_total
}

func (s *scaleFleet) usage(alive func(i int) bool) usage {
	u := usage{at: time.Now()}
	var tl, tg time.Duration
	for i, n := range s.nodes {
		u.cpu = append(u.cpu, procCPU(n))
		t0 := time.Now()
		u.link = append(u.link, linkBytes(n.Host))
		t1 := time.Now()
		var g, m float64
		if alive(i) {
			g, m = gossipSent(n)
		}
		tg += time.Since(t1)
		tl += t1.Sub(t0)
		u.gossip, u.msgs = append(u.gossip, g), append(u.msgs, m)
	}
	if d := time.Since(u.at); d > s.slowRead.total {
		s.slowRead.total, s.slowRead.links, s.slowRead.metrics = d, tl, tg
	}
	return u
}

// rates is the mean per node between two usages.
type rates struct {
	cpu                float64 // share of one core
	link, gossip, msgs float64 // per second
}

// perNode returns the mean per node between a and b, over the nodes alive
// in both.
func perNode(a, b usage, alive func(i int) bool) (r rates) {
	secs := b.at.Sub(a.at).Seconds()
	k := 0.0
	for i := range a.cpu {
		if !alive(i) {
			continue
		}
		r.cpu += (b.cpu[i] - a.cpu[i]).Seconds() / secs
		r.link += float64(b.link[i]-a.link[i]) / secs
		r.gossip += (b.gossip[i] - a.gossip[i]) / secs
		r.msgs += (b.msgs[i] - a.msgs[i]) / secs
		k++
	}
	return rates{r.cpu / k, r.link / k, r.gossip / k, r.msgs / k}
}

// gossipSent reads a node's gossip bytes and messages sent from /metrics.
func gossipSent(n *Node) (bytes, msgs float64) {
	_, body, err := n.Do(http.MethodGet, "/metrics", nil)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch {
		case name == "tether_gossip_bytes_sent_total":
			bytes = v
		case strings.HasPrefix(name, "tether_gossip_messages_sent_total{"):
			msgs += v
		}
	}
	return bytes, msgs
}

// procCPU reads a process's user+system time from /proc (10 ms ticks).
func procCPU(n *Node) time.Duration {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	d, _ := procstat.CPUTime(cmd.Process.Pid)
	return d
}

// linkBytes is the bytes a host's eth0 sent and received.
func linkBytes(h *Host) uint64 {
	out, err := exec.Command("ip", "-n", h.NS, "-s", "-j", "link", "show", "eth0").Output()
	if err != nil {
		return 0
	}
	var v []struct {
		Stats struct {
			RX struct{ Bytes uint64 } `json:"rx"`
			TX struct{ Bytes uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if json.Unmarshal(out, &v) != nil || len(v) == 0 {
		return 0
	}
	return v[0].Stats.RX.Bytes + v[0].Stats.TX.Bytes
}

// load makes rate new bindings a second, fleet-wide, round robin over the
// live nodes, each a new (source address, Host) pair, until stop.
func (s *scaleFleet) load(rate int, alive func(i int) bool) (stop func() (made, failed int64)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var made, failed atomic.Int64
	const workers = 16
	var seq atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * workers / time.Duration(rate))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				i := seq.Add(1)
				j := int(i) % len(s.nodes)
				if !alive(j) {
					j = (j + 1) % len(s.nodes)
				}
				n := s.nodes[j]
				c := int(i) % len(s.clients)
				host := fmt.Sprintf("l%d-%d.test", w, i/int64(len(s.clients)))
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				if err := s.bind(rctx, c, host, n); err != nil {
					if ctx.Err() != nil {
						rcancel()
						return // stopped mid-request: not a failure
					}
					if failed.Add(1) <= 3 {
						s.tb.Logf("load: %v", err)
					}
				} else {
					made.Add(1)
				}
				rcancel()
			}
		}()
	}
	return func() (int64, int64) { cancel(); wg.Wait(); return made.Load(), failed.Load() }
}

// probe binds a new client through node from and returns how long until
// every other live node's admin API shows it (the slowest of them).
func (s *scaleFleet) probe(i int, from int, alive func(i int) bool) (time.Duration, error) {
	c := i % len(s.clients)
	host := fmt.Sprintf("probe%d.test", i)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.bind(ctx, c, host, s.nodes[from]); err != nil {
		return 0, err
	}
	t0 := time.Now()
	path := "/api/v1/bindings/" + host + "/" + s.cl.Extra[c].String()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	var firstErr error
	every := time.Duration(max(1, len(s.nodes)/5)) * time.Millisecond
	for j, n := range s.nodes {
		if j == from || !alive(j) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				code, _, err := n.Do(http.MethodGet, path, nil)
				if err == nil && code == http.StatusOK {
					d := time.Since(t0)
					mu.Lock()
					slowest = max(slowest, d)
					mu.Unlock()
					return
				}
				if time.Since(t0) > 10*time.Second {
					mu.Lock()
					firstErr = fmt.Errorf("probe %d from %s: not on %s after 10s (last %d %v)", i, s.nodes[from].Name, n.Name, code, err)
					mu.Unlock()
					return
				}
				time.Sleep(every) // poll spacing
			}
		}()
	}
	wg.Wait()
	return slowest, firstErr
}

func runScale(b *testing.B, n, rate int, window time.Duration) {
	t0 := time.Now()
	s := newScaleFleet(b, n)
	b.Logf("N=%d: %d processes ready in %v", n, n, time.Since(t0).Round(time.Millisecond))
	down := -1
	alive := func(i int) bool { return i != down }

	time.Sleep(2 * time.Second) // settle after the last join (pacing, not a wait for a condition)
	u0 := s.usage(alive)
	if *scaleProf != "" {
		go s.profile(0, window, fmt.Sprintf("%s.n%d", *scaleProf, n))
	}
	time.Sleep(window) // idle window (a measurement, not a wait for a condition)
	idle := perNode(u0, s.usage(alive), alive)

	stop := s.load(rate, alive)
	loadStart := time.Now()
	time.Sleep(2 * time.Second) // warm-up
	u2 := s.usage(alive)
	var lat []time.Duration
	lost := 0
	for i, end := 0, time.Now().Add(window); time.Now().Before(end); i++ {
		d, err := s.probe(i, i%n, alive)
		if err != nil {
			lost++
			b.Log(err)
		} else {
			lat = append(lat, d)
		}
		time.Sleep(100 * time.Millisecond) // probe spacing
	}
	loaded := perNode(u2, s.usage(alive), alive)
	made, failed := stop()
	loadFor := time.Since(loadStart)

	// A crash: the last node is killed with the load on; the survivors'
	// cost in the next window, against the loaded window before.
	stop = s.load(rate, alive)
	crashStart := time.Now()
	down = n - 1
	s.nodes[down].Kill()
	u4 := s.usage(alive)
	time.Sleep(window) // the window after the crash (a measurement)
	crash := perNode(u4, s.usage(alive), alive)
	made2, failed2 := stop()
	crashFor := time.Since(crashStart)

	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return -1
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(.5), "conv-p50-ms")
	b.ReportMetric(q(.99), "conv-p99-ms")
	b.ReportMetric(float64(lost), "probes-lost")
	b.ReportMetric(idle.cpu*100, "idle-cpu-%/node")
	b.ReportMetric(loaded.cpu*100, "load-cpu-%/node")
	b.ReportMetric(crash.cpu*100, "crash-cpu-%/node")
	b.ReportMetric(idle.gossip/1000, "idle-gossip-kB/s/node")
	b.ReportMetric(loaded.gossip/1000, "load-gossip-kB/s/node")
	b.ReportMetric(0, "ns/op")
	b.Logf("N=%d rate %d/s: %d made (%d failed) in the loaded phase (%v, warm-up included), %d (%d failed) after the crash (%v); %d probes, %d lost; convergence p50 %.2f ms p99 %.2f ms max %.2f ms",
		n, rate, made, failed, loadFor.Round(time.Millisecond), made2, failed2, crashFor.Round(time.Millisecond), len(lat)+lost, lost, q(.5), q(.99), q(1))
	b.Logf("N=%d: the slowest reading of the fleet's usage took %v (ip link %v, metrics pages %v)", n,
		s.slowRead.total.Round(time.Millisecond), s.slowRead.links.Round(time.Millisecond), s.slowRead.metrics.Round(time.Millisecond))
	for _, r := range []struct {
		name string
		r    rates
	}{{"idle", idle}, {"loaded", loaded}, {"after a crash", crash}} {
		b.Logf("N=%d %-13s per node: CPU %5.1f %% of a core, gossip %6.1f kB/s in %5.0f msgs/s sent, link %7.1f kB/s (both ways, proxy traffic included)",
			n, r.name, r.r.cpu*100, r.r.gossip/1000, r.r.msgs, r.r.link/1000)
	}
}
