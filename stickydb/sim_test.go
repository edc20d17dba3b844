package stickydb

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// A synchronous in-memory network of nodes, driven by rapid (CONVENTIONS 10):
// every message is a value in flight until the test delivers, drops or
// duplicates it, in any order. The nodes are real DBs; the test plays their
// shells (push, tick, answer, full copy, disk).

var debugSim = os.Getenv("SIMDEBUG") != ""

// simStrict: in the fleet simulation, nodes not ready serve nobody instead
// of serving with provisional binds (as cmd does); the lifetime test is
// always strict.
var simStrict = os.Getenv("SIM_STRICT") == "1"

type simMsgKind int

const (
	msgGroup simMsgKind = iota
	msgReq
	msgCopy
)

type simMsg struct {
	kind     simMsgKind
	from, to int
	group    Group
	req      Request
	recs     []Record
	meta     SnapshotMeta
}

type simNode struct {
	name string
	db   *DB
	life *Lifecycle
	// want: the live bindings each other node held when this one
	// restarted without a disk; checked when its lifecycle says caught up,
	// for the holders that have not restarted since.
	want    map[int]heldBy
	inc     int // incarnation: starts so far
	disk    bool
	cursors map[int]uint64 // own events pushed to each peer (current epoch)
	epoch   int64

	// disk mode: what survives a crash
	snapRecs  []Record
	snapMeta  *SnapshotMeta
	logEpoch  int64
	logEvents []Event
	persisted uint64
}

type simNet struct {
	t       *rapid.T
	cfg     Config
	now     time.Time
	nodes   []*simNode
	msgs    []simMsg
	cut     map[[2]int]bool
	keys    []Key
	pool    []string
	seen    []map[Key]Binding          // per node: the last live binding observed
	created map[keyGen]map[string]bool // replicas bound per (key, generation)
	gone    map[string]bool            // names not in the fleet a request may go to (left for good, a rogue peer): dropped
	// strict: a node not ready serves nobody, clients nor the operator
	// (the load balancer follows /readyz); otherwise it serves with
	// provisional binds, as cmd does.
	strict bool
	// readyBy counts how nodes became ready, by Ready.Why; checked the
	// restarted nodes checkCaughtUp checked.
	readyBy map[string]int
	checked int
}

type heldBy struct {
	inc  int // the holder's incarnation
	live map[Key]Binding
}

type keyGen struct {
	k   Key
	gen uint32
}

func newSim(t *rapid.T) *simNet {
	n := rapid.IntRange(2, 7).Draw(t, "nodes")
	s := newSimNet(t, [3]byte{192, 0, 2})
	s.strict = simStrict
	for i := 0; i < n; i++ {
		nd := &simNode{name: fmt.Sprintf("n%d", i), disk: rapid.Bool().Draw(t, fmt.Sprintf("disk%d", i))}
		s.nodes = append(s.nodes, nd)
		s.seen = append(s.seen, map[Key]Binding{})
	}
	for i := range s.nodes {
		s.start(i, false)
	}
	return s
}

// newSimNet is a simulated network without nodes: a drawn configuration
// (small logs and caps, to reach their edges) and 12 keys, 6 clients of
// net.0/24 on two hosts.
func newSimNet(t *rapid.T, net [3]byte) *simNet {
	cfg := DefaultConfig("")
	cfg.Shards = 4
	cfg.OwnLogCap = rapid.SampledFrom([]int{8, 64, 10_000}).Draw(t, "ownLogCap")
	cfg.ChangeLogTableCap = rapid.SampledFrom([]int{4, 1000}).Draw(t, "cltCap")
	cfg.ReorderGroups = rapid.SampledFrom([]int{1, 64}).Draw(t, "reorder")
	s := &simNet{t: t, cfg: cfg, now: t0, cut: map[[2]int]bool{}, pool: []string{"r1", "r2", "r3"},
		created: map[keyGen]map[string]bool{}, readyBy: map[string]int{}}
	for c := 0; c < 6; c++ {
		for _, h := range []string{"a", "b"} {
			k, _ := NewKey(netip.AddrFrom4([4]byte{net[0], net[1], net[2], byte(c)}), h)
			s.keys = append(s.keys, k)
		}
	}
	return s
}

