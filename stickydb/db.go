package stickydb

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unique"
)

// DB is one node's sticky database: the binding table (Fig. 3), its own
// change log (Fig. 4), its version vector (Fig. 5, 12), the version vector
// table (Fig. 8) and the change log table (Fig. 10).
//
// It is safe for concurrent use. Lookups and hits lock one shard of the
// table and allocate nothing; binds and received groups also take the
// replication lock. The DB starts no goroutine, does no I/O and never reads
// the clock: every call that depends on time takes `now`, and everything
// that must be sent or stored comes back as a value (see doc.go).
type DB struct {
	cfg       Config
	ttlMs     int64
	refreshMs int64
	skewMs    int64
	self      uint16 // id of cfg.Node

	shards    []shard
	shardMask uint64
	names     *names

	live     atomic.Int64   // entries in the table, tombstones included
	watches  watches        // Watch's channels; store fires them
	byOrigin []atomic.Int64 // live entries per origin id (index = name id)

	stats       counters
	provisional atomic.Bool
	behind      atomic.Bool // see SetBehind

	mu sync.Mutex // replication state below; taken after a shard lock is released, or before one
	rs replState

	deferred deferrals // received bindings waiting for the clock; its lock is taken alone
}

// entry is a binding as the table stores it: 16 bytes, no pointers; with
// its key (tkey, shard.go) a map slot is 36 bytes and the GC never scans
// the table. Times are whole unix seconds: the announced expiry is rounded
// down the same way on every node, so rounding never makes nodes differ.
type entry struct {
	exp     uint32 // serve until: announced + RefreshThreshold, or later after hits here (rounded up)
	ann     uint32 // expiry as the fleet knows it (Binding.Expiry)
	gen     uint32
	replica uint16 // name id; 0 for a tombstone
	origin  uint16 // name id
}

func (e *entry) expiry() int64    { return int64(e.exp) * 1000 }
func (e *entry) announced() int64 { return int64(e.ann) * 1000 }
func (e *entry) deleted() bool    { return e.replica == 0 }
func (e *entry) setExpiry(ms int64) {
	e.exp = uint32(min(max((ms+999)/1000, 0), math.MaxUint32))
}
func (e *entry) setAnnounced(ms int64) { e.ann = uint32(min(max(ms/1000, 0), math.MaxUint32)) }

// newEntry builds an entry from millisecond times.
func newEntry(expiry, announced int64, gen uint32, replica, origin uint16) entry {
	e := entry{gen: gen, replica: replica, origin: origin}
	e.setExpiry(expiry)
	e.setAnnounced(announced)
	return e
}

// New returns an empty DB whose own events start a new epoch at now.
func New(cfg Config, now time.Time) (*DB, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := 1 << bits.Len(uint(cfg.Shards-1))
	db := &DB{
		cfg:       cfg,
		ttlMs:     cfg.TTL.Milliseconds(),
		refreshMs: cfg.RefreshThreshold.Milliseconds(),
		skewMs:    cfg.MaxSkew.Milliseconds(),
		shards:    make([]shard, n),
		shardMask: uint64(n - 1),
		names:     newNames(),
		byOrigin:  make([]atomic.Int64, 1<<16),
	}
	for i := range db.shards {
		db.shards[i].m = make(map[tkey]entry)
	}
	self, err := db.names.id(cfg.Node)
	if err != nil {
		return nil, err
	}
	db.self = self
	db.rs.init(cfg, db.names, now.UnixMilli())
	return db, nil
}

// Reserve sizes the binding table for n bindings before a bulk load (a
// snapshot or a full copy of known size), so the load does not pay for the
// maps growing step by step. It only acts on shards that are still empty.
func (db *DB) Reserve(n int) {
	per := n/len(db.shards) + n/len(db.shards)/8 + 1
	for i := range db.shards {
		s := &db.shards[i]
		s.mu.Lock()
		if len(s.m) == 0 {
			s.m = make(map[tkey]entry, per)
		}
		s.mu.Unlock()
	}
}

// SetProvisional marks the binds this node makes from now on as provisional
// (on) or not (off). A node that has not caught up with its peers yet (just
// restarted, still fetching the fleet's bindings) still serves, choosing
// replicas by rendezvous hashing, but it may not know a client's binding
// yet: its first bind of a key then takes generation 0, which loses every
// conflict with a binding the fleet already has (generation 1 and up), so
// the fleet's binding wins and no settled client is moved anywhere. Turn it
// off once the node is ready.
func (db *DB) SetProvisional(on bool) { db.provisional.Store(on) }

