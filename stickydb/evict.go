package stickydb

// Eviction order at MaxBindings (issue 17: a flood of new keys must not
// push out the bindings of clients in use). From a sample of a shard, the
// first of these classes present goes, and within a class the first in the
// order given:
//
//  0. tombstones and expired entries, soonest expiry first;
//  1. cold entries, not used here for about half the TTL (local expiry
//     within TTL/2), soonest expiry first;
//  2. young entries, announced within the last youngWindow (new bindings,
//     or just refreshed), the most recently announced first: a flood's
//     newest binding, often the one being stored, before older ones;
//  3. the rest, established and recently used, soonest expiry first.
//
// So a binding in use survives a flood of new keys unless its refresh fell
// in the same second as the flood's newest binding, in the same sample.

// youngWindow is how recent an announce makes an entry young: a minute,
// or TTL/8 when that is shorter.
func (db *DB) youngWindowMs() int64 { return min(60_000, db.ttlMs/8) }

// evictRank orders eviction candidates: lower class first, then lower order.
func (db *DB) evictRank(e entry, nowMs int64) (class int, order int64) {
	switch exp := e.expiry(); {
	case e.deleted() || exp <= nowMs:
		return 0, exp
	case exp < nowMs+db.ttlMs/2:
		return 1, exp
	case e.announced() > nowMs+db.ttlMs-db.youngWindowMs():
		return 2, -e.announced()
	default:
		return 3, exp
	}
}

// evictFor evicts for newcomer k, just stored in s (locked): k itself
// is a candidate beside the sample, so a flood's newest binding goes
// before anything older in its class.
func (db *DB) evictFor(s *shard, k Key, nowMs int64) bool {
	victim, ok := db.pickVictim(s, nowMs, &k)
	if ok {
		db.remove(s, victim)
		db.stats.evictions.Add(1)
	}
	return ok
}

// pickVictim chooses the entry of a sample of s (locked) to evict; first,
// when not nil, is a candidate too.
func (db *DB) pickVictim(s *shard, nowMs int64, first *Key) (tkey, bool) {
	const sample = 16
	var victim tkey
	bestClass, bestOrder := 0, int64(0)
	n := 0
	if first != nil {
		if tk, e, ok := s.find(*first); ok {
			victim = tk
			bestClass, bestOrder = db.evictRank(e, nowMs)
			n++
		}
	}
	seen := 0
	for k, e := range s.m {
		c, o := db.evictRank(e, nowMs)
		if n == 0 || c < bestClass || (c == bestClass && o < bestOrder) {
			victim, bestClass, bestOrder = k, c, o
		}
		n++
		if seen++; seen == sample {
			break
		}
	}
	return victim, n > 0
}
