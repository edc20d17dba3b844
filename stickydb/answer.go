package stickydb

// Answers: the events a peer asked for, the own groups to push and persist,
// and the node's position.

import (
	"time"
)

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
			evs, ok := l.appendRange(nil, p.Epoch, theirs+1, p.Seq)
			if !ok {
				return nil, true
			}
			for len(evs) > 0 {
				n := min(len(evs), db.cfg.MaxGroupEvents)
				part := evs[:n:n]
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
	g.Vector = db.rs.advertised()
	db.raiseExpired(g.Events, db.rs.lastNow)
	return g
}

// OwnEventsBare is OwnEvents without the vector, for a push that does not
// send it: a copy of the whole vector per group was most of what a push
// allocated in a large fleet, which sends it only now and then.
func (db *DB) OwnEventsBare(after uint64, max int) Group {
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
		if ok && sameClass(cur, *b) && cur.Expiry > b.Expiry {
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
	g := db.ownGroup(after, db.rs.seq, max)
	g.Vector = db.rs.advertised()
	return g
}

// ownGroup is the group of own events after `after` up to upto, at most
// limit of them, without a vector.
func (db *DB) ownGroup(after, upto uint64, limit int) Group {
	rs := &db.rs
	g := Group{Origin: db.cfg.Node, Epoch: rs.epoch, From: after + 1, To: after, Sender: db.cfg.Node}
	if first := rs.own.first(rs.epoch); after+1 < first {
		after = first - 1 // truncated: start at what is held
		g.From, g.To = after+1, after
	}
	if after >= upto {
		return g
	}
	to := min(upto, after+uint64(max(limit, 1)))
	evs, ok := rs.own.appendRange(nil, rs.epoch, after+1, to)
	if !ok {
		return g
	}
	g.Events = evs
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