// SetBehind tells the DB whether the shell holds received groups it has
// not handed to Receive yet (a backlog: the node is short of CPU). While
// behind, Tick asks for nothing: neither gap ranges nor full copies nor
// watchdog ranges, since what it would ask for may be in that backlog, and
// asking costs the peers and this node more of what is short. Gaps keep
// their age; once the backlog is gone, those still open are asked for.
func (db *DB) SetBehind(on bool) { db.behind.Store(on) }

// Node returns this node's name.
func (db *DB) Node() string { return db.cfg.Node }

// Config returns the configuration in effect, defaults filled in.
func (db *DB) Config() Config { return db.cfg }

// Len returns the number of entries held, tombstones and not yet swept
// expired entries included.
func (db *DB) Len() int { return int(db.live.Load()) }

// shardOf picks k's shard by Key.Hash (see there why it is the same on
// every node).
func (db *DB) shardOf(k Key) *shard { return &db.shards[k.Hash()&db.shardMask] }

// Hit is what a request needs from a live binding.
type Hit struct {
	Replica    string
	Generation uint32
	// RefreshDue: the local expiry now runs RefreshThreshold or more ahead of
	// the announced one; the caller should call Refresh so the fleet learns
	// the later expiry (once per threshold, not once per request).
	RefreshDue bool
}

// Touch is the hot path (Fig. 13, steps 755-765): if the key has a live
// binding, extend its local expiry to now + TTL and return it. It locks one
// shard and allocates nothing.
//
// Expiry, precisely: the fleet knows a binding's announced expiry; every node
// serves it until announced + RefreshThreshold, or until TTL after its last
// use on this node if that is later. Since a node announces a refresh once
// TTL after the last use runs RefreshThreshold past the announced expiry, no
// node forgets a binding that another node still serves, and a binding lives
// at least TTL and at most TTL + RefreshThreshold after its last use.
func (db *DB) Touch(k Key, now time.Time) (Hit, bool) {
	nowMs := now.UnixMilli()
	s := db.shardOf(k)
	s.mu.Lock()
	tk, e, ok := s.find(k)
	if !ok || e.deleted() || e.expiry() <= nowMs {
		s.mu.Unlock()
		return Hit{}, false
	}
	if exp := nowMs + db.ttlMs; exp > e.expiry() {
		e.setExpiry(exp)
		s.m[tk] = e
	}
	due := nowMs+db.ttlMs-e.announced() >= db.refreshMs
	s.mu.Unlock()
	return Hit{Replica: db.names.name(e.replica), Generation: e.gen, RefreshDue: due}, true
}

// Lookup returns the binding of k as the fleet knows it (tombstones
// included), without extending it.
func (db *DB) Lookup(k Key) (Binding, bool) {
	s := db.shardOf(k)
	s.mu.Lock()
	e, ok := s.get(k)
	s.mu.Unlock()
	if !ok {
		return Binding{}, false
	}
	return db.binding(e), true
}

// LocalExpiry returns the expiry of k on this node (extended by hits), unix ms.
func (db *DB) LocalExpiry(k Key) (int64, bool) {
	s := db.shardOf(k)
	s.mu.Lock()
	e, ok := s.get(k)
	s.mu.Unlock()
	return e.expiry(), ok
}

func (db *DB) binding(e entry) Binding {
	return Binding{
		Replica:    db.names.name(e.replica),
		Expiry:     e.announced(),
		Generation: e.gen,
		Origin:     db.names.name(e.origin),
		Deleted:    e.deleted(),
	}
}

// BindIfAbsent binds k to replica unless k already has a live binding, which
// it then extends and returns instead (Fig. 13, steps 770-775). created says
// whether a bind event was made. After a tombstone or an expired entry the
// new binding takes the next generation.
func (db *DB) BindIfAbsent(k Key, replica string, now time.Time) (b Binding, created bool, err error) {
	return db.write(k, now, func(e entry, ok bool, nowMs int64) (entry, EventKind) {
		if ok && !e.deleted() && e.expiry() > nowMs {
			return db.use(e, nowMs)
		}
		return db.fresh(e, ok, nowMs), KindBind
	}, replica)
}

