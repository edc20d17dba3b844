package stickydb

// Truncation: pruning epochs that are over, forgetting departed origins, and
// truncating the own log once every live peer has its events.

import (
	"math"
	"slices"
)

// prune drops what TTL + skew has made useless: pairs of epochs that are
// over, and everything of peers that left longer ago than that. It walks
// every origin, gap and peer, so it runs at most once per pruneEvery: at
// 50 nodes, doing it on every Tick was 6 % of the fleet's CPU (10 % at
// 100), for work whose deadlines are TTLs. What reads an epoch's end
// (epochOver) computes it from the clock, not from the pruned vector.
func (db *DB) prune(nowMs, cutoff int64) {
	rs := &db.rs
	if rs.pruned != 0 && nowMs-rs.pruned < pruneEvery && nowMs >= rs.pruned {
		return
	}
	rs.pruned = nowMs
	rs.vv.Prune(cutoff)
	rs.vv.Trim(db.cfg.MaxEpochs)
	for oe := range rs.gaps {
		if rs.epochOver(oe.origin, oe.epoch, cutoff) {
			delete(rs.gaps, oe)
		}
	}
	db.forgetDeparted(nowMs, cutoff)
	for _, p := range rs.peers {
		if p.vector != nil {
			p.vector.Prune(cutoff)
			p.vector.Trim(db.cfg.MaxEpochs)
			p.vecGen++
		}
	}
	for origin, ps := range rs.vv {
		if len(ps) == 0 {
			continue
		}
		if l := rs.clt[origin]; l != nil {
			l.dropEpochsBefore(ps[0].Epoch)
		}
		if origin == db.cfg.Node {
			rs.own.dropEpochsBefore(ps[0].Epoch)
		}
	}
}

// truncateOwn drops the head of the own log (para. 46, 87) while it is
// expired, or known to every peer in the table, or over the size cap; never
// an event not yet persisted.
func (db *DB) truncateOwn(nowMs int64) {
	rs := &db.rs
	for i := range rs.own.segs {
		s := &rs.own.segs[i]
		drop := 0
		covered := uint64(0) // every peer holds s's events up to this
		for drop < s.n {
			ev := s.at(drop)
			if s.epoch == rs.epoch && ev.seq > rs.sendable() {
				break
			}
			expired := ev.expiry+db.refreshMs+db.skewMs <= nowMs
			if !expired && ev.seq > covered {
				c, ok := db.allPeersHave(s.epoch, ev.seq)
				if !ok {
					break
				}
				covered = c
			}
			drop++
		}
		if drop > 0 {
			rs.own.n -= s.trimTo(s.first + uint64(drop))
		}
	}
	rs.pinOwn()
	rs.own.fit()
}

// allPeersHave reports whether every peer's vector covers our event
// (epoch, seq), and if so up to which of our events of epoch they all
// do (at least seq): the events up to there are dropped without asking
// again, where asking the 49 peers' vectors once per event dropped was
// 3 % of a 50-node fleet's CPU. A peer found without it is remembered
// (rs.blocked): while the same event is asked about and that peer's
// vector has not changed, the answer is no without asking the others.
// Every Tick asks about the own log's head, which the peers' vectors
// (sent every few seconds in a large fleet) cover only now and then:
// asking all 49 peers' vectors on every Tick was 6 % of a 50-node
// fleet's CPU.
func (db *DB) allPeersHave(epoch int64, seq uint64) (uint64, bool) {
	rs := &db.rs
	if len(rs.peers) == 0 {
		return 0, false
	}
	if b := &rs.blocked; b.p != nil && b.epoch == epoch && b.seq == seq && b.gen == b.p.vecGen && rs.peers[b.name] == b.p {
		return 0, false
	}
	covered := uint64(math.MaxUint64)
	for name, p := range rs.peers {
		got := p.vector.Get(db.cfg.Node, epoch)
		if got < seq {
			rs.blocked = truncBlock{name: name, p: p, gen: p.vecGen, epoch: epoch, seq: seq}
			return 0, false
		}
		covered = min(covered, got)
	}
	rs.blocked = truncBlock{}
	return covered, true
}

// truncBlock is the peer whose vector last kept an own event from
// truncation (allPeersHave), at that vector's generation.
type truncBlock struct {
	name  string
	p     *peerState
	gen   uint64
	epoch int64
	seq   uint64
}

// LogInfo describes a change log: own or one row of the change log table.
type LogInfo struct {
	Origin string
	Events int
	Epoch  int64  // newest epoch held
	First  uint64 // first event held of it (the truncation point)
	Last   uint64
}

// Logs returns the own log first, then the change log table in origin order.
func (db *DB) Logs() []LogInfo {
	db.mu.Lock()
	defer db.mu.Unlock()
	info := func(o string, l *eventLog) LogInfo {
		li := LogInfo{Origin: o, Events: l.len()}
		if len(l.segs) > 0 {
			s := l.segs[len(l.segs)-1]
			li.Epoch, li.First = s.epoch, s.first
			li.Last = s.first + uint64(s.n) - 1
			if s.n == 0 {
				li.Last = s.first - 1
			}
		}
		return li
	}
	out := []LogInfo{info(db.cfg.Node, db.rs.own)}
	for _, o := range slices.Sorted(mapsKeys(db.rs.clt)) {
		out = append(out, info(o, db.rs.clt[o]))
	}
	return out
}
