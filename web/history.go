package web

import (
	"sort"
	"sync"
	"time"
)

// The overview's traffic figures and graphs come from a sampler that reads
// the sources once a second (Server.Serve starts it, Shutdown stops it)
// and keeps, in memory and bounded:
//
//   - the last historySeconds of per-second points (requests/s, 4xx/s,
//     5xx/s, new bindings/s, bindings held, lag per peer): the graphs;
//   - the last windowReadings cumulative readings of the counters: rates
//     over rateWindow and latency percentiles over latencyWindow.
//
// Nothing is kept per client or per binding, so memory does not grow with
// traffic: about 1 KiB per second of history plus one reading per backend.

const (
	historySeconds = 15 * 60
	rateWindow     = 10 * time.Second
	latencyWindow  = time.Minute
	windowReadings = 62
	// maxGraphPeers bounds the peers one lag graph draws (in name order).
	maxGraphPeers = 8
)

// reading is one sample of the cumulative counters.
type reading struct {
	at      time.Time
	traffic map[string]BackendTraffic // by pool + "/" + name
	binds   uint64
	origins map[string][2]uint64 // origin -> (epoch, seq) of its latest epoch in the own vector
	groups  map[string]uint64    // peer -> groups received
	lagMs   map[string]int64     // peer -> lag of its last group
}

// point is one second of the graphs.
type point struct {
	at               time.Time
	reqs, err4, err5 float64 // per second, all backends
	binds            float64 // new bindings made here per second
	held             int     // bindings held
	lag              map[string]float64
	lagSeen          bool
}

type history struct {
	mu       sync.Mutex
	readings []reading // ring, oldest first once full
	rHead    int
	points   []point // ring
	pHead    int
}

func newHistory() *history {
	return &history{readings: make([]reading, 0, windowReadings), points: make([]point, 0, historySeconds)}
}

// sample takes one reading of the sources and, when the previous reading
// is about a second old, adds a point.
func (s *Server) sample(now time.Time) {
	r := reading{at: now, binds: s.src.Core.Stats().Binds, origins: map[string][2]uint64{}}
	if s.src.Traffic != nil {
		ts := s.src.Traffic.Traffic()
		r.traffic = make(map[string]BackendTraffic, len(ts))
		for _, t := range ts {
			r.traffic[t.Pool+"/"+t.Name] = t
		}
	}
	for o, ps := range s.src.Core.Vector() {
		if len(ps) > 0 {
			p := ps[len(ps)-1]
			r.origins[o] = [2]uint64{uint64(p.Epoch), p.Seq}
		}
	}
	if s.src.Transport != nil {
		ps := s.src.Transport.PeerStats()
		r.groups, r.lagMs = make(map[string]uint64, len(ps)), make(map[string]int64, len(ps))
		for _, p := range ps {
			if p.Peer == notAMember {
				continue
			}
			r.groups[p.Peer], r.lagMs[p.Peer] = p.GroupsReceived, p.LagLastMs
		}
	}
	s.hist.add(r, s.src.Core.Len())
}

// notAMember is the label the lead gives errors from senders that are not
// members; it is no peer to draw.
const notAMember = "(not a member)"

func (h *history) add(r reading, held int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.last(); ok {
		if dt := r.at.Sub(prev.at).Seconds(); dt >= 0.5 && dt <= 5 {
			h.addPoint(pointBetween(prev, r, dt, held))
		}
	}
	if len(h.readings) < cap(h.readings) {
		h.readings = append(h.readings, r)
	} else {
		h.readings[h.rHead] = r
		h.rHead = (h.rHead + 1) % len(h.readings)
	}
}

func (h *history) addPoint(p point) {
	if len(h.points) < cap(h.points) {
		h.points = append(h.points, p)
		return
	}
	h.points[h.pHead] = p
	h.pHead = (h.pHead + 1) % len(h.points)
}

// last is the newest reading. Caller holds h.mu.
func (h *history) last() (reading, bool) {
	n := len(h.readings)
	if n == 0 {
		return reading{}, false
	}
	return h.readings[(h.rHead+n-1)%n], true
}

// since is the oldest reading at most d older than the newest. Caller
// holds h.mu.
func (h *history) since(d time.Duration) (reading, bool) {
	last, ok := h.last()
	if !ok {
		return reading{}, false
	}
	n := len(h.readings)
	for i := 0; i < n; i++ {
		r := h.readings[(h.rHead+i)%n] // rHead stays 0 until the ring is full
		if last.at.Sub(r.at) <= d {
			return r, true
		}
	}
	return last, true
}

// delta is cur - prev for a monotonic counter; a counter that went back
// (its series was dropped and made again) counts from zero.
func delta(cur, prev uint64) float64 {
	if cur < prev {
		return float64(cur)
	}
	return float64(cur - prev)
}

