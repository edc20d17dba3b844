package stickydb

// Departure of origins (finding: departed nodes never left a vector).
//
// An origin that is not a live peer and whose vector entry has not moved
// for TTL + RefreshThreshold + MaxSkew can hold no live binding any more:
// it is forgotten (its vector entry, change log, gaps, table row). Peers
// that still list it would put it back through observe, so its last pair
// is kept as a floor: pairs at or below the floor are ignored, and an
// origin that shows a pair beyond it (it came back, or was never gone for
// a peer on the other side of a partition) is taken in again. Every node
// forgets an origin about when the others do (its entry stopped moving
// everywhere when its events stopped), and a floor is kept for twice that
// span and, beyond it, for as long as a live peer's latest vector still
// lists the origin at or below it: a floor dropped on time alone let a node
// take the origin back from a peer that had not forgotten it yet (after
// the whole fleet's clocks jumped, or from a peer restarted from an old
// snapshot), and the origin went round the fleet once more.

// maxDeparted bounds the floors kept (the oldest go first).
const maxDeparted = 4096

type departure struct {
	floor EpochSeq // the last pair known when it was forgotten
	at    int64    // when, unix ms
}

// moved records that origin's vector entry moved at nowMs. Under db.mu.
func (rs *replState) moved(origin string, nowMs int64) {
	if rs.advanced == nil {
		rs.advanced = map[string]int64{}
	}
	rs.advanced[origin] = nowMs
}

// forgetDeparted forgets the origins that are neither this node nor a live
// peer and whose entry has not moved since cutoff, and drops the floors
// older than twice that span.
func (db *DB) forgetDeparted(nowMs, cutoff int64) {
	rs := &db.rs
	span := nowMs - cutoff
	for o := range rs.vv {
		if o == db.cfg.Node {
			continue
		}
		last := rs.advanced[o]
		if p := rs.peers[o]; p != nil {
			if p.live {
				continue
			}
			last = max(last, p.leftAt, p.heard)
		}
		if last <= cutoff {
			db.forget(o, nowMs)
		}
	}
	for name, p := range rs.peers {
		if !p.live && max(p.leftAt, p.heard) <= cutoff && rs.vv[name] == nil {
			delete(rs.peers, name) // a peer that never made an event
		}
	}
	var listed map[string]bool
	for _, p := range rs.peers {
		if p.live {
			for _, o := range p.lists {
				if listed == nil {
					listed = map[string]bool{}
				}
				listed[o] = true
			}
		}
	}
	for o, d := range rs.departed {
		if d.at+2*span <= nowMs && !listed[o] {
			delete(rs.departed, o)
		}
	}
}

// forget drops everything of origin o and keeps its floor.
func (db *DB) forget(o string, nowMs int64) {
	rs := &db.rs
	floor, _ := rs.vv.Latest(o)
	if rs.departed == nil {
		rs.departed = map[string]departure{}
	}
	if len(rs.departed) >= maxDeparted {
		oldest, at := "", int64(0)
		for n, d := range rs.departed {
			if oldest == "" || d.at < at {
				oldest, at = n, d.at
			}
		}
		delete(rs.departed, oldest)
	}
	rs.departed[o] = departure{floor: floor, at: nowMs}
	delete(rs.vv, o)
	delete(rs.clt, o)
	delete(rs.advanced, o)
	if p := rs.peers[o]; p != nil && !p.live {
		delete(rs.peers, o)
	}
	for _, p := range rs.peers {
		delete(p.vector, o)
		p.vecGen++
	}
	for oe := range rs.gaps {
		if oe.origin == o {
			delete(rs.gaps, oe)
		}
	}
	db.stats.departed.Add(1)
}

// departedCovers reports whether pair p of origin o is at or below the
// floor of a forgotten origin; a pair beyond it takes the origin back.
// Under db.mu.
func (rs *replState) departedCovers(o string, p EpochSeq) bool {
	d, ok := rs.departed[o]
	if !ok {
		return false
	}
	if p.Epoch < d.floor.Epoch || (p.Epoch == d.floor.Epoch && p.Seq <= d.floor.Seq) {
		return true
	}
	delete(rs.departed, o)
	return false
}
