package web

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/tetherproxy/tether/stickydb"
)

// maxBody bounds JSON request bodies.
const maxBody = 4 << 10

func (s *Server) apiIndex(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"node": s.src.Core.Node(),
		"endpoints": []string{
			"GET /api/v1/node", "GET /api/v1/bindings?client=&host=&backend=&deleted=&limit=&cursor=",
			"GET|PUT|DELETE /api/v1/bindings/{host}/{client}", "GET /api/v1/bindings/{host}/{client}?wait=", "GET /api/v1/vector?margin=",
			"GET /api/v1/members", "GET /api/v1/backends", "POST /api/v1/backends/{name}/drain?pool=&wait=&move_idle=",
			"POST /api/v1/backends/{name}/undrain?pool=", "POST /api/v1/routes/reload",
			"GET /api/v1/changelog", "GET /api/v1/gaps", "GET /api/v1/stats", "GET /api/v1/certificates",
		},
	})
}

func (s *Server) apiNode(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.nodeView(s.now()))
}

// findBindings runs a filtered page; both the API and the page call it.
func (s *Server) findBindings(q stickydb.Query) (BindingsPage, error) {
	now := s.now()
	start := time.Now()
	if out, ok := s.findOne(q, now); ok {
		out.TookMs = float64(time.Since(start).Microseconds()) / 1000
		return out, nil
	}
	page, err := s.src.Core.Find(q, now)
	if err != nil {
		if errors.Is(err, stickydb.ErrInvalidKey) {
			return BindingsPage{}, badField("cursor", "invalid (start again without it)")
		}
		return BindingsPage{}, err
	}
	out := BindingsPage{Bindings: make([]BindingView, 0, len(page.Rows)), Next: page.Next, Scanned: page.Scanned}
	for _, row := range page.Rows {
		out.Bindings = append(out.Bindings, bindingView(row.Key, row.Binding, row.LocalExpiry, now))
	}
	out.TookMs = float64(time.Since(start).Microseconds()) / 1000
	return out, nil
}

// search is the bindings search of the page and the API: paged in key
// order, or sorted.
func (s *Server) search(f Filter, q stickydb.Query) (BindingsPage, error) {
	if f.Sort != "" {
		return s.findSorted(f, q)
	}
	return s.findBindings(q)
}

// sortCap bounds the matches a sorted search collects and sorts.
const sortCap = 10_000

// findSorted collects up to sortCap matches of q (pages of MaxPageSize in
// key order), sorts them by f.Sort and returns the first q.Limit. A sorted
// page has no next cursor; Truncated says more than sortCap matched.
func (s *Server) findSorted(f Filter, q stickydb.Query) (BindingsPage, error) {
	start := time.Now()
	limit := q.Limit
	q.Limit, q.Cursor = s.cfg.MaxPageSize, ""
	var all []BindingView
	out := BindingsPage{Sorted: f.Sort}
	for {
		page, err := s.findBindings(q)
		if err != nil {
			return BindingsPage{}, err
		}
		out.Scanned += page.Scanned
		all = append(all, page.Bindings...)
		if page.Next == "" {
			break
		}
		if len(all) >= sortCap {
			out.Truncated = true
			break
		}
		q.Cursor = page.Next
	}
	out.Matched = len(all)
	sortBindings(all, f.Sort)
	out.Bindings = all[:min(limit, len(all))]
	out.TookMs = float64(time.Since(start).Microseconds()) / 1000
	return out, nil
}

// sortBindings orders by time left, backend or host; ties by host, client.
func sortBindings(bs []BindingView, by string) {
	key := func(a, b BindingView) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Client, b.Client)
	}
	slices.SortStableFunc(bs, func(a, b BindingView) int {
		switch by {
		case "left":
			if c := cmp.Compare(a.TimeLeftMs, b.TimeLeftMs); c != 0 {
				return c
			}
		case "backend":
			if c := strings.Compare(a.Replica, b.Replica); c != 0 {
				return c
			}
		}
		return key(a, b)
	})
}

// findOne answers the commonest question, "this client on this host",
// with one lookup instead of a walk of the table.
func (s *Server) findOne(q stickydb.Query, now time.Time) (BindingsPage, bool) {
	if q.Cursor != "" || q.Host == "" || !q.Client.IsValid() || !q.Client.IsSingleIP() {
		return BindingsPage{}, false
	}
	k, err := stickydb.NewKey(q.Client.Addr(), q.Host)
	if err != nil {
		return BindingsPage{}, false
	}
	out := BindingsPage{Bindings: []BindingView{}, Scanned: 1}
	b, ok := s.src.Core.Lookup(k)
	local, _ := s.src.Core.LocalExpiry(k)
	if ok && local > now.UnixMilli() && (!b.Deleted || q.Deleted) && (q.Replica == "" || (b.Replica == q.Replica && !b.Deleted)) {
		out.Bindings = append(out.Bindings, bindingView(k, b, local, now))
	}
	return out, true
}

