package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// Drain until empty: POST /api/v1/backends/{name}/drain?wait=DURATION
// drains the replica fleet-wide, as without wait, then answers once no
// node of the fleet holds a live binding to it, or at the deadline with
// what is left. &move_idle=DURATION moves, every round, the bindings idle
// longer than that to the replica their next request would get (rebind,
// generation + 1), so a drain ends in minutes rather than a TTL.

// DrainWaiter is what a drain wait needs beyond Backends. The Backends
// source implements it when the node can ask its peers (cmd/tether's
// does); without it a wait answers 501.
type DrainWaiter interface {
	// LiveBindings counts the live bindings to the replica on every node
	// (each node's own view). It blocks until every live node answered or
	// ctx ends; nodes that did not answer are listed in Missing.
	LiveBindings(ctx context.Context, pool, name string) (FleetLive, error)
	// MoveIdle rebinds the bindings to the replica that no node used for
	// idle, and returns how many moved. It may walk the whole table.
	MoveIdle(pool, name string, idle time.Duration) (int, error)
}

// FleetLive is one count of a replica's live bindings across the fleet.
type FleetLive struct {
	Nodes   []NodeLive `json:"nodes"`   // this node first
	Missing []string   `json:"missing"` // live peers that did not answer
}

// NodeLive is one node's count.
type NodeLive struct {
	Node string `json:"node"`
	Live int    `json:"live"`
}

// Left is the most live bindings any node holds.
func (f FleetLive) Left() int {
	m := 0
	for _, n := range f.Nodes {
		m = max(m, n.Live)
	}
	return m
}

// DrainWaitResult is the answer of a drain with wait.
type DrainWaitResult struct {
	Backend  BackendStatus `json:"backend"`
	Empty    bool          `json:"empty"` // no node holds a live binding (every live node answered)
	Left     int           `json:"left"`  // the most live bindings a node still holds
	Moved    int           `json:"moved"` // idle bindings moved (move_idle)
	WaitedMs int64         `json:"waited_ms"`
	Rounds   int           `json:"rounds"`
	FleetLive
}

const (
	// maxDrainWait bounds ?wait=.
	maxDrainWait = 24 * time.Hour
	// drainRound is the least time between two counts.
	drainRound = time.Second
	// drainAsk bounds one round's wait for the peers' answers.
	drainAsk = 5 * time.Second
)

// apiDrainWait serves POST .../drain?wait=; apiDrain hands it over.
func (s *Server) apiDrainWait(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	wait, err := time.ParseDuration(q.Get("wait"))
	if err != nil || wait <= 0 || wait > maxDrainWait {
		s.fail(w, r, http.StatusBadRequest, "wait: want a duration in (0, 24h], like 10m")
		return
	}
	var idle time.Duration
	if v := q.Get("move_idle"); v != "" {
		if idle, err = time.ParseDuration(v); err != nil || idle <= 0 {
			s.fail(w, r, http.StatusBadRequest, "move_idle: want a duration > 0, like 2m")
			return
		}
	}
	waiter, ok := s.src.Backends.(DrainWaiter)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, "this node cannot count its peers' bindings")
		return
	}
	b, code, msg := s.setDrain(q.Get("pool"), chi.URLParam(r, "name"), true)
	if code != 0 {
		s.fail(w, r, code, msg)
		return
	}
	start := time.Now()
	deadline := start.Add(wait)
	// The admin server's WriteTimeout would cut a long wait.
	_ = http.NewResponseController(w).SetWriteDeadline(deadline.Add(drainAsk + 10*time.Second))
	res := DrainWaitResult{Backend: b}
	for {
		res.Rounds++
		if idle > 0 {
			moved, err := waiter.MoveIdle(b.Pool, b.Name, idle)
			res.Moved += moved
			if err != nil {
				s.log.Warn().Err(err).Str("backend", b.Name).Msg("admin: drain: moving idle bindings")
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), min(drainAsk, max(time.Until(deadline), 100*time.Millisecond)))
		fl, err := waiter.LiveBindings(ctx, b.Pool, b.Name)
		cancel()
		if err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, "drain: counting bindings: "+err.Error())
			return
		}
		res.FleetLive, res.Left = fl, fl.Left()
		res.Empty = len(fl.Missing) == 0 && res.Left == 0
		if res.Empty || !time.Now().Add(drainRound).Before(deadline) || r.Context().Err() != nil {
			break
		}
		select {
		case <-r.Context().Done():
		case <-time.After(drainRound):
		}
	}
	res.WaitedMs = time.Since(start).Milliseconds()
	if res.Nodes == nil {
		res.Nodes = []NodeLive{}
	}
	if res.Missing == nil {
		res.Missing = []string{}
	}
	s.log.Info().Str("pool", b.Pool).Str("backend", b.Name).Bool("empty", res.Empty).Int("left", res.Left).
		Int("moved", res.Moved).Str("waited", time.Duration(res.WaitedMs*int64(time.Millisecond)).String()).Msg("admin: drain wait done")
	writeJSON(w, http.StatusOK, res)
}

// wantsWait says whether a drain request asks to wait.
func wantsWait(r *http.Request) bool {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return false
	}
	if n, err := strconv.Atoi(v); err == nil && n == 0 {
		return false
	}
	return true
}