func (s *simNet) nodeCfg(i int) Config {
	c := s.cfg
	c.Node = s.nodes[i].name
	c.Durable = s.nodes[i].disk
	return c
}

func (s *simNet) peers(i int) []string {
	var out []string
	for j, nd := range s.nodes {
		if j != i {
			out = append(out, nd.name)
		}
	}
	return out
}

// start (re)creates node i's DB and its Lifecycle: from its disk in disk
// mode, else a new epoch whose lifecycle asks a peer for a full copy
// (Fig. 11, 12). The node has joined; it serves (provisionally, or not at
// all when strict) until its lifecycle says ready.
func (s *simNet) start(i int, restart bool) {
	nd := s.nodes[i]
	s.now = s.now.Add(time.Millisecond) // a new epoch is always a later one
	if restart {
		// What was in flight to the old process dies with it: its
		// successor must not take a vector older than the restart for
		// the first one a peer showed it (checkCaughtUp).
		s.msgs = slices.DeleteFunc(s.msgs, func(m simMsg) bool { return m.to == i })
	}
	db, err := New(s.nodeCfg(i), s.now)
	if err != nil {
		s.t.Fatal(err)
	}
	nd.db = db
	nd.cursors = map[int]uint64{}
	nd.want = nil
	nd.inc++
	db.SetPeers(s.peers(i), s.now)
	restored := nd.disk && (nd.snapMeta != nil || len(nd.logEvents) > 0)
	nd.life = NewLifecycle(db, LifeConfig{InitialCopy: !restored, Provisional: true})
	nd.life.Joined(s.now, false)
	if restart && !restored {
		nd.want = s.fleetLive(i)
	}
	if restored {
		if nd.snapMeta != nil {
			if _, err := db.MergeRecords(nd.snapRecs, s.now); err != nil {
				s.t.Fatal(err)
			}
			if err := db.RestoreOwn(*nd.snapMeta); err != nil {
				s.t.Fatal(err)
			}
		}
		if len(nd.logEvents) > 0 {
			if err := db.ReplayOwn(nd.logEpoch, nd.logEvents, s.now); err != nil {
				s.t.Fatal(err)
			}
		}
		_, seq := db.Position()
		for j := range s.nodes {
			nd.cursors[j] = seq
		}
	}
	nd.epoch, _ = db.Position()
}

// fleetLive returns the live bindings each node other than i holds. A
// disk-mode node with own events not yet persisted is left out: it may
// not tell anyone of them yet (persist, then send), so its table holds
// more than its vector shows.
func (s *simNet) fleetLive(i int) map[int]heldBy {
	out := map[int]heldBy{}
	nowMs := s.now.UnixMilli()
	for j, nd := range s.nodes {
		if j == i || nd.db == nil {
			continue
		}
		if e, seq := nd.db.Position(); nd.disk && nd.db.Vector().Get(nd.name, e) < seq {
			continue
		}
		h := heldBy{inc: nd.inc, live: map[Key]Binding{}}
		for _, k := range s.keys {
			if b, ok := nd.db.Lookup(k); ok && b.Live(nowMs) {
				h.live[k] = b
			}
		}
		out[j] = h
	}
	return out
}

// checkCaughtUp: a node restarted without a disk that its lifecycle says
// caught up holds every binding the other nodes held at its restart (or
// one that beats it), unless it has expired since or its holder restarted
// since (two nodes restarted without a disk lose what only they held).
func (s *simNet) checkCaughtUp(i int) {
	nd := s.nodes[i]
	nowMs := s.now.UnixMilli()
	for j, h := range nd.want {
		if s.nodes[j].inc != h.inc {
			continue
		}
		for k, w := range h.live {
			if w.Expiry <= nowMs {
				continue
			}
			cur, ok := nd.db.Lookup(k)
			if !ok {
				s.t.Fatalf("node %d ready (caught up) without %v -> %+v (held by node %d)", i, k, w, j)
			}
			if m := Merge(k, cur, w); !sameIdentity(m, cur) {
				s.t.Fatalf("node %d ready (caught up) with %v -> %+v, node %d held %+v", i, k, cur, j, w)
			}
		}
	}
	if nd.want != nil {
		s.checked++
	}
	nd.want = nil
}

func (s *simNet) send(m simMsg) {
	if len(s.msgs) < 2000 {
		s.msgs = append(s.msgs, m)
	}
}