func (s *Server) apiBindings(w http.ResponseWriter, r *http.Request) {
	f, q, err := s.parseFilter(r.URL.Query())
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, inputMessage(err))
		return
	}
	page, err := s.search(f, q)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// failErr maps an error to its status: bad input 400, not found 404,
// anything else 500 (logged).
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errBadInput):
		s.fail(w, r, http.StatusBadRequest, inputMessage(err))
	case errors.Is(err, stickydb.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "no live binding for that client and host")
	case errors.Is(err, stickydb.ErrInvalidKey), errors.Is(err, stickydb.ErrInvalidBinding):
		s.fail(w, r, http.StatusBadRequest, err.Error())
	default:
		s.log.Error().Err(err).Str("path", r.URL.Path).Msg("admin: request failed")
		s.fail(w, r, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) pathKey(w http.ResponseWriter, r *http.Request) (stickydb.Key, bool) {
	k, err := s.parseKey(chi.URLParam(r, "host"), chi.URLParam(r, "client"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, inputMessage(err))
		return k, false
	}
	return k, true
}

// lookup returns the live binding of k (tombstones count as absent).
func (s *Server) lookup(k stickydb.Key, now time.Time) (BindingView, bool) {
	b, ok := s.src.Core.Lookup(k)
	if !ok {
		return BindingView{}, false
	}
	local, _ := s.src.Core.LocalExpiry(k)
	if b.Deleted || local <= now.UnixMilli() {
		return BindingView{}, false
	}
	return bindingView(k, b, local, now), true
}

// apiBindingGet answers the binding of one key. With ?wait=DURATION it is
// a blocking query: it answers as soon as the key has a live binding on
// this node (a replicated one the moment it is merged), or 404 at the
// deadline; a script waiting for a binding to reach a node needs no poll
// loop, and a measurement of replication sees the arrival, not the next
// poll. At most maxBindingWaiters wait at once (503 beyond).
func (s *Server) apiBindingGet(w http.ResponseWriter, r *http.Request) {
	k, ok := s.pathKey(w, r)
	if !ok {
		return
	}
	var wait time.Duration
	if q := r.URL.Query().Get("wait"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d <= 0 || d > maxBindingWait {
			s.fail(w, r, http.StatusBadRequest, "wait: want a duration in (0, "+maxBindingWait.String()+"], like 2s")
			return
		}
		wait = d
	}
	if v, ok := s.lookup(k, s.now()); ok || wait == 0 {
		s.answerBinding(w, r, k, v, ok)
		return
	}
	select {
	case s.bindWaiters <- struct{}{}:
		defer func() { <-s.bindWaiters }()
	default:
		s.fail(w, r, http.StatusServiceUnavailable, "too many requests waiting for a binding; try again")
		return
	}
	// The admin server's WriteTimeout would cut a long wait.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		if s.waitBinding(w, r, k, deadline.C) {
			return
		}
	}
}

// waitBinding is one round of apiBindingGet's wait: it answers and
// reports true once k is live, at the deadline, or when the client left;
// false when a write to k woke it.
func (s *Server) waitBinding(w http.ResponseWriter, r *http.Request, k stickydb.Key, deadline <-chan time.Time) bool {
	// Watch before the lookup: a merge between the two closes it.
	changed, cancel := s.src.Core.Watch(k)
	defer cancel()
	if v, ok := s.lookup(k, s.now()); ok {
		s.answerBinding(w, r, k, v, true)
		return true
	}
	select {
	case <-changed:
		return false
	case <-deadline:
		s.answerBinding(w, r, k, BindingView{}, false)
		return true
	case <-r.Context().Done():
		return true
	}
}

// maxBindingWait bounds GET /api/v1/bindings/{host}/{client}?wait=;
// maxBindingWaiters bounds how many such requests wait at once.
const (
	maxBindingWait    = time.Minute
	maxBindingWaiters = 256
)

