package stickydb

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
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
	gaps        map[originEpoch]*gapState
	recent      []GapRecord          // newest last, bounded
	ahead       int64                // the latest own epoch a peer showed (see ownEpochAhead)
	advanced    map[string]int64     // when each origin's vector entry last moved (departed.go)
	departed    map[string]departure // floors of forgotten origins (departed.go)
	// lastNow is the latest `now` any call passed in, for the calls that
	// take none (OwnEvents).
	lastNow   int64
	sweepNext atomic.Uint64
}

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

type peerState struct {
	vector Vector // the last vector received from it
	// lists: the forgotten origins its last vector still listed at or
	// below their floor (sanitize left them out of vector); a floor is kept
	// while a peer lists its origin (departed.go).
	lists  []string
	live   bool
	heard  int64 // last group from it, unix ms
	asked  int64 // last watchdog request to it
	leftAt int64 // when it stopped being live
	// A peer that is not live is forgotten, with its vector entry and
	// change log, TTL + skew after it left or was last heard from.
}

// gapState tracks what is missing of one (origin, epoch): the reorder buffer
// and the escalation of requests (origin, third node, full copy).
type gapState struct {
	want    uint64 // the highest event number known to exist
	hint    string // a peer that showed it has them
	since   int64
	stage   int // 0 waiting, 1 asked the origin, 2 asked a third node, 3 asked a full copy
	asked   string
	askedAt int64
	buf     map[uint64]Group // buffered groups by From
	// mark is want when the current wait or request began. Vectors keep
	// raising want while an origin's pushes are in flight, so in a busy
	// fleet want runs ahead all the time; what the gap is about is the
	// events missing when it started. Once those are here the rest is a
	// new wait, not a reason to escalate to a full copy.
	mark uint64
}

// firstBuffered returns the first event number of the earliest buffered
// group, or 0 when none is buffered.
func (gp *gapState) firstBuffered() uint64 {
	lo := uint64(0)
	for from := range gp.buf {
		if lo == 0 || from < lo {
			lo = from
		}
	}
	return lo
}

const (
	stageWait = iota
	stageOrigin
	stageThird
	stageFull
)