// persist writes node i's unpersisted own events to its "disk".
func (s *simNet) persist(i int) {
	nd := s.nodes[i]
	if !nd.disk {
		return
	}
	g := nd.db.Unpersisted(nd.persisted, 1<<20)
	if g.Epoch != nd.logEpoch {
		nd.logEpoch, nd.logEvents = g.Epoch, nil
	}
	if len(g.Events) > 0 {
		nd.logEvents = append(nd.logEvents, g.Events...)
		nd.persisted = g.To
		nd.db.MarkPersisted(g.Epoch, g.To)
	}
}

func (s *simNet) snapshot(i int) {
	nd := s.nodes[i]
	if !nd.disk {
		return
	}
	s.persist(i)
	var recs []Record
	meta, err := nd.db.Snapshot(s.now, func(r []Record) error { recs = append(recs, r...); return nil })
	if err != nil {
		s.t.Fatal(err)
	}
	nd.snapRecs, nd.snapMeta = recs, &meta
}

// push sends node i's new own events to every peer, persisting first;
// with heartbeat, an empty group to a peer with nothing new, carrying the
// vector unless bare (as gossip's heartbeats in a large fleet: the group's
// numbers alone say how far the origin's events were pushed).
func (s *simNet) push(i int, heartbeat, bare bool) {
	s.persist(i)
	nd := s.nodes[i]
	if e, _ := nd.db.Position(); e != nd.epoch {
		nd.epoch, nd.cursors = e, map[int]uint64{}
	}
	for j := range s.nodes {
		if j == i {
			continue
		}
		g := nd.db.OwnEvents(nd.cursors[j], 5)
		if len(g.Events) > 0 {
			nd.cursors[j] = g.To
		} else if !heartbeat {
			continue
		} else if bare {
			g.Vector, g.Stated = nil, true
		}
		s.send(simMsg{kind: msgGroup, from: i, to: j, group: g})
	}
}

// tick runs node i's lifecycle and applies its Ready: a new epoch (written
// to the disk first in disk mode), the requests, readiness.
func (s *simNet) tick(i int) {
	nd := s.nodes[i]
	rd := nd.life.Tick(s.now)
	if rd.NewEpoch > 0 {
		if err := nd.db.NewEpoch(rd.NewEpoch); err != nil {
			s.t.Fatalf("node %d new epoch %d: %v", i, rd.NewEpoch, err)
		}
		if nd.disk {
			nd.logEpoch, nd.logEvents, nd.persisted = rd.NewEpoch, nil, 0
		}
	}
	if rd.Became {
		s.readyBy[rd.Why]++
		if rd.Why == WhyCaughtUp {
			s.checkCaughtUp(i)
		}
	}
	for _, r := range rd.Requests {
		to := slices.IndexFunc(s.nodes, func(n *simNode) bool { return n.name == r.To })
		if to < 0 && s.gone[r.To] {
			continue // that peer left for good (or is the rogue): the request is lost
		}
		if to < 0 {
			s.t.Fatalf("request to unknown peer %q", r.To)
		}
		s.send(simMsg{kind: msgReq, from: i, to: to, req: r})
	}
}

func (s *simNet) deliver(m simMsg) {
	if s.cut[[2]int{m.from, m.to}] {
		return
	}
	db := s.nodes[m.to].db
	switch m.kind {
	case msgGroup:
		g := m.group
		g.Events = slices.Clone(g.Events)
		g.Vector = g.Vector.Clone() // and its vector (sanitize filters it in place) // duplicates must not share the DB-owned slice
		res, err := db.Receive(g, s.now)
		if err != nil {
			s.t.Fatalf("node %d receive from %d: %v", m.to, m.from, err)
		}
		if debugSim {
			fmt.Printf("deliver %d->%d %s@%d %d..%d n=%d now=%d: %+v %v\n", m.from, m.to, g.Origin, g.Epoch, g.From, g.To, len(g.Events), s.now.UnixMilli(), res, g.Vector)
		}
	case msgReq:
		s.persist(m.to) // persist, then send: full copies too
		groups, full := db.Answer(m.req, s.now)
		if full {
			var recs []Record
			meta, err := db.Snapshot(s.now, func(r []Record) error { recs = append(recs, r...); return nil })
			if err != nil {
				s.t.Fatal(err)
			}
			s.send(simMsg{kind: msgCopy, from: m.to, to: m.from, recs: recs, meta: meta})
			return
		}
		for _, g := range groups {
			s.send(simMsg{kind: msgGroup, from: m.to, to: m.from, group: g})
		}
	case msgCopy:
		life := s.nodes[m.to].life
		life.CopyChunk()
		if _, err := db.MergeRecords(m.recs, s.now); err != nil {
			s.t.Fatalf("merge copy: %v", err)
		}
		db.MergeVector(m.meta.Vector, s.nodes[m.from].name, s.now)
		life.CopyMerged()
	}
}

