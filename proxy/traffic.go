package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// BackendTraffic is one replica's cumulative traffic since it was first
// configured under its pool and name (the Prometheus series' values):
// the admin turns two readings into rates and latency percentiles.
type BackendTraffic struct {
	Pool, Name string
	// Classes counts responses by status class: [0] other, [1] 1xx ...
	// [5] 5xx (tether's own 502/504 for a failed replica included).
	Classes [6]uint64
	// Bounds are the latency histogram's bucket upper bounds in seconds;
	// Cumulative[i] counts requests that took at most Bounds[i]; Count
	// counts them all (the +Inf bucket).
	Bounds     []float64
	Cumulative []uint64
	Count      uint64
}

// Traffic reads every configured replica's counters. It takes no lock the
// request path takes and allocates a few small slices per replica; the
// admin calls it once a second.
func (p *Proxy) Traffic() []BackendTraffic {
	t := p.table.Load()
	var out []BackendTraffic
	var m dto.Metric
	for _, pl := range t.pools {
		for _, b := range pl.backends {
			bt := BackendTraffic{Pool: pl.name, Name: b.name}
			for i, c := range b.m.requests {
				m.Reset()
				if c.Write(&m) == nil && m.Counter != nil {
					bt.Classes[i] = uint64(m.Counter.GetValue())
				}
			}
			m.Reset()
			if h, ok := b.m.latency.(prometheus.Metric); ok && h.Write(&m) == nil && m.Histogram != nil {
				for _, bk := range m.Histogram.Bucket {
					bt.Bounds = append(bt.Bounds, bk.GetUpperBound())
					bt.Cumulative = append(bt.Cumulative, bk.GetCumulativeCount())
				}
				bt.Count = m.Histogram.GetSampleCount()
			}
			out = append(out, bt)
		}
	}
	return out
}
