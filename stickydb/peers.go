package stickydb

// Peers: the live set (SetPeers), each peer's last vector, and the table the
// admin shows.

import (
	"sort"
	"time"
)

type peerState struct {
	vector Vector // the last vector received from it
	vecGen uint64 // grows with every change to vector (truncateOwn's cache)
	// lists: the forgotten origins its last vector still listed at or
	// below their floor (sanitize left them out of vector); a floor is kept
	// while a peer lists its origin (departed.go).
	lists []string
	// stated: the position of its own events its latest heartbeat (an
	// empty group without a vector) stated. It counts as a claim on a gap
	// (abandon) but is kept apart from vector: readiness takes a peer's
	// whole vector once, and must not take this one pair for it.
	stated EpochSeq
	live   bool
	heard  int64 // last group from it, unix ms
	asked  int64 // last watchdog request to it
	leftAt int64 // when it stopped being live
	// A peer that is not live is forgotten, with its vector entry and
	// change log, TTL + skew after it left or was last heard from.
}

func (rs *replState) peer(name string, nowMs int64) *peerState {
	p := rs.peers[name]
	if p == nil {
		p = &peerState{heard: nowMs, asked: nowMs}
		rs.peers[name] = p
	}
	return p
}

// SetPeers tells the core which peers are alive (from membership). Peers that
// left stay in the version vector table, with their vector entries, until
// TTL + skew after they left: their bindings may be live until then.
func (db *DB) SetPeers(live []string, now time.Time) {
	nowMs := now.UnixMilli()
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	set := make(map[string]bool, len(live))
	for _, n := range live {
		if n != db.cfg.Node && validName(n) {
			set[n] = true
		}
	}
	for n := range set {
		p := rs.peer(n, nowMs)
		if !p.live {
			p.live, p.heard, p.asked = true, nowMs, nowMs
		}
	}
	for n, p := range rs.peers {
		if p.live && !set[n] {
			p.live, p.leftAt = false, nowMs
		}
	}
}

// PeerInfo is one row of the version vector table.
type PeerInfo struct {
	Name   string
	Live   bool
	Vector Vector
	Heard  int64 // last group received from it, unix ms
}

// Table returns the version vector table (Fig. 8), peers in name order.
func (db *DB) Table() []PeerInfo { return db.table(nil) }

// table is Table with the vectors cloned only of the peers clone names
// (nil: all); another peer's row that has a vector gets an empty one, so
// that its having come still shows. A joining node's lifecycle needs each
// peer's vector once: cloning them all on every Tick was N² pairs per node
// 50 times a second, a quarter of the CPU of a 100-node fleet forming in
// one process.
func (db *DB) table(clone func(name string) bool) []PeerInfo {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]PeerInfo, 0, len(db.rs.peers))
	for n, p := range db.rs.peers {
		v := p.vector
		if v != nil {
			if clone == nil || clone(n) {
				v = v.Clone()
			} else {
				v = Vector{}
			}
		}
		out = append(out, PeerInfo{Name: n, Live: p.live, Vector: v, Heard: p.heard})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