func (s *simNet) deliverAll() {
	for n := 0; len(s.msgs) > 0 && n < 20000; n++ {
		m := s.msgs[0]
		s.msgs = s.msgs[1:]
		s.deliver(m)
	}
}

// local performs a client request on node i for key k as the proxy would,
// with `healthy` the replicas node i believes healthy.
func (s *simNet) local(i int, k Key, healthy []string) {
	db := s.nodes[i].db
	if !s.serves(i) {
		return
	}
	if h, ok := db.Touch(k, s.now); ok {
		if slices.Contains(healthy, h.Replica) {
			if h.RefreshDue {
				if _, err := db.Refresh(k, s.now); err != nil {
					s.t.Fatal(err)
				}
			}
			return
		}
		to := s.pick(k, healthy)
		if to == "" {
			return
		}
		b, changed, err := db.Rebind(k, h.Replica, to, s.now)
		if err != nil {
			s.t.Fatal(err)
		}
		if changed {
			s.record(k, b)
		}
		return
	}
	to := s.pick(k, healthy)
	if to == "" {
		return
	}
	b, created, err := db.BindIfAbsent(k, to, s.now)
	if err != nil {
		s.t.Fatal(err)
	}
	if created {
		s.record(k, b)
	}
}

func (s *simNet) pick(k Key, healthy []string) string {
	var cands []Candidate
	for _, r := range healthy {
		cands = append(cands, Candidate{Name: r, Hash: NameHash(r), Weight: 1})
	}
	if i := Pick(k, cands); i >= 0 {
		return cands[i].Name
	}
	return ""
}

func (s *simNet) record(k Key, b Binding) {
	gk := keyGen{k, b.Generation}
	if s.created[gk] == nil {
		s.created[gk] = map[string]bool{}
	}
	s.created[gk][b.Replica] = true
}

// checkMoves is the invariant run after every step: on every node, a live
// binding changes replica only with a higher generation, or by the merge
// rule's choice between two binds of one generation, or after it expired.
func (s *simNet) checkMoves() {
	nowMs := s.now.UnixMilli()
	for i, nd := range s.nodes {
		for _, k := range s.keys {
			cur, ok := nd.db.Lookup(k)
			le, _ := nd.db.LocalExpiry(k)
			live := ok && !cur.Deleted && le > nowMs
			prev, had := s.seen[i][k]
			if !live {
				if had && !(ok && cur.Deleted) && le > nowMs+int64(s.cfg.MaxSkew/time.Millisecond) {
					s.t.Fatalf("node %d: %v vanished before expiry", i, k)
				}
				delete(s.seen[i], k)
				continue
			}
			s.seen[i][k] = cur
			if !had || cur.Replica == prev.Replica {
				continue
			}
			prevExpired := prev.Expiry+s.cfg.TTL.Milliseconds()/4+s.cfg.MaxSkew.Milliseconds() <= nowMs+s.cfg.MaxSkew.Milliseconds()
			switch {
			case cur.Generation > prev.Generation:
			case cur.Generation == prev.Generation:
				reps := s.created[keyGen{k, cur.Generation}]
				if len(reps) < 2 || !reps[prev.Replica] || !reps[cur.Replica] {
					s.t.Fatalf("node %d: %v moved %s->%s in generation %d without a conflict", i, k, prev.Replica, cur.Replica, cur.Generation)
				}
				if !replicaBeats(k.Hash(), cur, prev) {
					s.t.Fatalf("node %d: %v conflict settled for the loser %s over %s", i, k, cur.Replica, prev.Replica)
				}
			case prevExpired:
			default:
				s.t.Fatalf("node %d: %v moved %s(gen %d)->%s(gen %d) to a lower generation", i, k,
					prev.Replica, prev.Generation, cur.Replica, cur.Generation)
			}
		}
	}
}

