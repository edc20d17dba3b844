package web

import (
	"net/http"
	"reflect"
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector reads the sources at scrape time, so no counter is kept twice
// and a scrape always shows what the core holds now.
type collector struct {
	s   *Server
	all []*prometheus.Desc

	bindingsLive, bindingsHeld, ready, epoch, ownSeq *prometheus.Desc
	events, expiries, evictions, capBreaches         *prometheus.Desc
	groups, eventsRecv, refused, requests, copies    *prometheus.Desc
	peerLag, peerHeard, peerLive                     *prometheus.Desc
	logEvents, logFirst                              *prometheus.Desc
	sent, received, decodeErrs, peerBreaches         *prometheus.Desc
	backendHealthy, backendDraining, backendBindings *prometheus.Desc
	members                                          *prometheus.Desc
}

func newCollector(s *Server) *collector {
	c := &collector{s: s}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc("tether_"+name, help, labels, nil)
		c.all = append(c.all, desc)
		return desc
	}
	*c = collector{
		s:               s,
		bindingsLive:    d("bindings_live", "Live bindings held by this node (tombstones excluded), from the last per-replica count."),
		bindingsHeld:    d("bindings_held", "Entries in the binding table, tombstones and not yet swept entries included."),
		ready:           d("ready", "1 when the node has joined and caught up (/readyz)."),
		epoch:           d("epoch_start_seconds", "Start of this node's current epoch, unix seconds."),
		ownSeq:          d("own_seq", "Last own event number in the current epoch."),
		events:          d("binding_events_total", "Own binding events made, by kind.", "kind"),
		expiries:        d("binding_expiries_total", "Live bindings removed by the sweep because they expired."),
		evictions:       d("binding_evictions_total", "Bindings evicted over the table cap."),
		capBreaches:     d("binding_cap_breaches_total", "Bindings refused over the per-origin cap."),
		groups:          d("replication_groups_total", "Change groups received, by outcome (applied, buffered, discarded, duplicate, stale, deferred: of an epoch begun ahead of this node's clock).", "outcome"),
		eventsRecv:      d("replication_events_total", "Events received, by outcome (applied, expired, rejected, deferred: ahead of this node's clock, merged once it catches up).", "outcome"),
		refused:         d("replication_refused_total", "Change groups or vectors refused whole, by reason.", "reason"),
		requests:        d("replication_requests_total", "Requests sent for missing events, by kind (origin and third are range requests; full is a full copy; watchdog).", "kind"),
		copies:          d("replication_full_copies_total", "Full database copies merged."),
		peerLag:         d("replication_lag_events", "Events this node holds that the peer's last vector does not show.", "peer"),
		peerHeard:       d("replication_peer_last_heard_timestamp_seconds", "When the last change group from the peer arrived, unix seconds (0: never).", "peer"),
		peerLive:        d("replication_peer_live", "1 while membership says the peer is alive.", "peer"),
		logEvents:       d("changelog_events", "Events held in a change log: the own log (origin = this node) or the change log table.", "origin"),
		logFirst:        d("changelog_first_seq", "First event held of the newest epoch (the truncation point).", "origin"),
		sent:            d("gossip_groups_sent_total", "Change groups sent, by peer.", "peer"),
		received:        d("gossip_groups_received_total", "Change groups received, by peer.", "peer"),
		decodeErrs:      d("gossip_decode_errors_total", "Messages that did not decode, by peer.", "peer"),
		peerBreaches:    d("gossip_cap_breaches_total", "Groups refused by a cap or format check, by peer.", "peer"),
		backendHealthy:  d("backend_healthy", "1 when the backend passes its health checks.", "pool", "backend"),
		backendDraining: d("backend_draining", "1 while the backend is drained.", "pool", "backend"),
		backendBindings: d("backend_bindings", "Live bindings to the backend's replica name.", "pool", "backend"),
		members:         d("members", "Fleet members by state, as membership sees them.", "state"),
		all:             c.all,
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.all {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	core := s.src.Core
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	counts := s.counts.get()
	live := 0
	for _, n := range counts {
		live += n
	}
	gauge(c.bindingsLive, float64(live))
	gauge(c.bindingsHeld, float64(core.Len()))
	gauge(c.ready, b2f(s.ready()))
	epoch, seq := core.Position()
	gauge(c.epoch, float64(epoch)/1000)
	gauge(c.ownSeq, float64(seq))

	st := core.Stats()
	counter(c.events, st.Binds, "bind")
	counter(c.events, st.Rebinds, "rebind")
	counter(c.events, st.Refreshes, "refresh")
	counter(c.events, st.Deletes, "delete")
	counter(c.expiries, st.Expiries)
	counter(c.evictions, st.Evictions)
	counter(c.capBreaches, st.CapBreaches)
	counter(c.groups, st.GroupsApplied, "applied")
	counter(c.groups, st.GroupsBuffered, "buffered")
	counter(c.groups, st.GroupsDiscarded, "discarded")
	counter(c.groups, st.GroupsDuplicate, "duplicate")
	counter(c.groups, st.GroupsStale, "stale")
	counter(c.groups, st.GroupsDeferred, "deferred")
	counter(c.eventsRecv, st.EventsApplied, "applied")
	counter(c.eventsRecv, st.EventsExpired, "expired")
	counter(c.eventsRecv, st.EventsRejected, "rejected")
	counter(c.eventsRecv, st.EventsDeferred, "deferred")
	counter(c.refused, st.Malformed, "malformed")
	counter(c.refused, st.SeqJumps, "seq_jump")
	counter(c.refused, st.FutureEpochs, "future_epoch")
	counter(c.refused, st.TooMany, "too_many_events")
	counter(c.requests, st.RequestsOrigin, "origin")
	counter(c.requests, st.RequestsThird, "third")
	counter(c.requests, st.RequestsFull, "full")
	counter(c.requests, st.RequestsWatchdog, "watchdog")
	counter(c.copies, st.FullCopies)

	own := core.Vector()
	for _, p := range core.Table() {
		gauge(c.peerLag, float64(lag(own, p.Vector)), p.Name)
		gauge(c.peerHeard, float64(p.Heard)/1000, p.Name)
		gauge(c.peerLive, b2f(p.Live), p.Name)
	}
	for _, l := range core.Logs() {
		gauge(c.logEvents, float64(l.Events), l.Origin)
		gauge(c.logFirst, float64(l.First), l.Origin)
	}
	if s.src.Transport != nil {
		for _, p := range s.src.Transport.PeerStats() {
			counter(c.sent, p.GroupsSent, p.Peer)
			counter(c.received, p.GroupsReceived, p.Peer)
			counter(c.decodeErrs, p.DecodeErrors, p.Peer)
			counter(c.peerBreaches, p.CapBreaches, p.Peer)
		}
	}
	if s.src.Backends != nil {
		for _, b := range s.src.Backends.Backends() {
			gauge(c.backendHealthy, b2f(b.Healthy), b.Pool, b.Name)
			gauge(c.backendDraining, b2f(b.Draining), b.Pool, b.Name)
			gauge(c.backendBindings, float64(counts[b.Name]), b.Pool, b.Name)
		}
	}
	states := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range s.members() {
		states[m.State]++
	}
	for st, n := range states {
		gauge(c.members, float64(n), st)
	}
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

// snakeStats turns the core's counters into snake_case name/value pairs,
// in declaration order, for the overview.
func snakeStats(st any) []NamedCount {
	v := reflect.ValueOf(st)
	t := v.Type()
	out := make([]NamedCount, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Uint64 {
			out = append(out, NamedCount{Name: snake(t.Field(i).Name), Value: f.Uint()})
		}
	}
	return out
}

// NamedCount is one counter for display.
type NamedCount struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
