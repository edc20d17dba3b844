package stickydb

// Replication state of one node: its own log and position, the version
// vector, the change logs of the others; the shared helpers of receive.go,
// gaps.go, peers.go, truncate.go, answer.go and epochs.go.

import (
	"cmp"
	"strings"
	"sync/atomic"
)

// replState is the replication side of the DB, guarded by DB.mu.
type replState struct {
	cfg   Config
	epoch int64  // this node's current epoch (unix ms)
	seq   uint64 // last own event number in epoch
	// provisional: the epoch is the one New started and nothing has used it
	// yet (no own event, no NewEpoch); a restore from disk replaces it.
	provisional bool
	persisted   uint64 // last own event number written to disk (Durable only)
	own         *eventLog
	vv          Vector                // the current version vector (Fig. 5, 12)
	peers       map[string]*peerState // version vector table (Fig. 8) and liveness
	clt         map[string]*eventLog  // change log table (Fig. 10)
	blocked     truncBlock            // allPeersHave's cache
	gaps        map[originEpoch]*gapState
	recent      []GapRecord          // newest last, bounded
	ahead       int64                // the latest own epoch a peer showed (see ownEpochAhead)
	advanced    map[string]int64     // when each origin's vector entry last moved (departed.go)
	departed    map[string]departure // floors of forgotten origins (departed.go)
	// lastNow is the latest `now` any call passed in, for the calls that
	// take none (OwnEvents).
	lastNow   int64
	sweepNext atomic.Uint64
	// pruned is when prune last walked the origins and peers: at most
	// once per pruneEvery, not on every Tick.
	pruned int64
}

// pruneEvery: prune's walks over every origin and peer run at most this
// often (ms).
const pruneEvery = 1000

type originEpoch struct {
	origin string
	epoch  int64
}

func compareOE(a, b originEpoch) int {
	if c := strings.Compare(a.origin, b.origin); c != 0 {
		return c
	}
	return cmp.Compare(a.epoch, b.epoch)
}

func (rs *replState) init(cfg Config, nm *names, nowMs int64) {
	rs.cfg = cfg
	rs.epoch, rs.provisional = nowMs, true
	rs.lastNow = nowMs
	rs.own = newEventLog(cfg.OwnLogCap, nm)
	rs.vv = Vector{cfg.Node: {{Epoch: nowMs}}}
	rs.peers = map[string]*peerState{}
	rs.clt = map[string]*eventLog{}
	rs.gaps = map[originEpoch]*gapState{}
}

// pinOwn keeps own events not yet persisted out of the cap's reach
// (Durable): the write-ahead log must still get them, or a restart from
// disk would lack bindings that its vector says it has. The log then runs
// over OwnLogCap until the shell persists.
func (rs *replState) pinOwn() {
	if rs.cfg.Durable {
		rs.own.pin(rs.epoch, rs.persisted)
	}
}

// seen records nowMs as the latest time known.
func (rs *replState) seen(nowMs int64) { rs.lastNow = max(rs.lastNow, nowMs) }

func (rs *replState) appendOwn(kind EventKind, k Key, b Binding) {
	rs.provisional = false
	rs.seq++
	ev := Event{Seq: rs.seq, Kind: kind, Key: k, Binding: b}
	rs.pinOwn()
	rs.own.add(rs.epoch, []Event{ev})
	rs.vv.Advance(rs.cfg.Node, rs.epoch, rs.seq)
}

// sendable is the last own event that may leave the node.
func (rs *replState) sendable() uint64 {
	if rs.cfg.Durable {
		return rs.persisted
	}
	return rs.seq
}

// advertised is the vector this node shows peers: its own current epoch
// stops at what may be sent.
func (rs *replState) advertised() Vector {
	v := rs.vv.Clone()
	ps := v[rs.cfg.Node]
	for i := range ps {
		if ps[i].Epoch == rs.epoch {
			ps[i].Seq = rs.sendable()
		}
	}
	return v
}

// cutoff is the start time before which an epoch is over once a later one
// began: every event of it has then passed its announced expiry plus the
// hold every node gives a binding (RefreshThreshold) plus the skew.
func (rs *replState) cutoff(nowMs int64) int64 {
	return nowMs - rs.cfg.TTL.Milliseconds() - rs.cfg.RefreshThreshold.Milliseconds() - rs.cfg.MaxSkew.Milliseconds()
}

// epochOver reports whether origin's epoch can hold no live event: a later
// epoch of the same origin began more than TTL + skew ago.
func (rs *replState) epochOver(origin string, epoch, cutoff int64) bool {
	return overIn(rs.vv[origin], epoch, cutoff)
}

// overIn reports whether ps (one origin's pairs, in order) shows epoch
// over: a later epoch in it began before cutoff.
func overIn(ps []EpochSeq, epoch, cutoff int64) bool {
	for _, p := range ps {
		if p.Epoch > epoch && p.Epoch <= cutoff {
			return true
		}
	}
	return false
}

// laterIn reports whether ps (in order) holds an epoch later than epoch.
func laterIn(ps []EpochSeq, epoch int64) bool {
	return len(ps) > 0 && ps[len(ps)-1].Epoch > epoch
}

func mapsKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