func pointBetween(prev, cur reading, dt float64, held int) point {
	p := point{at: cur.at, held: held, binds: delta(cur.binds, prev.binds) / dt}
	for k, t := range cur.traffic {
		o := prev.traffic[k]
		for c := range t.Classes {
			d := delta(t.Classes[c], o.Classes[c]) / dt
			p.reqs += d
			switch c {
			case 4:
				p.err4 += d
			case 5:
				p.err5 += d
			}
		}
	}
	for peer, g := range cur.groups {
		if g > prev.groups[peer] { // a group arrived this second: its lag means something
			if p.lag == nil {
				p.lag = map[string]float64{}
			}
			p.lag[peer] = float64(cur.lagMs[peer])
			p.lagSeen = true
		}
	}
	return p
}

// BackendRate is one replica's traffic as the overview shows it.
type BackendRate struct {
	Key        string  `json:"-"`
	ReqPerSec  float64 `json:"req_per_s"`
	Err4PerSec float64 `json:"err4_per_s"`
	Err5PerSec float64 `json:"err5_per_s"`
	// P50Ms/P99Ms: latency percentiles over the last minute, estimated
	// from the proxy's histogram buckets; -1 without requests. Over is set
	// when the percentile lies beyond the last bucket (P is then its bound).
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P99Over  bool    `json:"p99_over,omitempty"`
	Requests float64 `json:"requests_last_minute"`
}

// rates returns each backend's rates, by pool + "/" + name.
func (h *history) rates() map[string]BackendRate {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]BackendRate{}
	cur, ok := h.last()
	if !ok {
		return out
	}
	short, _ := h.since(rateWindow)
	long, _ := h.since(latencyWindow)
	dtShort := cur.at.Sub(short.at).Seconds()
	for k, t := range cur.traffic {
		r := BackendRate{Key: k, P50Ms: -1, P99Ms: -1}
		if dtShort > 0 {
			o := short.traffic[k]
			for c := range t.Classes {
				d := delta(t.Classes[c], o.Classes[c]) / dtShort
				r.ReqPerSec += d
				switch c {
				case 4:
					r.Err4PerSec = d
				case 5:
					r.Err5PerSec = d
				}
			}
		}
		if o, ok := long.traffic[k]; ok && long.at.Before(cur.at) {
			r.P50Ms, _, r.Requests = quantileMs(t, o, 0.5)
			r.P99Ms, r.P99Over, _ = quantileMs(t, o, 0.99)
		}
		out[k] = r
	}
	return out
}

// quantileMs estimates the q-quantile of the requests between two
// readings from the histogram's bucket counts, interpolating linearly in
// the bucket (as Prometheus' histogram_quantile does). -1 without requests.
func quantileMs(cur, old BackendTraffic, q float64) (ms float64, over bool, total float64) {
	if len(cur.Bounds) == 0 || len(old.Cumulative) != len(cur.Cumulative) {
		old = BackendTraffic{Cumulative: make([]uint64, len(cur.Cumulative))}
	}
	total = delta(cur.Count, old.Count)
	if total == 0 {
		return -1, false, 0
	}
	target := q * total
	lower, below := 0.0, 0.0
	for i, b := range cur.Bounds {
		c := delta(cur.Cumulative[i], old.Cumulative[i])
		if c >= target {
			frac := 1.0
			if c > below {
				frac = (target - below) / (c - below)
			}
			return (lower + (b-lower)*frac) * 1000, false, total
		}
		lower, below = b, c
	}
	return lower * 1000, true, total
}

// originRates returns events/s per origin (what each node made: binds,
// rebinds, refreshes and deletes) over rateWindow, from the own vector.
func (h *history) originRates() map[string]float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]float64{}
	cur, ok := h.last()
	if !ok {
		return out
	}
	old, _ := h.since(rateWindow)
	dt := cur.at.Sub(old.at).Seconds()
	if dt <= 0 {
		return out
	}
	for o, p := range cur.origins {
		q := old.origins[o]
		d := float64(p[1])
		if q[0] == p[0] {
			d = delta(p[1], q[1])
		}
		out[o] = d / dt
	}
	return out
}

// snapshot copies the points, oldest first.
func (h *history) snapshot() []point {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.points)
	out := make([]point, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, h.points[(h.pHead+i)%n]) // pHead stays 0 until the ring is full
	}
	return out
}

// lagPeers are the peers the lag graph draws: those with a point, in name
// order, at most maxGraphPeers.
func lagPeers(pts []point) []string {
	set := map[string]bool{}
	for _, p := range pts {
		for peer := range p.lag {
			set[peer] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	if len(out) > maxGraphPeers {
		out = out[:maxGraphPeers]
	}
	return out
}

// runSampler samples every second until stop closes.
func (s *Server) runSampler(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	s.sample(s.now())
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.sample(s.now())
		}
	}
}