// settle heals the network and runs every shell loop until all nodes agree.
func (s *simNet) settle() {
	clear(s.cut)
	for round := 0; round < 3000; round++ {
		s.now = s.now.Add(50 * time.Millisecond)
		for i := range s.nodes {
			s.push(i, round%10 == 0, round%20 == 0)
			s.tick(i)
			s.nodes[i].db.Sweep(s.now, 0)
		}
		if round%10 == 5 {
			for i := range s.nodes {
				for j := range s.nodes {
					if i != j {
						s.nodes[i].db.ObserveVector(s.nodes[j].name, s.nodes[j].db.Vector(), s.now)
					}
				}
			}
		}
		s.deliverAll()
		s.checkMoves()
		if round > 20 && s.converged() == "" {
			s.settleReady()
			return
		}
	}
	s.t.Fatalf("no convergence: %s\n%s", s.converged(), s.dump())
}

// settleReady runs the converged fleet's loops, a second a round, until
// every node's lifecycle says ready: caught up, or after CatchUpTimeout
// (a node whose target holds events nobody has any more: their only
// holder restarted without a disk before passing them on).
func (s *simNet) settleReady() {
	limit := s.now.Add(LifeConfig{}.withDefaults().CatchUpTimeout + 2*time.Second)
	for s.allReady() != "" {
		if s.now.After(limit) {
			s.t.Fatalf("converged but %s\n%s", s.allReady(), s.dump())
		}
		s.now = s.now.Add(time.Second)
		for i := range s.nodes {
			s.push(i, true, false)
			s.tick(i)
		}
		s.deliverAll()
		s.checkMoves()
	}
}

// tally adds how this run's nodes became ready to into, and how many
// restarted nodes were checked as caught up.
func (s *simNet) tally(into map[string]int) {
	for why, n := range s.readyBy {
		into[why] += n
	}
	into["checked caught up"] += s.checked
}

// serves reports whether node i takes requests (clients' and the
// operator's): once ready, or at once unless strict.
func (s *simNet) serves(i int) bool { return !s.strict || s.nodes[i].life.IsReady() }

// allReady returns "" when every node's lifecycle says ready.
func (s *simNet) allReady() string {
	for i, nd := range s.nodes {
		if ready, why := nd.life.Status(); !ready {
			return fmt.Sprintf("; node %d not ready: %s (target %v)", i, why, nd.life.target)
		}
	}
	return ""
}

func (s *simNet) dump() string {
	out := ""
	for i, nd := range s.nodes {
		p, _ := nd.db.Find(Query{Deleted: true, Limit: 1000}, s.now)
		out += fmt.Sprintf("n%d disk=%v vector %v\n", i, nd.disk, nd.db.Vector())
		for _, r := range p.Rows {
			out += fmt.Sprintf("   %v -> %+v local %d\n", r.Key, r.Binding, r.LocalExpiry-s.now.UnixMilli())
		}
	}
	return out
}

// converged returns "" when every node holds the same live database and
// the same vector (every pair, empty ones too), else what differs.
func (s *simNet) converged() string {
	c0, d0 := s.nodes[0].db.Digest(s.now, time.Second)
	v0 := s.liveVector(0)
	for i, nd := range s.nodes[1:] {
		c, d := nd.db.Digest(s.now, time.Second)
		if c != c0 || d != d0 {
			return fmt.Sprintf("digest of n%d %d/%x != n0 %d/%x", i+1, c, d, c0, d0)
		}
		if v := s.liveVector(i + 1); !v.Equal(v0) {
			return fmt.Sprintf("vector of n%d %v != n0 %v", i+1, v, v0)
		}
	}
	return ""
}

// liveVector is node i's vector without origins that left the fleet for
// good: each node forgets those on its own schedule (TTL + RefreshThreshold
// + MaxSkew after it last saw them move, so a node restored from an old
// snapshot holds them longer); the lifetime test bounds vector size instead.
func (s *simNet) liveVector(i int) Vector {
	v := s.nodes[i].db.Vector()
	for o := range v {
		if s.gone[o] {
			delete(v, o)
		}
	}
	return v
}

