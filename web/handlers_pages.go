package web

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// poolView groups a pool's backends for the pages.
type poolView struct {
	Pool     string
	Hosts    []string
	Backends []BackendView
	Healthy  int
	Bindings int
}

func groupPools(bs []BackendView) []poolView {
	var out []poolView
	for _, b := range bs {
		if len(out) == 0 || out[len(out)-1].Pool != b.Pool {
			out = append(out, poolView{Pool: b.Pool, Hosts: b.Hosts})
		}
		p := &out[len(out)-1]
		p.Backends = append(p.Backends, b)
		p.Bindings += b.Bindings
		if b.Healthy && !b.Draining {
			p.Healthy++
		}
	}
	return out
}

// counterGroup is one box of the overview's replication counters.
type counterGroup struct {
	Title string
	Rows  []counterRow
}

// counterRow is a counter with the name an operator reads; Name stays the
// API's (and the tests' data-counter).
type counterRow struct {
	NamedCount
	Label, Help string
}

// counterLabels name the core's counters for people: box, label, help.
var counterLabels = map[string][3]string{
	"binds":             {"made here", "new bindings", "clients bound by this node"},
	"rebinds":           {"made here", "rebinds", "clients moved to another replica (generation + 1)"},
	"refreshes":         {"made here", "expiry refreshes", "later expiries announced to the fleet"},
	"deletes":           {"made here", "deletes", "bindings deleted by an operator"},
	"expiries":          {"made here", "expired", "bindings removed at expiry"},
	"evictions":         {"made here", "evicted (over the cap)", "bindings removed over TETHER_MAX_BINDINGS"},
	"cap_breaches":      {"refused", "over an origin's cap", "bindings refused over the per-origin cap"},
	"groups_applied":    {"received", "groups applied", "change groups with at least one new event"},
	"groups_buffered":   {"received", "groups held for order", "groups that waited in the reorder buffer"},
	"groups_discarded":  {"received", "groups given up", "buffered groups discarded: the hole stayed open"},
	"groups_duplicate":  {"received", "groups with nothing new", "duplicates"},
	"groups_stale":      {"received", "groups of an ended epoch", "groups of an epoch that is over"},
	"events_applied":    {"received", "events applied", "bindings, refreshes and deletes taken in"},
	"events_expired":    {"received", "expired on arrival", "events already expired when they arrived"},
	"events_rejected":   {"refused", "events refused", "events over a cap (expiry too far ahead, origin full)"},
	"malformed":         {"refused", "malformed groups", "groups that broke the format"},
	"seq_jumps":         {"refused", "sequence jumps", "groups or vectors that jumped too far ahead"},
	"future_epochs":     {"refused", "epochs in the future", "groups or vectors from a clock too far ahead"},
	"too_many":          {"refused", "oversized groups", "groups with too many events"},
	"requests_origin":   {"repairs", "gaps asked of the origin", "range requests sent to the node that made the events"},
	"requests_third":    {"repairs", "gaps asked of a third node", "range requests sent to a node holding the events"},
	"requests_full":     {"repairs", "full copies asked", "full-copy requests"},
	"requests_watchdog": {"repairs", "watchdog requests", "requests to a peer that went silent"},
	"full_copies":       {"repairs", "full copies merged", "whole databases taken in from a peer"},
}