func (rs *replState) init(cfg Config, nowMs int64) {
	rs.cfg = cfg
	rs.epoch, rs.provisional = nowMs, true
	rs.lastNow = nowMs
	rs.own = newEventLog(cfg.OwnLogCap)
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

func (rs *replState) peer(name string, nowMs int64) *peerState {
	p := rs.peers[name]
	if p == nil {
		p = &peerState{heard: nowMs, asked: nowMs}
		rs.peers[name] = p
	}
	return p
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
	for _, p := range rs.vv[origin] {
		if p.Epoch > epoch && p.Epoch <= cutoff {
			return true
		}
	}
	return false
}

func (rs *replState) gapFor(oe originEpoch, nowMs int64) *gapState {
	g := rs.gaps[oe]
	if g == nil {
		g = &gapState{since: nowMs}
		rs.gaps[oe] = g
	}
	return g
}

// Result says what Receive did with a change group.
type Result struct {
	Applied   int  // new events applied
	Changed   int  // bindings whose fleet-visible state changed
	Duplicate int  // events already known
	Rejected  int  // events refused by a cap or expired on arrival
	Buffered  bool // the group is ahead of what we know: held in the reorder buffer
	Stale     bool // the group's epoch is over
}

// Receive takes a change group from a peer (Fig. 6 step 415, Fig. 7, 9, 10):
// the part in sequence with the vector is applied and the vector advanced;
// a part already known is skipped, so duplicates and overlaps are harmless;
// a group that skips numbers waits in a bounded reorder buffer until the hole
// fills or GapWait passes (then Tick discards it and asks for the range).
// The sender's vector goes into the version vector table.
//
// The DB owns g afterwards. The error is a cap or format breach the shell
// should count against the sender; the group is then ignored whole.
func (db *DB) Receive(g Group, now time.Time) (Result, error) {
	nowMs := now.UnixMilli()
	if err := g.check(); err != nil {
		db.stats.malformed.Add(1)
		return Result{}, err
	}
	if len(g.Events) > db.cfg.MaxGroupEvents {
		db.stats.tooMany.Add(1)
		return Result{}, ErrTooManyEvents
	}
	if g.Epoch > nowMs+db.cfg.MaxFutureEpoch.Milliseconds() {
		db.stats.futureEpochs.Add(1)
		return Result{}, ErrFutureEpoch
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	rs.seen(nowMs)
	if g.Sender == db.cfg.Node {
		return Result{}, ErrMalformed
	}
	p := rs.peer(g.Sender, nowMs)
	p.heard = nowMs
	var res Result
	err := db.applyGroup(&g, nowMs, &res)
	if g.Vector != nil {
		p.vector, p.lists = db.sanitize(g.Vector, nowMs, p.lists[:0])
		db.observe(g.Sender, p.vector, nowMs)
	}
	return res, err
}

// seqPlausible reports whether an origin can have numbered seq events in
// the epoch that began at epoch (its clock): MaxSeqJump at once, plus
// MaxEventRate for every second since the epoch began (and MaxSkew more).
// The bound depends on the epoch alone, not on what this node knows, so a
// node that has just joined accepts a long-lived origin's numbers as
// readily as its oldest peer does.
func (db *DB) seqPlausible(epoch int64, seq uint64, nowMs int64) bool {
	if seq <= db.cfg.MaxSeqJump {
		return true
	}
	age := nowMs - epoch + db.skewMs
	if age <= 0 {
		return false
	}
	return (seq-db.cfg.MaxSeqJump)/uint64(db.cfg.MaxEventRate) <= uint64(age)/1000
}

// sanitize copies a peer's vector, leaving out pairs from the future,
// sequence numbers no origin can have reached (seqPlausible), and pairs at
// or below a forgotten origin's floor; the origins of those are appended to
// lists.
func (db *DB) sanitize(v Vector, nowMs int64, lists []string) (Vector, []string) {
	limit := nowMs + db.cfg.MaxFutureEpoch.Milliseconds()
	out := make(Vector, len(v))
	for o, ps := range v {
		if !validName(o) {
			continue
		}
		keep := make([]EpochSeq, 0, len(ps))
		for _, p := range ps {
			switch {
			case p.Epoch <= 0 || p.Epoch > limit:
				db.stats.futureEpochs.Add(1)
			case !db.seqPlausible(p.Epoch, p.Seq, nowMs):
				db.stats.seqJumps.Add(1)
			case db.rs.departedCovers(o, p):
				if len(lists) == 0 || lists[len(lists)-1] != o {
					lists = append(lists, o)
				}
			default:
				keep = append(keep, p)
			}
		}
		sort.Slice(keep, func(i, j int) bool { return keep[i].Epoch < keep[j].Epoch })
		keep = slices.CompactFunc(keep, func(a, b EpochSeq) bool { return a.Epoch == b.Epoch })
		if len(keep) > 0 {
			out[o] = keep
		}
	}
	return out, lists
}

func (db *DB) applyGroup(g *Group, nowMs int64, res *Result) error {
	rs := &db.rs
	oe := originEpoch{g.Origin, g.Epoch}
	n := len(g.Events)
	switch {
	case n == 0:
		return nil
	case g.Origin == db.cfg.Node && g.Epoch == rs.epoch:
		res.Duplicate = n // our own current epoch: we made them
		db.stats.groupsDuplicate.Add(1)
		return nil
	case rs.epochOver(g.Origin, g.Epoch, rs.cutoff(nowMs)) || rs.departedCovers(g.Origin, EpochSeq{g.Epoch, g.To}):
		res.Stale = true
		db.stats.groupsStale.Add(1)
		return nil
	}
	known := rs.vv.Get(g.Origin, g.Epoch)
	if g.To <= known {
		res.Duplicate = n
		db.stats.groupsDuplicate.Add(1)
		return nil
	}
	if g.From > known+1 {
		if !db.seqPlausible(g.Epoch, g.To, nowMs) {
			db.stats.seqJumps.Add(1)
			return ErrSeqJump
		}
		gp := rs.gapFor(oe, nowMs)
		gp.want = max(gp.want, g.To)
		if gp.buf == nil {
			gp.buf = map[uint64]Group{}
		}
		if len(gp.buf) >= db.cfg.ReorderGroups {
			db.stats.groupsDiscarded.Add(1)
			return nil
		}
		g.Vector = nil // the buffer keeps events only
		gp.buf[g.From] = *g
		res.Buffered = true
		db.stats.groupsBuffered.Add(1)
		return nil
	}
	db.applyEvents(oe, g.Events[known+1-g.From:], nowMs, res)
	res.Duplicate += int(known + 1 - g.From)
	db.stats.groupsApplied.Add(1)
	db.drain(oe, g.Sender, nowMs, res)
	return nil
}

// drain applies buffered groups of oe that the vector has caught up with,
// and closes the gap when nothing is missing any more.
func (db *DB) drain(oe originEpoch, by string, nowMs int64, res *Result) {
	rs := &db.rs
	gp := rs.gaps[oe]
	if gp == nil {
		return
	}
	for {
		known := rs.vv.Get(oe.origin, oe.epoch)
		progressed := false
		for from, bg := range gp.buf {
			if from > known+1 {
				continue
			}
			delete(gp.buf, from)
			if bg.To > known {
				db.applyEvents(oe, bg.Events[known+1-from:], nowMs, res)
				db.stats.groupsApplied.Add(1)
			}
			progressed = true
			break
		}
		if !progressed {
			break
		}
	}
	if rs.vv.Get(oe.origin, oe.epoch) >= gp.want && len(gp.buf) == 0 {
		db.closeGap(oe, by)
	}
}

func (db *DB) closeGap(oe originEpoch, by string) {
	rs := &db.rs
	gp := rs.gaps[oe]
	delete(rs.gaps, oe)
	if gp == nil || gp.stage == stageWait {
		return
	}
	for i := len(rs.recent) - 1; i >= 0; i-- {
		r := &rs.recent[i]
		if r.Origin == oe.origin && r.Epoch == oe.epoch && r.AnsweredBy == "" {
			r.AnsweredBy = by
			break
		}
	}
}

// applyEvents merges contiguous events of oe (the first one is known+1),
// advances the vector and keeps them in the change log table.
func (db *DB) applyEvents(oe originEpoch, evs []Event, nowMs int64, res *Result) {
	if len(evs) == 0 {
		return
	}
	rs := &db.rs
	var ic internCache
	for i := range evs {
		changed, err := db.applyRemote(evs[i].Key, evs[i].Binding, nowMs, &ic)
		switch {
		case err != nil:
			res.Rejected++
		case changed:
			res.Changed++
		}
	}
	res.Applied += len(evs)
	db.stats.eventsApplied.Add(uint64(len(evs)))
	rs.vv.Advance(oe.origin, oe.epoch, evs[len(evs)-1].Seq)
	rs.moved(oe.origin, nowMs)
	if oe.origin == db.cfg.Node {
		rs.own.add(oe.epoch, evs) // an older epoch of ours, recovered from a peer
		return
	}
	l := rs.clt[oe.origin]
	if l == nil {
		l = newEventLog(db.cfg.ChangeLogTableCap)
		rs.clt[oe.origin] = l
	}
	l.add(oe.epoch, evs)
}

// applyRemote merges a binding received from elsewhere into the table
// (Fig. 9), as the join of what the table holds and what arrived (see
// Merge). An entry past its horizon (announced expiry + RefreshThreshold +
// MaxSkew) counts as absent, as if Sweep had removed it already, and an
// arrival past its horizon is dropped (step 552): it belongs to a life of
// the key that is over. A sender raises an event past its horizon to the
// expiry of the join it holds (raiseExpired), so an event that still
// decides a live binding somewhere is never past its horizon.
func (db *DB) applyRemote(k Key, r Binding, nowMs int64, ic *internCache) (bool, error) {
	return db.mergeRemote(k, r, nowMs, ic)
}

// pastHorizon reports whether a binding announced to expire at annMs can
// no longer be live on any node whose clock is within MaxSkew of ours.
func (db *DB) pastHorizon(annMs, nowMs int64) bool {
	return annMs+db.refreshMs+db.skewMs <= nowMs
}

// mergeRemote is applyRemote under the key's shard lock.
func (db *DB) mergeRemote(k Key, r Binding, nowMs int64, ic *internCache) (bool, error) {
	if !k.Valid() {
		return false, ErrInvalidKey
	}
	// An expiry further ahead than any honest node can announce (TTL plus a
	// tombstone's skew margin, plus the sender's clock running up to
	// MaxFutureEpoch ahead) is a peer trying to make a binding outlive its
	// TTL. The bound is generous on purpose: an event refused here is never
	// sent again (the vector moves past it), so an honest one must never be.
	if r.Expiry > nowMs+db.ttlMs+db.skewMs+db.cfg.MaxFutureEpoch.Milliseconds() {
		db.stats.eventsRejected.Add(1)
		return false, ErrExpiryOverCap
	}
	if r.Generation > MaxGeneration {
		db.stats.eventsRejected.Add(1)
		return false, ErrGeneration
	}
	if db.pastHorizon(r.Expiry, nowMs) {
		db.stats.eventsExpired.Add(1)
		return false, nil
	}
	if r.Deleted {
		r.Replica = ""
	}
	rid, err := ic.id(db.names, r.Replica)
	if err != nil {
		return false, err
	}
	oid, err := ic.id(db.names, r.Origin)
	if err != nil {
		return false, err
	}
	k.host = ic.host(k.host)
	kh := k.Hash()
	s := &db.shards[kh&db.shardMask]
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[k]
	present := ok && !db.pastHorizon(l.announced(), nowMs)
	m := r
	if present {
		m = merge(kh, db.binding(l), r)
	}
	ne := newEntry(m.Expiry+db.refreshMs, m.Expiry, m.Generation, rid, oid)
	if !sameIdentity(m, r) {
		ne.replica, ne.origin = l.replica, l.origin
	}
	if present && l.gen == ne.gen && l.replica == ne.replica && l.origin == ne.origin {
		ne.exp = max(ne.exp, l.exp) // the same binding: keep this node's extension by hits
	}
	if ok && ne == l {
		return false, nil
	}
	if (!ok || l.origin != ne.origin) && db.byOrigin[ne.origin].Load() >= int64(db.cfg.MaxBindingsPerOrigin) {
		db.stats.capBreaches.Add(1)
		db.stats.eventsRejected.Add(1)
		return false, ErrOriginFull
	}
	changed := !present || l.ann != ne.ann || l.gen != ne.gen || l.replica != ne.replica || l.origin != ne.origin
	db.store(s, k, l, ok, ne, nowMs)
	return changed, nil
}

// observe compares a peer's vector with ours (Fig. 8): where the peer knows
// more, a gap is opened; Tick asks for it if it is still open after GapWait
// (under load a peer's vector often runs a few milliseconds ahead of the
// groups in flight to us, which fill the difference by themselves).
func (db *DB) observe(sender string, v Vector, nowMs int64) {
	rs := &db.rs
	cutoff := rs.cutoff(nowMs)
	for o, ps := range v {
		for _, p := range ps {
			if o == db.cfg.Node && p.Epoch == rs.epoch {
				// A peer knows more of our current epoch than we do: our log
				// lost its tail. Never number two events alike.
				if p.Seq > rs.seq {
					rs.seq, rs.persisted = p.Seq, p.Seq
					rs.vv.Advance(o, p.Epoch, p.Seq)
				}
				continue
			}
			if o == db.cfg.Node && p.Epoch > rs.epoch {
				db.ownEpochAhead(p.Epoch, nowMs)
				continue
			}
			if rs.epochOver(o, p.Epoch, cutoff) {
				continue
			}
			// Record that the epoch began, even before any of its events
			// arrive, so that older epochs are pruned on the same schedule
			// everywhere.
			if _, had := rs.vv[o]; !had {
				rs.moved(o, nowMs)
			}
			rs.vv.Advance(o, p.Epoch, 0)
			known := rs.vv.Get(o, p.Epoch)
			if p.Seq <= known {
				continue
			}
			gp := rs.gapFor(originEpoch{o, p.Epoch}, nowMs)
			if p.Seq > gp.want {
				gp.want, gp.hint = p.Seq, sender
			}
		}
	}
}

// ownEpochAhead handles a peer that knows an epoch of ours later than the
// current one: our clock was stepped back (or is behind) since that epoch
// began, and peers would take every event of the current epoch for one of
// an epoch that is over. Without a disk the core moves on at once to an
// epoch after it; with one (Durable), the new epoch must be written first,
// so the shell does it when EpochAhead says so.
func (db *DB) ownEpochAhead(epoch, nowMs int64) {
	rs := &db.rs
	rs.ahead = max(rs.ahead, epoch)
	if db.cfg.Durable {
		return
	}
	next := max(nowMs, rs.ahead+1)
	rs.epoch, rs.seq, rs.persisted, rs.provisional = next, 0, 0, false
	rs.vv.Advance(db.cfg.Node, next, 0)
	db.stats.epochsAhead.Add(1)
}

// EpochAhead returns the latest epoch of this node that a peer's vector
// showed, when it is later than the current one (0 otherwise): a node with
// a disk must start (and persist) an epoch after it. Without a disk the DB
// has done so by itself.
func (db *DB) EpochAhead() int64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.rs.ahead > db.rs.epoch {
		return db.rs.ahead
	}
	return 0
}

// ObserveVector takes a peer's vector that arrived outside a change group
// (memberlist push/pull state: the anti-entropy path).
func (db *DB) ObserveVector(peer string, v Vector, now time.Time) {
	if peer == db.cfg.Node || !validName(peer) {
		return
	}
	nowMs := now.UnixMilli()
	db.mu.Lock()
	defer db.mu.Unlock()
	p := db.rs.peer(peer, nowMs)
	p.vector, p.lists = db.sanitize(v, nowMs, p.lists[:0])
	db.observe(peer, p.vector, nowMs)
}

// Request asks a peer for events (Fig. 7 step 465, Fig. 8 step 515,
// para. 18, para. 103). The responder calls Answer with it.
type Request struct {
	To   string // the peer to ask
	Full bool   // ask for a full copy of the database and vector
	// Origins limits the answer to these origins; nil means all.
	Origins []string
	// Known is what the requester knows of those origins: the answer holds
	// what follows.
	Known Vector
	// Reason says why, for counters and the admin page: "gap", "third",
	// "full", "watchdog".
	Reason string
}

// GapRecord is one recent gap request, for the admin page.
type GapRecord struct {
	At         int64 // unix ms
	Origin     string
	Epoch      int64
	From, To   uint64 // what was missing: From is the first unknown event, To the highest known to exist
	Asked      string
	Stage      string // "origin", "third", "full"
	AnsweredBy string // the sender whose group or copy closed the gap; "" while open
}

const recentGaps = 32

func (rs *replState) record(r GapRecord) {
	if len(rs.recent) == recentGaps {
		copy(rs.recent, rs.recent[1:])
		rs.recent = rs.recent[:recentGaps-1]
	}
	rs.recent = append(rs.recent, r)
}

// RecentGaps returns the last gap requests, newest last.
func (db *DB) RecentGaps() []GapRecord {
	db.mu.Lock()
	defer db.mu.Unlock()
	return slices.Clone(db.rs.recent)
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

// Tick moves the replication state forward in time and returns the requests
// to send (Fig. 7, 8, para. 18): holes open longer than GapWait have their
// buffered groups discarded and the range asked of the origin, then of a
// third node whose vector covers it, then as a full copy; live peers silent
// for the Watchdog period are asked for what follows; old epochs, departed
// peers and the own log are pruned. Call it every few milliseconds (the
// push interval is a good period).
func (db *DB) Tick(now time.Time) []Request {
	nowMs := now.UnixMilli()
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	rs.seen(nowMs)
	cutoff := rs.cutoff(nowMs)
	db.prune(nowMs, cutoff)

	var out []Request
	for _, oe := range slices.SortedFunc(mapsKeys(rs.gaps), compareOE) {
		gp := rs.gaps[oe]
		known := rs.vv.Get(oe.origin, oe.epoch)
		if known >= gp.want && len(gp.buf) == 0 {
			db.closeGap(oe, gp.asked)
			continue
		}
		if gp.mark == 0 {
			gp.mark = gp.want
		}
		if known >= gp.mark && len(gp.buf) == 0 {
			// What was missing when this wait or request began has come
			// (pushes in flight, an answer); newer vectors showed more
			// since. Wait for that afresh.
			want, hint := gp.want, gp.hint
			db.closeGap(oe, gp.asked)
			ng := rs.gapFor(oe, nowMs)
			ng.want, ng.hint, ng.mark = want, hint, want
			db.stats.gapsRenewed.Add(1)
			continue
		}
		if nowMs-gp.since < db.cfg.GapWait.Milliseconds() {
			continue
		}
		if gp.stage == stageWait && len(gp.buf) == 0 && db.abandon(oe, gp, known) {
			continue
		}
		if r, ok := db.escalate(oe, gp, known, nowMs); ok {
			out = append(out, r)
		}
	}
	for name, p := range rs.peers {
		if !p.live || nowMs-p.heard < db.cfg.Watchdog.Milliseconds() || nowMs-p.asked < db.cfg.Watchdog.Milliseconds() {
			continue
		}
		p.asked = nowMs
		out = append(out, Request{To: name, Origins: []string{name}, Known: db.known(name), Reason: "watchdog"})
		db.stats.reqWatchdog.Add(1)
	}
	db.truncateOwn(nowMs)
	sort.SliceStable(out, func(i, j int) bool { return out[i].To < out[j].To })
	return out
}

// abandon lowers what a gap waits for to what some peer's last vector
// still claims, before each new round of requests, and closes the gap when
// nothing is left: the peer that showed the events restarted without them,
// and the origin lost them too. Those events are gone for good (their
// bindings live on in the peers' tables and full copies); asking again
// would only repeat full copies until the epoch is over.
func (db *DB) abandon(oe originEpoch, gp *gapState, known uint64) bool {
	claim := uint64(0)
	for _, p := range db.rs.peers {
		claim = max(claim, p.vector.Get(oe.origin, oe.epoch))
	}
	if claim >= gp.want {
		return false
	}
	gp.want = claim
	if known < gp.want {
		return false
	}
	delete(db.rs.gaps, oe)
	db.stats.gapsAbandoned.Add(1)
	return true
}

// escalate moves a gap one step along origin -> third node -> full copy when
// the previous step timed out.
func (db *DB) escalate(oe originEpoch, gp *gapState, known uint64, nowMs int64) (Request, bool) {
	rs := &db.rs
	if gp.stage == stageWait && len(gp.buf) > 0 {
		// Fig. 7 step 460: the groups that skipped numbers are discarded.
		db.stats.groupsDiscarded.Add(uint64(len(gp.buf)))
		gp.buf = nil
	}
	switch gp.stage {
	case stageOrigin, stageThird:
		if nowMs-gp.askedAt < db.cfg.RangeTimeout.Milliseconds() {
			return Request{}, false
		}
	case stageFull:
		if nowMs-gp.askedAt < db.cfg.FullCopyTimeout.Milliseconds() {
			return Request{}, false
		}
		gp.stage = stageWait
	}
	rec := GapRecord{At: nowMs, Origin: oe.origin, Epoch: oe.epoch, From: known + 1, To: gp.want}
	req := Request{Origins: []string{oe.origin}, Known: db.known(oe.origin)}
	for gp.stage < stageFull {
		gp.stage++
		switch gp.stage {
		case stageOrigin:
			if p := rs.peers[oe.origin]; p != nil && p.live {
				req.To, req.Reason, rec.Stage = oe.origin, "gap", "origin"
				db.stats.reqOrigin.Add(1)
			}
		case stageThird:
			to := db.coveringPeer(oe, gp.want, gp.hint)
			if lo := gp.firstBuffered(); to == "" && lo > known+1 {
				// Nobody shows the newest events yet (they were just pushed
				// to everyone), but they are buffered here: a peer that
				// holds the events before them closes the gap.
				to = db.coveringPeer(oe, lo-1, gp.hint)
			}
			if to != "" {
				req.To, req.Reason, rec.Stage = to, "third", "third"
				db.stats.reqThird.Add(1)
			}
		case stageFull:
			if to, at, ok := db.fullInFlight(oe, gp.want, nowMs); ok {
				// A full copy asked for another gap, of a peer that covers
				// this one too, brings this gap's events as well: wait for
				// it rather than stream the table twice (a joiner opens a
				// gap per origin at once).
				gp.asked, gp.askedAt, gp.mark = to, at, gp.want
				rec.Asked, rec.Stage = to, "full (joined)"
				rs.record(rec)
				db.stats.reqFullJoined.Add(1)
				return Request{}, false
			}
			to := db.coveringPeer(oe, gp.want, gp.hint)
			if to == "" {
				to = db.anyLivePeer(oe.origin)
			}
			if to == "" {
				gp.stage = stageWait // nobody to ask: wait for a peer
				return Request{}, false
			}
			req = Request{To: to, Full: true, Reason: "full"}
			rec.Stage = "full"
			db.stats.reqFull.Add(1)
		}
		if req.To != "" {
			break
		}
	}
	gp.asked, gp.askedAt, gp.mark = req.To, nowMs, gp.want
	rec.Asked = req.To
	rs.record(rec)
	return req, true
}

// fullInFlight finds a full copy asked (for another gap) and not timed out
// yet, of a live peer whose last vector covers oe up to seq.
func (db *DB) fullInFlight(oe originEpoch, seq uint64, nowMs int64) (to string, at int64, ok bool) {
	rs := &db.rs
	for other, g := range rs.gaps {
		if other == oe || g.stage != stageFull || g.asked == "" || nowMs-g.askedAt >= db.cfg.FullCopyTimeout.Milliseconds() {
			continue
		}
		p := rs.peers[g.asked]
		if p == nil || !p.live || !p.vector.Covers(oe.origin, oe.epoch, seq) {
			continue
		}
		if !ok || g.asked < to || (g.asked == to && g.askedAt > at) {
			to, at, ok = g.asked, g.askedAt, true
		}
	}
	return to, at, ok
}

// coveringPeer returns a live peer other than the origin whose last vector
// covers oe up to seq, preferring hint; "" if none.
func (db *DB) coveringPeer(oe originEpoch, seq uint64, hint string) string {
	rs := &db.rs
	ok := func(name string) bool {
		p := rs.peers[name]
		return p != nil && p.live && name != oe.origin && p.vector.Covers(oe.origin, oe.epoch, seq)
	}
	if hint != "" && ok(hint) {
		return hint
	}
	best := ""
	for name := range rs.peers {
		if ok(name) && (best == "" || name < best) {
			best = name
		}
	}
	return best
}

func (db *DB) anyLivePeer(prefer string) string {
	rs := &db.rs
	if p := rs.peers[prefer]; p != nil && p.live {
		return prefer
	}
	best := ""
	for name, p := range rs.peers {
		if p.live && (best == "" || name < best) {
			best = name
		}
	}
	return best
}

// known returns our vector restricted to one origin.
func (db *DB) known(origin string) Vector {
	return Vector{origin: slices.Clone(db.rs.vv[origin])}
}

// prune drops what TTL + skew has made useless: pairs of epochs that are
// over, and everything of peers that left longer ago than that.
func (db *DB) prune(nowMs, cutoff int64) {
	rs := &db.rs
	rs.vv.Prune(cutoff)
	rs.vv.Trim(db.cfg.MaxEpochs)
	db.forgetDeparted(nowMs, cutoff)
	for _, p := range rs.peers {
		if p.vector != nil {
			p.vector.Prune(cutoff)
			p.vector.Trim(db.cfg.MaxEpochs)
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
	for oe := range rs.gaps {
		if rs.epochOver(oe.origin, oe.epoch, cutoff) {
			delete(rs.gaps, oe)
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
		for drop < len(s.events) {
			ev := &s.events[drop]
			if s.epoch == rs.epoch && ev.Seq > rs.sendable() {
				break
			}
			expired := ev.Binding.Expiry+db.refreshMs+db.skewMs <= nowMs
			if !expired && !db.allPeersHave(s.epoch, ev.Seq) {
				break
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

func (db *DB) allPeersHave(epoch int64, seq uint64) bool {
	rs := &db.rs
	if len(rs.peers) == 0 {
		return false
	}
	for _, p := range rs.peers {
		if !p.vector.Covers(db.cfg.Node, epoch, seq) {
			return false
		}
	}
	return true
}

// Answer serves a peer's Request (Fig. 10 steps 610-615, para. 18, 103):
// for every origin asked about, the events this node holds beyond what the
// requester knows, from its own log or its change log table, as change
// groups carrying this node's vector. When some of them are no longer held,
// or the request asks for it, full is true and groups is nil: the shell
// then streams a full copy (Snapshot). With nothing to send, the answer is
// one heartbeat group, so the requester still learns this node's vector.
// The groups are copies the caller owns.
func (db *DB) Answer(req Request, now time.Time) (groups []Group, full bool) {
	if req.Full {
		return nil, true
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	nowMs := now.UnixMilli()
	rs.seen(nowMs)
	cutoff := rs.cutoff(nowMs)
	adv := rs.advertised()
	origins := req.Origins
	if origins == nil {
		origins = adv.Origins()
	}
	for _, o := range origins {
		for _, p := range adv[o] {
			theirs := req.Known.Get(o, p.Epoch)
			if p.Seq <= theirs || rs.epochOver(o, p.Epoch, cutoff) {
				continue
			}
			l := rs.own
			if o != db.cfg.Node {
				l = rs.clt[o]
			}
			if l == nil {
				return nil, true
			}
			evs, ok := l.rangeOf(p.Epoch, theirs+1, p.Seq)
			if !ok {
				return nil, true
			}
			for len(evs) > 0 {
				n := min(len(evs), db.cfg.MaxGroupEvents)
				part := slices.Clone(evs[:n])
				db.raiseExpired(part, nowMs)
				groups = append(groups, Group{Origin: o, Epoch: p.Epoch, From: part[0].Seq, To: part[n-1].Seq,
					Events: part, Sender: db.cfg.Node, Vector: adv})
				evs = evs[n:]
			}
		}
	}
	if len(groups) == 0 {
		s := rs.sendable()
		groups = []Group{{Origin: db.cfg.Node, Epoch: rs.epoch, From: s + 1, To: s, Sender: db.cfg.Node, Vector: adv}}
	}
	return groups, false
}

// OwnEvents returns up to max own events of the current epoch after seq
// `after`, stopping at what may be sent (see Config.Durable), as a change
// group carrying this node's vector: what the push sends a peer whose
// cursor is at `after`. When the log no longer holds after+1, the group
// starts at the first event it holds: the peer sees the gap and asks, and is
// sent a full copy. With nothing new the group is an empty heartbeat
// (From = To+1) that still carries the vector.
func (db *DB) OwnEvents(after uint64, max int) Group {
	db.mu.Lock()
	defer db.mu.Unlock()
	g := db.ownGroup(after, db.rs.sendable(), max)
	db.raiseExpired(g.Events, db.rs.lastNow)
	return g
}

// raiseExpired gives each event past its horizon the later expiry of the
// same binding in the table, if the table still holds that binding: a join
// of events this node merged, so sending it is as safe as sending the
// event. It matters for a receiver that has no entry of the key yet (a
// node rebuilding from the logs): it would drop the bare event as expired,
// then keep a binding the event had superseded, which the fleet keeps
// alive with this later expiry. evs must be the caller's copy. Under db.mu.
func (db *DB) raiseExpired(evs []Event, nowMs int64) {
	for i := range evs {
		b := &evs[i].Binding
		if !db.pastHorizon(b.Expiry, nowMs) {
			continue
		}
		cur, ok := db.Lookup(evs[i].Key)
		if ok && sameIdentity(cur, *b) && cur.Expiry > b.Expiry {
			b.Expiry = cur.Expiry
		}
	}
}

// Unpersisted returns up to max own events after seq `after`, including
// those not yet persisted: what the write-ahead log must append. Events are
// only ever truncated from the log once persisted, so nothing is skipped.
func (db *DB) Unpersisted(after uint64, max int) Group {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.ownGroup(after, db.rs.seq, max)
}

func (db *DB) ownGroup(after, upto uint64, limit int) Group {
	rs := &db.rs
	g := Group{Origin: db.cfg.Node, Epoch: rs.epoch, From: after + 1, To: after, Sender: db.cfg.Node, Vector: rs.advertised()}
	if first := rs.own.first(rs.epoch); after+1 < first {
		after = first - 1 // truncated: start at what is held
		g.From, g.To = after+1, after
	}
	if after >= upto {
		return g
	}
	to := min(upto, after+uint64(max(limit, 1)))
	evs, ok := rs.own.rangeOf(rs.epoch, after+1, to)
	if !ok {
		return g
	}
	g.Events = slices.Clone(evs)
	g.To = to
	return g
}

// MarkPersisted records that own events of epoch up to seq are on disk and
// may be sent (Durable mode). A mark for another epoch than the current one
// is ignored: it cannot release events of a newer epoch not yet written.
func (db *DB) MarkPersisted(epoch int64, seq uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if epoch == db.rs.epoch && seq > db.rs.persisted && seq <= db.rs.seq {
		db.rs.persisted = seq
	}
}

// Position returns this node's current epoch and last own event number.
func (db *DB) Position() (epoch int64, seq uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.rs.epoch, db.rs.seq
}

// Vector returns the version vector this node advertises.
func (db *DB) Vector() Vector {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.rs.advertised()
}

// PeerInfo is one row of the version vector table.
type PeerInfo struct {
	Name   string
	Live   bool
	Vector Vector
	Heard  int64 // last group received from it, unix ms
}

// Table returns the version vector table (Fig. 8), peers in name order.
func (db *DB) Table() []PeerInfo {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]PeerInfo, 0, len(db.rs.peers))
	for n, p := range db.rs.peers {
		out = append(out, PeerInfo{Name: n, Live: p.live, Vector: p.vector.Clone(), Heard: p.heard})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
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
			li.Last = s.first + uint64(len(s.events)) - 1
			if len(s.events) == 0 {
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

func mapsKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// NewEpoch starts a new epoch of own events at epoch (unix ms), numbered
// from 1 again (Fig. 12 step 710). The epoch must be later than the current
// one. Events of older epochs stay in the log and the vector until pruned.
func (db *DB) NewEpoch(epoch int64) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	if epoch <= rs.epoch {
		return ErrEpoch
	}
	rs.epoch, rs.seq, rs.persisted = epoch, 0, 0
	rs.provisional = false
	rs.vv.Advance(db.cfg.Node, epoch, 0)
	return nil
}

// HighestOwnEpoch returns the newest epoch of this node that any peer's
// vector shows (0 if none): a node restarting without a disk must start an
// epoch later than that.
func (db *DB) HighestOwnEpoch() int64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	var hi int64
	for _, p := range db.rs.peers {
		if es, ok := p.vector.Latest(db.cfg.Node); ok && es.Epoch > hi {
			hi = es.Epoch
		}
	}
	return hi
}