// Rebind moves k from replica `from` to replica `to` with the next
// generation: the proxy's answer to a bound replica that is down, removed or
// refusing connections. It acts only if k is still bound to `from` (a
// compare-and-swap), so that two requests that saw the same dead replica
// do not rebind twice; if k is bound elsewhere already, that binding is
// returned. from == "" rebinds whatever k is bound to (an operator's
// rebind). Without a live binding, it binds k to `to`.
func (db *DB) Rebind(k Key, from, to string, now time.Time) (b Binding, changed bool, err error) {
	return db.write(k, now, func(e entry, ok bool, nowMs int64) (entry, EventKind) {
		if !ok || e.deleted() || e.expiry() <= nowMs {
			return db.fresh(e, ok, nowMs), KindBind
		}
		cur := db.names.name(e.replica)
		if cur == to || (from != "" && cur != from) {
			return db.use(e, nowMs)
		}
		return newEntry(nowMs+db.ttlMs+db.refreshMs, nowMs+db.ttlMs, nextGen(e.gen, nowMs), 0, db.self), KindRebind
	}, to)
}

// Delete replaces the binding of k with a tombstone of the next generation,
// which lives TTL + MaxSkew so that no bind still travelling can bring the
// old binding back. It returns ErrNotFound when k has no live binding.
func (db *DB) Delete(k Key, now time.Time) (Binding, error) {
	b, made, err := db.write(k, now, func(e entry, ok bool, nowMs int64) (entry, EventKind) {
		if !ok || e.deleted() || e.expiry() <= nowMs {
			return e, 0
		}
		exp := nowMs + db.ttlMs + db.skewMs
		return newEntry(exp+db.refreshMs, exp, nextGen(e.gen, nowMs), 0, db.self), KindDelete
	}, "")
	if err == nil && !made {
		err = ErrNotFound // no live binding: nothing deleted (a tombstone already, or none)
	}
	return b, err
}

// Refresh announces now + TTL as the expiry of k to the fleet, when that is
// later than the announced one. Call it when Touch says RefreshDue.
func (db *DB) Refresh(k Key, now time.Time) (Binding, error) {
	b, _, err := db.write(k, now, func(e entry, ok bool, nowMs int64) (entry, EventKind) {
		if !ok || e.deleted() || e.expiry() <= nowMs || nowMs+db.ttlMs < e.announced()+1000 {
			return e, 0
		}
		e.setAnnounced(nowMs + db.ttlMs)
		e.setExpiry(max(e.expiry(), e.announced()+db.refreshMs))
		return e, KindRefresh
	}, "")
	return b, err
}

// use extends a live binding for a request, as Touch does, and announces
// the new expiry with a refresh event when one is due: a node never serves a
// binding past the expiry the fleet knows plus RefreshThreshold without
// telling the fleet.
func (db *DB) use(e entry, nowMs int64) (entry, EventKind) {
	e.setExpiry(max(e.expiry(), nowMs+db.ttlMs))
	if nowMs+db.ttlMs-e.announced() < db.refreshMs {
		return e, 0
	}
	e.setAnnounced(nowMs + db.ttlMs)
	e.setExpiry(max(e.expiry(), e.announced()+db.refreshMs))
	return e, KindRefresh
}

// fresh is a first binding of k, or the next generation after a tombstone
// or an expired entry (so that it wins over any copy of the old one still
// live elsewhere).
func (db *DB) fresh(old entry, existed bool, nowMs int64) entry {
	gen := birth(nowMs)
	switch {
	case existed:
		gen = nextGen(old.gen, nowMs)
	case db.provisional.Load():
		gen = 0 // see SetProvisional
	}
	return newEntry(nowMs+db.ttlMs+db.refreshMs, nowMs+db.ttlMs, gen, 0, db.self)
}