func TestSimulatedFleetConverges(t *testing.T) {
	readyBy := map[string]int{}
	defer func() { t.Logf("nodes ready by lifecycle: %v", readyBy) }()
	rapid.Check(t, func(t *rapid.T) {
		s := newSim(t)
		defer s.tally(readyBy)
		node := func(t *rapid.T) int { return rapid.IntRange(0, len(s.nodes)-1).Draw(t, "node") }
		msg := func(t *rapid.T) int { return rapid.IntRange(0, len(s.msgs)-1).Draw(t, "msg") }
		t.Repeat(map[string]func(*rapid.T){
			"request": func(t *rapid.T) {
				i := node(t)
				k := rapid.SampledFrom(s.keys).Draw(t, "key")
				healthy := rapid.SliceOfNDistinct(rapid.SampledFrom(s.pool), 1, 3, rapid.ID[string]).Draw(t, "healthy")
				s.local(i, k, healthy)
			},
			"operator rebind": func(t *rapid.T) {
				i, k := node(t), rapid.SampledFrom(s.keys).Draw(t, "key")
				to := rapid.SampledFrom(s.pool).Draw(t, "to")
				if !s.serves(i) {
					return
				}
				b, changed, err := s.nodes[i].db.Rebind(k, "", to, s.now)
				if err != nil {
					t.Fatal(err)
				}
				if changed {
					s.record(k, b)
				}
			},
			"delete": func(t *rapid.T) {
				i, k := node(t), rapid.SampledFrom(s.keys).Draw(t, "key")
				if s.serves(i) {
					s.nodes[i].db.Delete(k, s.now)
				}
			},
			"push":     func(t *rapid.T) { s.push(node(t), rapid.Bool().Draw(t, "heartbeat"), rapid.Bool().Draw(t, "bare")) },
			"tick":     func(t *rapid.T) { s.tick(node(t)) },
			"snapshot": func(t *rapid.T) { s.snapshot(node(t)) },
			"anti-entropy": func(t *rapid.T) {
				i, j := node(t), node(t)
				if i != j && !s.cut[[2]int{j, i}] {
					s.nodes[i].db.ObserveVector(s.nodes[j].name, s.nodes[j].db.Vector(), s.now)
				}
			},
			"deliver": func(t *rapid.T) {
				if len(s.msgs) == 0 {
					return // nothing in flight: this step does nothing
				}
				j := msg(t)
				m := s.msgs[j]
				s.msgs = slices.Delete(s.msgs, j, j+1)
				s.deliver(m)
			},
			"drop": func(t *rapid.T) {
				if len(s.msgs) == 0 {
					return // nothing in flight: this step does nothing
				}
				j := msg(t)
				s.msgs = slices.Delete(s.msgs, j, j+1)
			},
			"duplicate": func(t *rapid.T) {
				if len(s.msgs) == 0 {
					return // nothing in flight: this step does nothing
				}
				s.send(s.msgs[msg(t)])
			},
			"advance": func(t *rapid.T) {
				s.now = s.now.Add(time.Duration(rapid.IntRange(1, 2000).Draw(t, "ms")) * time.Millisecond)
				for _, nd := range s.nodes {
					nd.db.Sweep(s.now, 2)
				}
			},
			"cut": func(t *rapid.T) {
				i, j := node(t), node(t)
				if i != j {
					s.cut[[2]int{i, j}] = true
					if rapid.Bool().Draw(t, "both ways") {
						s.cut[[2]int{j, i}] = true
					}
				}
			},
			"heal": func(t *rapid.T) { clear(s.cut) },
			"restart": func(t *rapid.T) {
				i := node(t)
				s.start(i, true)
				s.seen[i] = map[Key]Binding{} // a restarted node may have lost unsent bindings
			},
			"expire": func(t *rapid.T) {
				// Partitions heal within TTL (see docs/failure-behaviour.md):
				// settle first, then let time pass beyond some expiries.
				s.settle()
				s.now = s.now.Add(time.Duration(rapid.IntRange(10, 40).Draw(t, "minutes")) * time.Minute)
				for _, nd := range s.nodes {
					nd.db.Sweep(s.now, 0)
				}
			},
			"": func(t *rapid.T) { s.checkMoves() },
		})
		s.settle()
	})
}
