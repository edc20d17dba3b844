package web

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTraffic is a settable TrafficSource.
type fakeTraffic struct {
	mu   sync.Mutex
	list []BackendTraffic
}

func (f *fakeTraffic) Traffic() []BackendTraffic {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]BackendTraffic, len(f.list))
	for i, t := range f.list {
		t.Bounds = append([]float64(nil), t.Bounds...)
		t.Cumulative = append([]uint64(nil), t.Cumulative...)
		out[i] = t
	}
	return out
}

var testBounds = []float64{.001, .005, .01, .05, .1}

// add counts n more requests of class c on backend i, each taking
// latency seconds.
func (f *fakeTraffic) add(i, class int, n uint64, latency float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &f.list[i]
	t.Classes[class] += n
	t.Count += n
	for j, b := range t.Bounds {
		if latency <= b {
			t.Cumulative[j] += n
		}
	}
}

func newFakeTraffic(names ...string) *fakeTraffic {
	f := &fakeTraffic{}
	for _, n := range names {
		f.list = append(f.list, BackendTraffic{Pool: "shop", Name: n, Bounds: testBounds, Cumulative: make([]uint64, len(testBounds))})
	}
	return f
}

func TestQuantileMs(t *testing.T) {
	old := BackendTraffic{Bounds: testBounds, Cumulative: make([]uint64, 5)}
	cur := BackendTraffic{Bounds: testBounds, Cumulative: []uint64{0, 100, 100, 100, 100}, Count: 100}
	// All 100 in (1 ms, 5 ms]: the median interpolates to 3 ms.
	if ms, over, n := quantileMs(cur, old, 0.5); math.Abs(ms-3) > 1e-9 || over || n != 100 {
		t.Errorf("p50 %v over %v n %v, want 3 ms", ms, over, n)
	}
	// One slow request in 100, beyond the last bucket: p99 is in (1, 5],
	// p999-ish beyond the last bound is reported as over.
	cur = BackendTraffic{Bounds: testBounds, Cumulative: []uint64{0, 99, 99, 99, 99}, Count: 100}
	if ms, over, _ := quantileMs(cur, old, 0.995); !over || ms != 100 {
		t.Errorf("p99.5 %v over %v, want > 100 ms", ms, over)
	}
	if ms, _, _ := quantileMs(old, old, 0.5); ms != -1 {
		t.Errorf("no requests: %v, want -1", ms)
	}
	// Only what happened between the readings counts.
	old = BackendTraffic{Bounds: testBounds, Cumulative: []uint64{50, 50, 50, 50, 50}, Count: 50}
	cur = BackendTraffic{Bounds: testBounds, Cumulative: []uint64{50, 50, 50, 150, 150}, Count: 150}
	if ms, _, n := quantileMs(cur, old, 0.5); ms <= 10 || ms > 50 || n != 100 {
		t.Errorf("window p50 %v ms over %v requests, want in (10, 50] over 100", ms, n)
	}
}

// The sampler turns cumulative counters into per-second points, rates and
// percentiles, and keeps no more than 15 minutes of points.
func TestHistoryRatesAndBound(t *testing.T) {
	f := newFixture(t)
	tr := newFakeTraffic("r1", "r2")
	src := f.sources()
	src.Traffic = tr
	s, err := New(func() Config { c := DefaultConfig(); c.Now = f.clk.Now; return c }(), src)
	if err != nil {
		t.Fatal(err)
	}
	s.sample(f.clk.Now())
	for range 20 {
		f.clk.Add(time.Second)
		tr.add(0, 2, 100, 0.003) // r1: 100 ok/s at 3 ms
		tr.add(0, 5, 2, 0.003)   // and 2 errors/s
		tr.add(1, 4, 10, 0.02)   // r2: 10 4xx/s at 20 ms
		s.sample(f.clk.Now())
	}
	rates := s.hist.rates()
	r1, r2 := rates["shop/r1"], rates["shop/r2"]
	if math.Abs(r1.ReqPerSec-102) > 0.01 || math.Abs(r1.Err5PerSec-2) > 0.01 || r1.Err4PerSec != 0 {
		t.Errorf("r1 rates %+v, want 102 req/s, 2 5xx/s", r1)
	}
	if math.Abs(r2.ReqPerSec-10) > 0.01 || math.Abs(r2.Err4PerSec-10) > 0.01 {
		t.Errorf("r2 rates %+v, want 10 req/s, all 4xx", r2)
	}
	if r1.P50Ms <= 1 || r1.P50Ms > 5 || r2.P99Ms <= 10 || r2.P99Ms > 50 {
		t.Errorf("latency r1 p50 %v, r2 p99 %v: want in their buckets", r1.P50Ms, r2.P99Ms)
	}
	pts := s.hist.snapshot()
	if len(pts) != 20 {
		t.Fatalf("%d points after 21 readings a second apart, want 20", len(pts))
	}
	if p := pts[len(pts)-1]; math.Abs(p.reqs-112) > 0.01 || math.Abs(p.err4-10) > 0.01 || math.Abs(p.err5-2) > 0.01 {
		t.Errorf("last point %+v", p)
	}
	// A gap (the sampler stopped) adds no point that would average over it.
	f.clk.Add(time.Minute)
	s.sample(f.clk.Now())
	if n := len(s.hist.snapshot()); n != 20 {
		t.Errorf("a reading a minute later added a point: %d", n)
	}
	// Bounded: 15 minutes of points at most, the newest kept.
	for range historySeconds + 50 {
		f.clk.Add(time.Second)
		s.sample(f.clk.Now())
	}
	pts = s.hist.snapshot()
	if len(pts) != historySeconds || !pts[len(pts)-1].at.Equal(f.clk.Now()) || !pts[0].at.Equal(f.clk.Now().Add(-(historySeconds-1)*time.Second)) {
		t.Errorf("%d points from %v to %v, want %d ending now", len(pts), pts[0].at, pts[len(pts)-1].at, historySeconds)
	}
	if len(s.hist.readings) > windowReadings {
		t.Errorf("%d readings kept", len(s.hist.readings))
	}
}