// write runs one local change of k under its shard lock, then records the
// event in the own log. fn returns the new entry and the event kind, or 0
// for no event (the entry is still stored: a hit may have extended it).
// The replica field of a new entry is set from `replica` when the kind
// names one.
func (db *DB) write(k Key, now time.Time, fn func(e entry, ok bool, nowMs int64) (entry, EventKind), replica string) (Binding, bool, error) {
	if !k.Valid() {
		return Binding{}, false, ErrInvalidKey
	}
	var rid uint16
	if replica != "" {
		if !validName(replica) {
			return Binding{}, false, ErrInvalidBinding
		}
		var err error
		if rid, err = db.names.id(replica); err != nil {
			return Binding{}, false, err
		}
	}
	nowMs := now.UnixMilli()
	k.host = internHost(k.host)
	s := db.shardOf(k)
	s.mu.Lock()
	tk, old, inMap := s.find(k)
	// An entry past its horizon is absent, as for a received binding: the
	// next bind starts at generation 1 whether or not Sweep came by.
	ok := inMap && !db.pastHorizon(old.announced(), nowMs)
	e, kind := fn(old, ok, nowMs)
	if kind == KindBind || kind == KindRebind {
		e.replica = rid // the fn left it 0; 0 means a tombstone only for KindDelete
	}
	if kind == 0 && !ok {
		s.mu.Unlock()
		return Binding{}, false, nil
	}
	if kind != 0 && ok && old.ann > e.ann {
		// The new binding supersedes the old one: as in every join (see
		// Merge), it takes the later expiry of the two, so that the event
		// says exactly what every node holds once it has merged it.
		e.ann = old.ann
		e.exp = max(e.exp, old.ann+uint32(min(db.refreshMs/1000, math.MaxUint32)))
	}
	if kind != 0 && e.gen > MaxGeneration {
		s.mu.Unlock()
		db.stats.capBreaches.Add(1)
		return Binding{}, false, ErrGeneration
	}
	if kind != 0 && (!inMap || old.origin != e.origin) && db.byOrigin[e.origin].Load() >= int64(db.cfg.MaxBindingsPerOrigin) {
		s.mu.Unlock()
		db.stats.capBreaches.Add(1)
		return Binding{}, false, ErrOriginFull
	}
	db.store(s, k, tk, old, inMap, e, nowMs)
	s.mu.Unlock()
	b := db.binding(e)
	if kind == 0 {
		return b, false, nil
	}
	db.stats.count(kind)
	db.mu.Lock()
	db.rs.appendOwn(kind, k, b)
	db.mu.Unlock()
	return b, true, nil
}

// store puts e under k in s (locked), keeping the counters, and evicts an
// entry of the shard (evict.go) when the table is over MaxBindings. tk,
// old and existed are what shard.find gave for k.
func (db *DB) store(s *shard, k Key, tk tkey, old entry, existed bool, e entry, nowMs int64) {
	// Under the shard lock, so that a waiter that took Watch before its
	// lookup of k (which takes this lock too) cannot miss this write.
	db.watches.fire(k)
	if existed {
		if old.origin != e.origin {
			db.byOrigin[old.origin].Add(-1)
			db.byOrigin[e.origin].Add(1)
		}
	} else {
		// Reserve the slot first: concurrent writers in other shards each
		// see a count that includes the others, so each one over the cap
		// evicts one, from its own shard, where the new entry is always a
		// candidate: the count is back within the cap once they are done.
		// (A pass over other shards to "settle" a count seen over the cap
		// would race with writers about to evict, and take an older
		// binding where the newest should go.) The new entry is stored
		// first: it may itself be the one to go (evict.go).
		n := db.live.Add(1)
		db.byOrigin[e.origin].Add(1)
		s.add(k, tk, e)
		if db.cfg.MaxBindings > 0 && n > int64(db.cfg.MaxBindings) {
			db.evictFor(s, k, nowMs)
		}
		return
	}
	s.m[tk] = e
}

// remove deletes tk from s (locked), keeping the counters.
func (db *DB) remove(s *shard, tk tkey) {
	e := s.del(tk)
	db.live.Add(-1)
	db.byOrigin[e.origin].Add(-1)
}

// internHost makes every binding of one host share one string, so the
// shards' host dictionaries and the events do not keep each request's copy
// of the Host header alive.
func internHost(h string) string { return unique.Make(h).Value() }

// Sweep removes the entries whose local expiry has passed and whose
// announced expiry is past its horizon (Fig. 6, the last step of para. 11),
// tombstones included: until then an entry still takes part in merges
// (see applyRemote). It visits
// at most maxShards shards, starting where the previous call stopped, so a
// caller can spread one pass over many ticks; maxShards <= 0 visits all.
// It returns the number removed.
func (db *DB) Sweep(now time.Time, maxShards int) int {
	cutoff := now.UnixMilli()
	n := len(db.shards)
	if maxShards <= 0 || maxShards > n {
		maxShards = n
	}
	removed := 0
	start := int(db.rs.sweepNext.Add(uint64(maxShards))) - maxShards
	for i := 0; i < maxShards; i++ {
		s := &db.shards[(start+i)&int(db.shardMask)]
		s.mu.Lock()
		for tk, e := range s.m {
			if e.expiry() <= cutoff && db.pastHorizon(e.announced(), cutoff) {
				db.remove(s, tk)
				removed++
				if !e.deleted() {
					db.stats.expiries.Add(1)
				}
			}
		}
		s.mu.Unlock()
	}
	return removed
}
