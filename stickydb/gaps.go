package stickydb

// Gaps: what is missing of an origin's epoch, and the escalation of requests
// for it (origin, third node, full copy), driven by Tick.

import (
	"slices"
	"sort"
	"strconv"
	"time"
)

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
	// knownAsked is what we knew of the epoch when the current request
	// was sent. A request that times out while known moved past it is
	// being answered (late: a busy or CPU-starved fleet): it gets another
	// RangeTimeout instead of escalating to a third node or a full copy.
	knownAsked uint64
	// firstAsked is when the first range request of this gap was sent (0:
	// none yet); a full copy waits until it is FullCopyAfter old.
	firstAsked int64
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

func (rs *replState) gapFor(oe originEpoch, nowMs int64) *gapState {
	g := rs.gaps[oe]
	if g == nil {
		g = &gapState{since: nowMs}
		rs.gaps[oe] = g
	}
	return g
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
	// Reason says why, for counters, logs and the admin page.
	Reason Reason
}

// Reason is why a request is made. It travels on the wire as its number:
// only append.
type Reason uint8

const (
	ReasonNone     Reason = iota
	ReasonGap             // to the origin, for a gap in its events
	ReasonThird           // to a third node that holds the missing events
	ReasonFull            // a full copy: nobody holds them as events any more
	ReasonWatchdog        // a live peer silent for the Watchdog period
	ReasonInitial         // a joiner's first full copy
)

var reasonNames = [...]string{"", "gap", "third", "full", "watchdog", "initial"}

// String is the reason's name in logs and on the admin page.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Known reports whether r is one this build knows (a newer peer may send
// others).
func (r Reason) Known() bool { return int(r) < len(reasonNames) }

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
	db.admitDeferred(nowMs)
	behind := db.behind.Load()

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
		wait := db.cfg.GapWait
		if gp.stage == stageWait && len(gp.buf) == 0 {
			wait = max(wait, db.cfg.VectorGapWait) // only a vector shows it
		}
		if nowMs-gp.since < wait.Milliseconds() {
			continue
		}
		if gp.stage == stageWait && len(gp.buf) == 0 && db.abandon(oe, gp, known) {
			continue
		}
		if behind {
			db.stats.requestsHeld.Add(1)
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
		if behind {
			db.stats.requestsHeld.Add(1)
			continue
		}
		p.asked = nowMs
		out = append(out, Request{To: name, Origins: []string{name}, Known: db.known(name), Reason: ReasonWatchdog})
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
	if p := db.rs.peers[oe.origin]; p != nil && p.stated.Epoch == oe.epoch {
		// Unless the origin's own vector shows it in a later epoch since
		// (restarted without a disk: the events may be gone for good).
		if es, ok := p.vector.Latest(oe.origin); !ok || es.Epoch <= oe.epoch {
			claim = max(claim, p.stated.Seq)
		}
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
		if known > gp.knownAsked {
			// The hole is filling (the answer, or pushes, arriving late):
			// patience, not a costlier request.
			gp.askedAt, gp.knownAsked = nowMs, known
			db.stats.gapsExtended.Add(1)
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
				req.To, req.Reason, rec.Stage = oe.origin, ReasonGap, "origin"
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
				req.To, req.Reason, rec.Stage = to, ReasonThird, "third"
				db.stats.reqThird.Add(1)
			}
		case stageFull:
			if gp.firstAsked > 0 && nowMs-gp.firstAsked < db.cfg.FullCopyAfter.Milliseconds() && db.rangeAskable(oe, gp) {
				// Range requests went unanswered, but not for long: ask
				// the origin (then a third node) again rather than for
				// the whole table.
				gp.stage = stageWait
				db.stats.gapsRetried.Add(1)
				continue
			}
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
			req = Request{To: to, Full: true, Reason: ReasonFull}
			rec.Stage = "full"
			db.stats.reqFull.Add(1)
		}
		if req.To != "" {
			break
		}
	}
	gp.asked, gp.askedAt, gp.mark, gp.knownAsked = req.To, nowMs, gp.want, known
	if gp.firstAsked == 0 && !req.Full {
		gp.firstAsked = nowMs
	}
	rec.Asked = req.To
	rs.record(rec)
	return req, true
}

// rangeAskable reports whether a range request for the gap has someone to
// go to: the origin, live, or a live third node whose vector covers it.
func (db *DB) rangeAskable(oe originEpoch, gp *gapState) bool {
	if p := db.rs.peers[oe.origin]; p != nil && p.live {
		return true
	}
	return db.coveringPeer(oe, gp.want, gp.hint) != ""
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
	for name, p := range rs.peers {
		if (best == "" || name < best) && p.live && name != oe.origin && p.vector.Covers(oe.origin, oe.epoch, seq) {
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