func TestBuildGraph(t *testing.T) {
	now := t0
	var at []time.Time
	var v []float64
	for i := range 10 {
		at = append(at, now.Add(time.Duration(i-9)*time.Second))
		v = append(v, float64(i))
	}
	v[4] = math.NaN() // a gap splits the line
	g := buildGraph("x", "X", "/s", now, at, []series{{"x", v}})
	if len(g.Series) != 1 || g.Series[0].Points != 9 || strings.Count(g.Series[0].Path, "M") != 2 {
		t.Fatalf("graph %+v: want 9 points in 2 pieces", g)
	}
	if g.MaxLabel != "10/s" || g.Series[0].Last != "9/s" || g.Empty {
		t.Errorf("max %q last %q empty %v", g.MaxLabel, g.Series[0].Last, g.Empty)
	}
	// The newest point sits at the right edge, at its height.
	if !strings.HasSuffix(g.Series[0].Path, "L900.0 10.0") {
		t.Errorf("path ends %q", g.Series[0].Path[max(0, len(g.Series[0].Path)-20):])
	}
	for _, tc := range []struct {
		in, want float64
	}{{0, 1}, {0.3, 1}, {1.5, 2}, {3, 5}, {7, 10}, {12, 20}, {4000, 5000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The overview shows traffic per backend, the graphs as inline SVG, and
// the counters by their human names.
func TestOverviewTrafficAndGraphs(t *testing.T) {
	f := newFixture(t)
	tr := newFakeTraffic("r1", "r2", "r3", "a1", "a2")
	f.transport.list[0].LagLastMs, f.transport.list[0].LagMaxMs = 23, 180
	src := f.sources()
	src.Traffic = tr
	cfg := DefaultConfig()
	cfg.Now = f.clk.Now
	s, err := New(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	s.sample(f.clk.Now())
	for range 5 {
		f.clk.Add(time.Second)
		tr.add(0, 2, 50, 0.002)
		f.transport.list[0].GroupsReceived++
		s.sample(f.clk.Now())
	}
	w := do(t, s.Handler(), req{path: "/"})
	body := w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("overview %d", w.Code)
	}
	for _, want := range []string{
		`id="traffic-table"`, `data-backend="r1" data-healthy="true" data-draining="false" data-rps="50.00"`,
		`id="graph-requests"`, `id="graph-errors"`, `id="graph-binds"`, `id="graph-lag"`, `id="graph-held"`,
		`<path class="line s0" d="M`, `data-points="5"`, `>new bindings<`, `>groups applied<`, `data-counter="binds"`,
		`data-lag-ms="23 ms"`, `>180 ms<`, `id="lookup-form"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	if strings.Index(body, `id="traffic-table"`) > strings.Index(body, `id="members-table"`) {
		t.Error("traffic is not first")
	}
	if strings.Contains(body, "http://") && strings.Contains(body, "<script") {
		t.Error("an external asset or inline script in the overview")
	}
}

func TestBindingsSorted(t *testing.T) {
	f := newFixture(t)
	// Different times left: refresh some bindings later.
	f.clk.Add(time.Minute)
	if _, ok := f.db.Touch(key(t, "10.0.1.7", "shop.test"), f.clk.Now()); !ok {
		t.Fatal("touch: no binding")
	}
	s := f.server(t, nil)
	for _, by := range []string{"left", "backend", "host"} {
		w := do(t, s.Handler(), req{path: "/api/v1/bindings?limit=4&sort=" + by})
		var page BindingsPage
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || w.Code != 200 {
			t.Fatalf("sort=%s: %d %v", by, w.Code, err)
		}
		if len(page.Bindings) != 4 || page.Matched != 9 || page.Sorted != by || page.Next != "" {
			t.Fatalf("sort=%s: %d rows of %d, sorted %q, next %q", by, len(page.Bindings), page.Matched, page.Sorted, page.Next)
		}
		for i := 1; i < len(page.Bindings); i++ {
			a, b := page.Bindings[i-1], page.Bindings[i]
			ok := map[string]bool{"left": a.TimeLeftMs <= b.TimeLeftMs, "backend": a.Replica <= b.Replica, "host": a.Host <= b.Host}[by]
			if !ok {
				t.Errorf("sort=%s: row %d %+v before %+v", by, i, a, b)
			}
		}
	}
	if w := do(t, s.Handler(), req{path: "/api/v1/bindings?sort=client"}); w.Code != 400 || !strings.Contains(w.Body.String(), "sort") {
		t.Errorf("sort=client: %d %s", w.Code, w.Body)
	}
	w := do(t, s.Handler(), req{path: "/bindings?sort=left"})
	if !strings.Contains(w.Body.String(), `id="bindings-sorted" data-sort="left"`) || !strings.Contains(w.Body.String(), `name="sort" value="left"`) {
		t.Errorf("sorted page lacks its note or keeps no sort in the form")
	}
}
