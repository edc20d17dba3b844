package proxy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus collectors. Per-backend children are
// resolved once, when the backend is built, so that a request costs a few
// atomic adds and no label lookup.
type metrics struct {
	requests *prometheus.CounterVec   // pool, backend, class
	latency  *prometheus.HistogramVec // pool, backend
	healthy  *prometheus.GaugeVec     // pool, backend
	picks    *prometheus.CounterVec   // outcome
	retries  prometheus.Counter

	// Requests answered without a backend (400, 404, 503).
	noBackend [6]prometheus.Counter
	pick      [numOutcomes]prometheus.Counter
}

// Outcomes of replica selection, a label of tether_proxy_selections_total.
const (
	outHit             = iota // bound to a usable replica
	outBind                   // new client bound
	outRebindUnhealthy        // bound replica down: moved
	outRebindRemoved          // bound replica no longer configured: moved
	outRebindRefused          // bound replica refused the connection: moved, retried
	outNone                   // no usable replica (503)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"hit", "bind", "rebind_unhealthy", "rebind_removed", "rebind_refused", "none"}

// classNames index by status/100; 0 is for anything out of range.
var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func classOf(status int) int {
	if c := status / 100; c >= 1 && c <= 5 {
		return c
	}
	return 0
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_proxy_requests_total",
			Help: "Proxied requests by pool, backend and status class (backend \"\" when none was chosen).",
		}, []string{"pool", "backend", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tether_proxy_request_duration_seconds",
			Help:    "Time from request to the end of the response, by pool and backend.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"pool", "backend"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tether_proxy_backend_healthy",
			Help: "1 when the backend passes its health checks, else 0.",
		}, []string{"pool", "backend"}),
		picks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_proxy_selections_total",
			Help: "Replica selections by outcome: hit, bind, rebind_unhealthy, rebind_removed, rebind_refused, none.",
		}, []string{"outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_proxy_retries_total",
			Help: "Requests retried on another replica after a refused connection.",
		}),
	}
	for i, n := range classNames {
		m.noBackend[i] = m.requests.WithLabelValues("", "", n)
	}
	for i, n := range outcomeNames {
		m.pick[i] = m.picks.WithLabelValues(n)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.healthy, m.picks, m.retries} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, errors.Join(ErrConfig, err)
				}
				return nil, err
			}
		}
	}
	return m, nil
}

// backendMetrics are one backend's resolved children.
type backendMetrics struct {
	requests [6]prometheus.Counter
	latency  prometheus.Observer
	healthy  prometheus.Gauge
}

func (m *metrics) forBackend(pool, name string) backendMetrics {
	var bm backendMetrics
	for i, n := range classNames {
		bm.requests[i] = m.requests.WithLabelValues(pool, name, n)
	}
	bm.latency = m.latency.WithLabelValues(pool, name)
	bm.healthy = m.healthy.WithLabelValues(pool, name)
	return bm
}

func (m *metrics) dropBackend(pool, name string) {
	for _, n := range classNames {
		m.requests.DeleteLabelValues(pool, name, n)
	}
	m.latency.DeleteLabelValues(pool, name)
	m.healthy.DeleteLabelValues(pool, name)
}
