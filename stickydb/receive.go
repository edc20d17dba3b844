package stickydb

// Receiving: groups from peers (Receive), their vectors (sanitize, observe,
// ObserveVector) and the merge of their events into the table.

import (
	"slices"
	"sort"
	"time"
)

// Result says what Receive did with a change group.
type Result struct {
	Applied   int  // new events applied
	Changed   int  // bindings whose fleet-visible state changed
	Duplicate int  // events already known
	Rejected  int  // events refused by a cap or expired on arrival
	Buffered  bool // the group is ahead of what we know: held in the reorder buffer
	Stale     bool // the group's epoch is over
	Announced int  // own events made to announce a merge's join (announceJoins): push them
}

// Receive takes a change group from a peer (Fig. 6 step 415, Fig. 7, 9, 10):
// the part in sequence with the vector is applied and the vector advanced;
// a part already known is skipped, so duplicates and overlaps are harmless;
// a group that skips numbers waits in a bounded reorder buffer until the hole
// fills or GapWait passes (then Tick discards it and asks for the range).
// The sender's vector goes into the version vector table.
//
// The DB owns g afterwards, its events and its vector. The error is a cap
// or format breach the shell should count against the sender; the group is
// then ignored whole.
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
	db.mu.Lock()
	defer db.mu.Unlock()
	if g.Epoch > nowMs+db.cfg.MaxFutureEpoch.Milliseconds() {
		// An epoch begun ahead of our clock: every clock stepped back, or a
		// peer lying. Within MaxClockStep it waits for the clock.
		if g.Sender != db.cfg.Node && g.Origin != db.cfg.Node && db.deferGroup(g, nowMs) {
			return Result{Buffered: true}, nil
		}
		db.stats.futureEpochs.Add(1)
		return Result{}, ErrFutureEpoch
	}
	rs := &db.rs
	rs.seen(nowMs)
	if g.Sender == db.cfg.Node {
		return Result{}, ErrMalformed
	}
	p := rs.peer(g.Sender, nowMs)
	p.heard = nowMs
	if g.Origin == g.Sender && g.Epoch > p.stated.Epoch {
		p.stated = EpochSeq{} // the origin moved on to a new epoch
	}
	var res Result
	err := db.applyGroup(&g, nowMs, &res)
	switch {
	case g.Vector != nil:
		p.vector, p.lists = db.sanitize(g.Vector, nowMs, p.lists[:0])
		p.vecGen++
		db.observe(g.Sender, p.vector, nowMs)
	case len(g.Events) == 0 && g.Stated && g.Origin == g.Sender && g.To > 0:
		// A heartbeat from its origin says where the origin stands, as its
		// vector's own entry would: a lost tail is noticed (and asked for
		// after VectorGapWait) without the vector, which a large fleet
		// sends rarely. The pair is checked like any vector's.
		own, _ := db.sanitize(Vector{g.Origin: {{Epoch: g.Epoch, Seq: g.To}}}, nowMs, nil)
		if es, ok := own.Latest(g.Origin); ok {
			p.stated = es
			db.observe(g.Sender, own, nowMs)
		}
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

// sanitize filters a peer's vector in place (the caller gives v up),
// leaving out pairs from the future, sequence numbers no origin can have
// reached (seqPlausible), and pairs at or below a forgotten origin's floor;
// the origins of those are appended to lists. In place because every
// group's vector passes here: a copy of each was a tenth of the memory a
// 50-node fleet allocated.
func (db *DB) sanitize(v Vector, nowMs int64, lists []string) (Vector, []string) {
	limit := nowMs + db.cfg.MaxFutureEpoch.Milliseconds()
	for o, ps := range v {
		if !validName(o) {
			delete(v, o)
			continue
		}
		keep := ps[:0]
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
			v[o] = keep[:len(keep):len(keep)] // an append to it never reaches the next origin's pairs
		} else {
			delete(v, o)
		}
	}
	return v, lists
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
	var js []joined
	for i := range evs {
		changed, err := db.mergeRemote(evs[i].Key, evs[i].Binding, nowMs, &ic, &js)
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
	db.announceJoins(js)
	res.Announced += len(js)
	rs.moved(oe.origin, nowMs)
	if oe.origin == db.cfg.Node {
		rs.own.add(oe.epoch, evs) // an older epoch of ours, recovered from a peer
		return
	}
	l := rs.clt[oe.origin]
	if l == nil {
		l = newEventLog(db.cfg.ChangeLogTableCap, db.names)
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
	return db.mergeRemote(k, r, nowMs, ic, nil)
}

// announceJoins makes an own refresh (or delete) event of every binding in
// js (the caller holds db.mu). js are joins a merge made that equal neither
// what the table held nor what arrived: a winner that takes the later
// expiry of a loser (two binds in one second, a provisional bind under the
// fleet's binding). No event ever said that state, so a node that holds the
// loser and gets the winner's own event only after that event's horizon
// (it is dropped on arrival) would keep the loser for good, with vectors
// equal. The event says the join; every node that merges it ends with it,
// and a merge that yields what arrived announces nothing, so announcements
// stop.
func (db *DB) announceJoins(js []joined) {
	for _, j := range js {
		kind := KindRefresh
		if j.b.Deleted {
			// Only a refresh may carry a binding another node made (see
			// Group.check); the origin is not part of a binding's identity.
			kind, j.b.Origin = KindDelete, db.cfg.Node
		}
		db.stats.joinsAnnounced.Add(1)
		db.rs.appendOwn(kind, j.k, j.b)
	}
}

// joined is a binding as a merge made it, to be announced.
type joined struct {
	k Key
	b Binding
}

// pastHorizon reports whether a binding announced to expire at annMs can
// no longer be live on any node whose clock is within MaxSkew of ours.
func (db *DB) pastHorizon(annMs, nowMs int64) bool {
	return annMs+db.refreshMs+db.skewMs <= nowMs
}

// mergeRemote is applyRemote under the key's shard lock. With js set, a
// merge whose result equals neither the table's binding nor r is appended
// to it, as the table now holds it, to be announced (announceJoins).
func (db *DB) mergeRemote(k Key, r Binding, nowMs int64, ic *internCache, js *[]joined) (changed bool, err error) {
	if !k.Valid() {
		return false, ErrInvalidKey
	}
	// An expiry further ahead than any honest node can announce (TTL plus a
	// tombstone's skew margin, plus the sender's clock running up to
	// MaxFutureEpoch ahead), or a generation further ahead than the clock's
	// allows, is a peer trying to make a binding outlive its TTL, or a clock
	// stepped back on every node. An event refused here is never sent again
	// (the vector moves past it), so one ahead by at most MaxClockStep more
	// waits for the clock instead (deferred.go); further ahead it is refused.
	overCap := r.Expiry > nowMs+db.ttlMs+db.skewMs+db.cfg.MaxFutureEpoch.Milliseconds()
	genAhead := r.Generation > MaxGeneration || r.Generation > birth(nowMs)+MaxGenerationAhead
	if overCap || genAhead {
		if db.deferBinding(k, r, nowMs) {
			return false, nil
		}
		db.stats.eventsRejected.Add(1)
		if overCap {
			return false, ErrExpiryOverCap
		}
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
	tk, l, ok := s.find(k)
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
	changed = !present || l.ann != ne.ann || l.gen != ne.gen || l.replica != ne.replica || l.origin != ne.origin
	db.store(s, k, tk, l, ok, ne, nowMs)
	// A join that is neither input (the origin aside: it is not part of
	// the binding's identity).
	var arrived entry
	arrived.setAnnounced(r.Expiry)
	if js != nil && present && changed && (l.ann != ne.ann || l.gen != ne.gen || l.replica != ne.replica) &&
		(arrived.ann != ne.ann || !sameClass(m, r)) {
		if cur, held := s.get(k); held { // store may have evicted it
			*js = append(*js, joined{k, db.binding(cur)})
		}
	}
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
			if rs.epochOver(o, p.Epoch, cutoff) || overIn(ps, p.Epoch, cutoff) {
				continue
			}
			if emptySince(p, cutoff) && (laterIn(ps, p.Epoch) || laterIn(rs.vv[o], p.Epoch)) {
				// An empty epoch followed by a later one: Prune drops it,
				// and taking it back from a peer that has not pruned yet
				// kept the fleet's vectors from ever agreeing.
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
	p.vector, p.lists = db.sanitize(v.Clone(), nowMs, p.lists[:0])
	p.vecGen++
	db.observe(peer, p.vector, nowMs)
}