func (s *Server) answerBinding(w http.ResponseWriter, r *http.Request, k stickydb.Key, v BindingView, ok bool) {
	if !ok {
		s.fail(w, r, http.StatusNotFound, "no live binding for "+k.String())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) apiBindingDelete(w http.ResponseWriter, r *http.Request) {
	k, ok := s.pathKey(w, r)
	if !ok {
		return
	}
	v, err := s.deleteBinding(k)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteBinding(k stickydb.Key) (BindingView, error) {
	now := s.now()
	// The core answers a delete of a tombstone with the tombstone; for the
	// operator that binding is gone already.
	if _, ok := s.lookup(k, now); !ok {
		return BindingView{}, stickydb.ErrNotFound
	}
	b, err := s.src.Core.Delete(k, now)
	if err != nil {
		return BindingView{}, err
	}
	s.counts.invalidate()
	local, _ := s.src.Core.LocalExpiry(k)
	s.log.Info().Str("key", k.String()).Uint32("generation", b.Generation).Msg("admin: binding deleted")
	return bindingView(k, b, local, now), nil
}

// RebindRequest is the body of PUT /api/v1/bindings/{host}/{client}.
type RebindRequest struct {
	Replica string `json:"replica"`
}

func (s *Server) apiBindingPut(w http.ResponseWriter, r *http.Request) {
	k, ok := s.pathKey(w, r)
	if !ok {
		return
	}
	var req RebindRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(w, r, http.StatusBadRequest, `body: want {"replica": "<backend name>"}: `+err.Error())
		return
	}
	v, err := s.rebind(k, req.Replica)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) rebind(k stickydb.Key, replica string) (BindingView, error) {
	if err := s.checkReplica(k.Host(), replica); err != nil {
		return BindingView{}, err
	}
	now := s.now()
	b, _, err := s.src.Core.Rebind(k, "", replica, now)
	if err != nil {
		return BindingView{}, err
	}
	s.counts.invalidate()
	local, _ := s.src.Core.LocalExpiry(k)
	s.log.Info().Str("key", k.String()).Str("replica", replica).Uint32("generation", b.Generation).Msg("admin: binding rebound")
	return bindingView(k, b, local, now), nil
}

func (s *Server) apiVector(w http.ResponseWriter, r *http.Request) {
	margin := s.cfg.DigestMargin
	if m := r.URL.Query().Get("margin"); m != "" {
		d, err := time.ParseDuration(m)
		if err != nil || d < 0 || d > 24*time.Hour {
			s.fail(w, r, http.StatusBadRequest, "margin: "+m+" is not a duration from 0s to 24h")
			return
		}
		margin = d
	}
	writeJSON(w, http.StatusOK, s.vectorResponse(s.now(), margin))
}

// apiMembers answers an array of {name, addr, state, ...}.
func (s *Server) apiMembers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.members())
}

func (s *Server) apiBackends(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backends())
}

// findBackend resolves a backend name (and optional pool). A name in
// several pools needs the pool.
func (s *Server) findBackend(pool, name string) (BackendStatus, int, string) {
	if s.src.Backends == nil {
		return BackendStatus{}, http.StatusNotImplemented, "this node has no proxy backends"
	}
	var hits []BackendStatus
	for _, b := range s.src.Backends.Backends() {
		if b.Name == name && (pool == "" || b.Pool == pool) {
			hits = append(hits, b)
		}
	}
	switch len(hits) {
	case 0:
		if pool != "" {
			return BackendStatus{}, http.StatusNotFound, "no backend " + name + " in pool " + pool
		}
		return BackendStatus{}, http.StatusNotFound, "no backend " + name
	case 1:
		return hits[0], 0, ""
	default:
		return BackendStatus{}, http.StatusBadRequest, "pool: backend " + name + " is in several pools; add ?pool="
	}
}

func (s *Server) setDrain(pool, name string, on bool) (BackendStatus, int, string) {
	b, code, msg := s.findBackend(pool, name)
	if code != 0 {
		return b, code, msg
	}
	if err := s.src.Backends.SetDrain(b.Pool, b.Name, on); err != nil {
		s.log.Error().Err(err).Str("backend", name).Msg("admin: drain failed")
		return b, http.StatusInternalServerError, "drain: " + err.Error()
	}
	s.log.Info().Str("pool", b.Pool).Str("backend", b.Name).Bool("drain", on).Msg("admin: drain changed")
	if nb, code, _ := s.findBackend(b.Pool, b.Name); code == 0 {
		return nb, 0, ""
	}
	b.Draining = on
	return b, 0, ""
}

// apiDrain is POST /api/v1/backends/{name}/drain and .../undrain; an
// optional ?pool= picks the pool when the name is in several.
func (s *Server) apiDrain(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if on && wantsWait(r) { // drain until empty (drainwait.go)
			s.apiDrainWait(w, r)
			return
		}
		b, code, msg := s.setDrain(r.URL.Query().Get("pool"), chi.URLParam(r, "name"), on)
		if code != 0 {
			s.fail(w, r, code, msg)
			return
		}
		writeJSON(w, http.StatusOK, b)
	}
}

func (s *Server) apiReload(w http.ResponseWriter, r *http.Request) {
	if s.src.Backends == nil {
		s.fail(w, r, http.StatusNotImplemented, "this node has no proxy routes")
		return
	}
	if err := s.src.Backends.Reload(); err != nil {
		s.fail(w, r, http.StatusUnprocessableEntity, "reload: "+err.Error())
		return
	}
	s.log.Info().Msg("admin: routes reloaded")
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

func (s *Server) apiChangelog(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.changelog())
}

func (s *Server) apiGaps(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.gaps())
}

// StatsResponse is GET /api/v1/stats: the core's counters and, when the
// transport reports them, per-peer counters.
type StatsResponse struct {
	Core  map[string]uint64 `json:"core"`
	Peers []PeerStats       `json:"peers"`
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.statsResponse())
}

func (s *Server) statsResponse() StatsResponse {
	resp := StatsResponse{Core: map[string]uint64{}, Peers: []PeerStats{}}
	for _, c := range snakeStats(s.src.Core.Stats()) {
		resp.Core[c.Name] = c.Value
	}
	if s.src.Transport != nil {
		resp.Peers = s.src.Transport.PeerStats()
	}
	return resp
}
