package stickydb

import (
	"errors"
	"time"
)

// SnapshotMeta heads a snapshot or a full copy: whose it is, and the vector
// that its records reflect at least.
type SnapshotMeta struct {
	Node  string
	Epoch int64  // the node's epoch when the snapshot was taken
	Seq   uint64 // its last own event then: every own event up to Seq is in the records
	// Vector is the advertised vector, taken before the records were read, so
	// the records reflect at least every event it counts.
	Vector Vector
	Taken  int64 // unix ms
	Count  int   // records, known once the walk is done
}

// Snapshot walks the table and hands fn the records not yet past their
// horizon (tombstones and expired bindings included: they still take part
// in merges), one batch per shard (Fig. 11 step 654; also the full copy of
// para. 60 and 103). The vector is read first, so the records reflect at
// least what it counts; bindings that change during the walk are taken as
// they are then, which merging treats as just more changes. fn must not
// keep the slice, and must not call back into the DB; shard locks are not
// held while it runs.
//
// In Durable mode, persist own events before walking a snapshot that leaves
// the node as a full copy: the records reflect every event made so far, and
// a peer must not hold the effect of an event the node could still lose.
func (db *DB) Snapshot(now time.Time, fn func([]Record) error) (SnapshotMeta, error) {
	nowMs := now.UnixMilli()
	db.mu.Lock()
	meta := SnapshotMeta{Node: db.cfg.Node, Epoch: db.rs.epoch, Seq: db.rs.seq, Vector: db.rs.advertised(), Taken: nowMs}
	db.mu.Unlock()
	var buf []Record
	for i := range db.shards {
		s := &db.shards[i]
		buf = buf[:0]
		s.mu.Lock()
		for tk, e := range s.m {
			if e.expiry() > nowMs || !db.pastHorizon(e.announced(), nowMs) {
				buf = append(buf, Record{Key: s.key(tk), Binding: db.binding(e)})
			}
		}
		s.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		meta.Count += len(buf)
		if err := fn(buf); err != nil {
			return meta, err
		}
	}
	// Bindings waiting for the clock (deferred.go) are counted by the
	// vector already: they travel with it, and wait again wherever the
	// clock has not caught up yet.
	if buf = db.deferredRecords(buf[:0]); len(buf) > 0 {
		meta.Count += len(buf)
		if err := fn(buf); err != nil {
			return meta, err
		}
	}
	return meta, nil
}

// MergeRecords merges records (a snapshot, a full copy from a peer) into the
// table as a list of changes (para. 60, 103): each goes through the merge
// rule, so merging is safe at any time and in any order. It returns how many
// records changed the table and the first error met (the rest are still
// merged).
func (db *DB) MergeRecords(recs []Record, now time.Time) (changed int, err error) {
	nowMs := now.UnixMilli()
	var ic internCache
	for i := range recs {
		b := recs[i].Binding
		if !validName(b.Origin) || (!b.Deleted && !validName(b.Replica)) {
			if err == nil {
				err = ErrInvalidBinding
			}
			continue
		}
		c, e := db.applyRemote(recs[i].Key, b, nowMs, &ic)
		if e != nil && err == nil {
			err = e
		}
		if c {
			changed++
		}
	}
	return changed, err
}

// MergeVector completes a full copy: after all its records are merged, the
// copy's vector is merged into ours (para. 60, 102). Buffered groups that
// are now in sequence are applied, and gaps it closes are closed. from names
// the peer that sent the copy ("" for a local snapshot).
func (db *DB) MergeVector(v Vector, from string, now time.Time) {
	nowMs := now.UnixMilli()
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	v, _ = db.sanitize(v.Clone(), nowMs, nil)
	for o, ps := range v {
		for _, p := range ps {
			if o == db.cfg.Node && p.Epoch == rs.epoch {
				if p.Seq > rs.seq {
					rs.seq, rs.persisted = p.Seq, p.Seq // never number two events alike
				}
			}
			if o == db.cfg.Node && p.Epoch > rs.epoch {
				continue
			}
			if p.Seq > rs.vv.Get(o, p.Epoch) || rs.vv[o] == nil {
				rs.moved(o, nowMs)
			}
			rs.vv.Advance(o, p.Epoch, p.Seq)
		}
	}
	if from != "" {
		db.stats.fullCopies.Add(1)
	}
	var res Result
	for oe, gp := range rs.gaps {
		db.drain(oe, from, nowMs, &res)
		if gp.stage == stageFull && gp.asked == from && rs.gaps[oe] == gp {
			// The copy we asked for did not hold the events either (the peer
			// is on our side of a partition): start over now rather than
			// after FullCopyTimeout.
			gp.stage, gp.since = stageWait, nowMs
		}
	}
}

// RestoreOwn sets this node's own position after a restart from disk
// (Fig. 11 steps 665-670): the epoch and last event number of the snapshot
// or log, and the snapshot's vector. Everything restored counts as
// persisted. Call it after MergeRecords and before ReplayOwn.
func (db *DB) RestoreOwn(meta SnapshotMeta) error {
	if meta.Node != db.cfg.Node || meta.Epoch <= 0 {
		return errors.New("stickydb: snapshot of another node or without an epoch")
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	if meta.Vector != nil {
		rs.vv.Merge(meta.Vector)
		for o := range meta.Vector {
			rs.moved(o, rs.lastNow)
		}
	}
	rs.adoptEpoch(meta.Epoch)
	if meta.Epoch == rs.epoch && meta.Seq > rs.seq {
		rs.seq = meta.Seq
	}
	rs.persisted = rs.seq
	rs.vv.Advance(db.cfg.Node, rs.epoch, rs.seq)
	return nil
}

// ReplayOwn re-applies own events read back from the write-ahead log
// (Fig. 11 step 665), in order, after RestoreOwn. They go into the table
// through the merge rule, into the own log (so peers can be served them)
// and advance the own position; they count as persisted.
func (db *DB) ReplayOwn(epoch int64, evs []Event, now time.Time) error {
	nowMs := now.UnixMilli()
	var firstErr error
	var ic internCache
	for i := range evs {
		b := evs[i].Binding
		if !evs[i].Key.Valid() || !validName(b.Origin) || (!b.Deleted && !validName(b.Replica)) {
			firstErr = errors.Join(firstErr, ErrInvalidBinding)
			continue
		}
		if _, err := db.applyRemote(evs[i].Key, b, nowMs, &ic); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	rs.adoptEpoch(epoch)
	rs.own.add(epoch, evs)
	for i := range evs {
		if epoch == rs.epoch && evs[i].Seq > rs.seq {
			rs.seq = evs[i].Seq
		}
		rs.vv.Advance(db.cfg.Node, epoch, evs[i].Seq)
	}
	rs.persisted = rs.seq
	return firstErr
}

// adoptEpoch replaces the epoch New started with a restored one, as long as
// that epoch is still provisional (no event, no NewEpoch): its empty pair
// leaves the vector. Otherwise the restored epoch is an older one of this
// node and the current epoch stays.
func (rs *replState) adoptEpoch(epoch int64) {
	if !rs.provisional || epoch == rs.epoch {
		return
	}
	rs.provisional = false
	ps := rs.vv[rs.cfg.Node]
	for i := range ps {
		if ps[i].Epoch == rs.epoch && ps[i].Seq == 0 {
			rs.vv[rs.cfg.Node] = append(ps[:i:i], ps[i+1:]...)
			break
		}
	}
	rs.epoch = epoch
	rs.vv.Advance(rs.cfg.Node, epoch, 0)
}