// counterGroups sorts the core's counters into boxes an operator reads at
// a glance; a counter the core adds later lands in "other" under its API
// name.
func counterGroups(cs []NamedCount) []counterGroup {
	titles := []string{"made here", "received", "refused", "repairs", "other"}
	gs := make([]counterGroup, len(titles))
	for i, t := range titles {
		gs[i].Title = t
	}
	for _, c := range cs {
		l, ok := counterLabels[c.Name]
		if !ok {
			l = [3]string{"other", strings.ReplaceAll(c.Name, "_", " "), ""}
		}
		i := slices.Index(titles, l[0])
		gs[i].Rows = append(gs[i].Rows, counterRow{NamedCount: c, Label: l[1], Help: l[2]})
	}
	out := gs[:0]
	for _, g := range gs {
		if len(g.Rows) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// trafficRow is one replica in the overview's traffic table.
type trafficRow struct {
	BackendView
	Rate     BackendRate
	ReqLabel string
	Err4     string
	Err5     string
	P50, P99 string
	ErrClass string // "", "warn" or "bad" for the error columns
}

// nodeRow is one member with its traffic: what it makes and how late its
// changes arrive here.
type nodeRow struct {
	MemberView
	EventsPerSec string // own events it made per second (binds, refreshes, deletes), as seen here
	LagMs        string // replication lag of its last group to this node
	LagMaxMs     string
	LagClass     string
}

type overviewData struct {
	Members      []nodeRow
	HasMembers   bool
	Pools        []poolView
	HasBackends  bool
	Traffic      []trafficRow
	HasTraffic   bool
	ReqPerSec    string
	ErrPerSec    string
	BindsPerSec  string
	Graphs       []graphView
	Counters     []counterGroup
	Peers        []PeerStats
	Changelog    ChangelogResponse
	Digest       Digest
	BindingsLive int
	Certs        []CertView // the TLS listener's; nil without one
}

// lagClass colours a lag: green under 100 ms, amber under 1 s, red above.
func lagClass(ms int64) string {
	switch {
	case ms < 100:
		return "ok-text"
	case ms < 1000:
		return "lag"
	}
	return "bad-text"
}

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request) {
	c := s.src.Core
	now := s.now()
	count, sum, _ := s.counts.digest(s.cfg.DigestMargin)
	bs := s.backends()
	d := overviewData{
		HasMembers: s.src.Members != nil,
		Pools:      groupPools(bs), HasBackends: s.src.Backends != nil, HasTraffic: s.src.Traffic != nil,
		Counters: counterGroups(snakeStats(c.Stats())), Changelog: s.changelog(),
		Digest: digestView(count, sum, s.cfg.DigestMargin), Graphs: s.graphs(now),
		Certs: s.certificates(),
	}
	for _, n := range s.counts.get() {
		d.BindingsLive += n
	}
	rates := s.hist.rates()
	var req, errs float64
	for _, b := range bs {
		rt := rates[b.Pool+"/"+b.Name]
		row := trafficRow{BackendView: b, Rate: rt, ReqLabel: rateLabel(rt.ReqPerSec),
			Err4: rateLabel(rt.Err4PerSec), Err5: rateLabel(rt.Err5PerSec),
			P50: msLabel(rt.P50Ms, false), P99: msLabel(rt.P99Ms, rt.P99Over)}
		if e := rt.Err4PerSec + rt.Err5PerSec; e > 0 && rt.ReqPerSec > 0 {
			row.ErrClass = "warn"
			if e/rt.ReqPerSec >= 0.05 || rt.Err5PerSec > 0 {
				row.ErrClass = "bad"
			}
		}
		req += rt.ReqPerSec
		errs += rt.Err4PerSec + rt.Err5PerSec
		d.Traffic = append(d.Traffic, row)
	}
	d.ReqPerSec, d.ErrPerSec = rateLabel(req), rateLabel(errs)
	origins := s.hist.originRates()
	if pts := s.hist.snapshot(); len(pts) > 0 {
		d.BindsPerSec = rateLabel(pts[len(pts)-1].binds)
	} else {
		d.BindsPerSec = "—"
	}
	peerStats := map[string]PeerStats{}
	if s.src.Transport != nil {
		d.Peers = s.src.Transport.PeerStats()
		sort.Slice(d.Peers, func(i, j int) bool { return d.Peers[i].Peer < d.Peers[j].Peer })
		for _, p := range d.Peers {
			peerStats[p.Peer] = p
		}
	}
	for _, m := range s.members() {
		row := nodeRow{MemberView: m, EventsPerSec: "—", LagMs: "—", LagMaxMs: "—"}
		if v, ok := origins[m.Name]; ok {
			row.EventsPerSec = rateLabel(v)
		}
		if p, ok := peerStats[m.Name]; ok && !m.Self && p.GroupsReceived > 0 {
			row.LagMs, row.LagMaxMs = formatValue(float64(p.LagLastMs), "ms"), formatValue(float64(p.LagMaxMs), "ms")
			row.LagClass = lagClass(p.LagLastMs)
		}
		d.Members = append(d.Members, row)
	}
	s.render(w, r, http.StatusOK, "overview", "Overview", d)
}

type bindingsData struct {
	Filter   Filter
	Page     BindingsPage
	Error    string
	Searched bool
	Backends []string            // for the backend filter's suggestions
	Targets  map[string][]string // host -> replicas a row may be rebound to
	Return   string
	Limits   []int // page sizes offered (the current one included)
}

func (s *Server) bindingsPage(w http.ResponseWriter, r *http.Request) {
	f, q, err := s.parseFilter(r.URL.Query())
	d := bindingsData{Filter: f, Return: r.URL.RequestURI(), Targets: map[string][]string{}}
	for _, n := range []int{25, 50, 100, 500, 1000, f.Limit} {
		if n <= s.cfg.MaxPageSize && !slices.Contains(d.Limits, n) {
			d.Limits = append(d.Limits, n)
		}
	}
	slices.Sort(d.Limits)
	var bs []BackendStatus
	if s.src.Backends != nil {
		bs = s.src.Backends.Backends()
		seen := map[string]bool{}
		for _, b := range bs {
			if !seen[b.Name] {
				seen[b.Name] = true
				d.Backends = append(d.Backends, b.Name)
			}
		}
		sort.Strings(d.Backends)
	}
	status := http.StatusOK
	if err == nil {
		d.Page, err = s.search(f, q)
	}
	if err != nil {
		d.Error, status = inputMessage(err), http.StatusBadRequest
	}
	for _, b := range d.Page.Bindings {
		if _, ok := d.Targets[b.Host]; ok || bs == nil {
			continue
		}
		pool, ok := poolFor(bs, b.Host)
		var names []string
		for _, x := range bs {
			if !ok || x.Pool == pool {
				names = append(names, x.Name)
			}
		}
		sort.Strings(names)
		d.Targets[b.Host] = names
	}
	s.render(w, r, status, "bindings", "Bindings", d)
}

func (s *Server) formKey(w http.ResponseWriter, r *http.Request) (stickydb.Key, bool) {
	k, err := s.parseKey(r.PostFormValue("host"), r.PostFormValue("client"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, inputMessage(err))
		return k, false
	}
	return k, true
}

func (s *Server) bindingDeleteForm(w http.ResponseWriter, r *http.Request) {
	k, ok := s.formKey(w, r)
	if !ok {
		return
	}
	if _, err := s.deleteBinding(k); err != nil {
		s.failErr(w, r, err)
		return
	}
	back(w, r, "/bindings", "deleted", k.Client().String()+" → "+k.Host())
}

func (s *Server) bindingRebindForm(w http.ResponseWriter, r *http.Request) {
	k, ok := s.formKey(w, r)
	if !ok {
		return
	}
	replica := r.PostFormValue("replica")
	if _, err := s.rebind(k, replica); err != nil {
		s.failErr(w, r, err)
		return
	}
	back(w, r, "/bindings", "rebound", k.Client().String()+" → "+k.Host()+" to "+replica)
}

// matrix is the Vectors page's table: rows are this node and each peer's
// last vector, columns the origins.
type matrix struct {
	Origins []string
	Rows    []matrixRow
}

type matrixRow struct {
	Name  string
	Self  bool
	Live  bool
	Heard int64
	Lag   uint64
	Cells []cell
}

type cell struct {
	Origin string
	Has    bool
	Epoch  int64
	Seq    uint64
	Older  int    // older epochs still held
	Behind uint64 // events behind the most advanced row
	Class  string // "ok", "lag", "lag-high", "old", "none"
}

// lagHigh: a cell this many events behind is shown in red.
const lagHigh = 100

func buildMatrix(self string, own stickydb.Vector, table []stickydb.PeerInfo) matrix {
	type row struct {
		name  string
		self  bool
		live  bool
		heard int64
		v     stickydb.Vector
	}
	rows := []row{{name: self, self: true, live: true, v: own}}
	for _, p := range table {
		rows = append(rows, row{p.Name, false, p.Live, p.Heard, p.Vector})
	}
	set := map[string]bool{}
	for _, r := range rows {
		for o := range r.v {
			set[o] = true
		}
	}
	var m matrix
	for o := range set {
		m.Origins = append(m.Origins, o)
	}
	sort.Strings(m.Origins)
	front := map[string]stickydb.EpochSeq{}
	for _, o := range m.Origins {
		for _, r := range rows {
			if p, ok := r.v.Latest(o); ok {
				f := front[o]
				if p.Epoch > f.Epoch || (p.Epoch == f.Epoch && p.Seq > f.Seq) {
					front[o] = p
				}
			}
		}
	}
	for _, r := range rows {
		mr := matrixRow{Name: r.name, Self: r.self, Live: r.live, Heard: r.heard}
		if !r.self {
			mr.Lag = lag(own, r.v)
		}
		for _, o := range m.Origins {
			c := cell{Origin: o, Class: "none"}
			if p, ok := r.v.Latest(o); ok {
				f := front[o]
				c.Has, c.Epoch, c.Seq, c.Older = true, p.Epoch, p.Seq, len(r.v[o])-1
				switch {
				case p.Epoch < f.Epoch:
					c.Behind, c.Class = f.Seq, "old"
				case p.Seq < f.Seq:
					c.Behind, c.Class = f.Seq-p.Seq, "lag"
					if c.Behind >= lagHigh {
						c.Class = "lag-high"
					}
				default:
					c.Class = "ok"
				}
			}
			mr.Cells = append(mr.Cells, c)
		}
		m.Rows = append(m.Rows, mr)
	}
	return m
}

type vectorsData struct {
	Matrix    matrix
	Digest    Digest
	Changelog ChangelogResponse
	Gaps      []GapView
	Now       time.Time
}

func (s *Server) vectorsPage(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	c := s.src.Core
	count, sum, _ := s.counts.digest(s.cfg.DigestMargin)
	d := vectorsData{
		Matrix:    buildMatrix(c.Node(), c.Vector(), c.Table()),
		Digest:    digestView(count, sum, s.cfg.DigestMargin),
		Changelog: s.changelog(), Gaps: s.gaps(), Now: now,
	}
	s.render(w, r, http.StatusOK, "vectors", "Vectors", d)
}

type backendsData struct {
	Pools       []poolView
	HasBackends bool
	Return      string
}

func (s *Server) backendsPage(w http.ResponseWriter, r *http.Request) {
	d := backendsData{Pools: groupPools(s.backends()), HasBackends: s.src.Backends != nil, Return: r.URL.RequestURI()}
	s.render(w, r, http.StatusOK, "backends", "Backends", d)
}

func (s *Server) drainForm(w http.ResponseWriter, r *http.Request) {
	on := r.PostFormValue("drain") == "1"
	b, code, msg := s.setDrain(r.PostFormValue("pool"), r.PostFormValue("name"), on)
	if code != 0 {
		s.fail(w, r, code, msg)
		return
	}
	done := "undrained"
	if on {
		done = "drained"
	}
	back(w, r, "/backends", done, b.Name+" ("+b.Pool+")")
}

func (s *Server) reloadForm(w http.ResponseWriter, r *http.Request) {
	if s.src.Backends == nil {
		s.fail(w, r, http.StatusNotImplemented, "this node has no proxy routes")
		return
	}
	if err := s.src.Backends.Reload(); err != nil {
		s.fail(w, r, http.StatusUnprocessableEntity, "reload: "+err.Error())
		return
	}
	s.log.Info().Msg("admin: routes reloaded")
	back(w, r, "/backends", "reloaded", "")
}
