package stickydb

// Epochs: the node's own epoch, a peer that knows a later one, and starting
// a new one.

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
