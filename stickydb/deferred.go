package stickydb

// Deferred bindings: received ones that lie ahead of this node's clock by a
// little more than an honest peer's can (a fleet whose clocks all stepped
// back). They are not lost: they wait here until the clock has caught up,
// then go through the merge like any arrival.

import (
	"sync"
	"time"
)

// MaxClockStep is how far past the receiver's bounds (an expiry later than
// now + TTL + MaxSkew + MaxFutureEpoch, a generation more than
// MaxGenerationAhead ahead) a received binding may lie and still be kept
// for later rather than refused: a step back of every node's clock by up to
// this much beyond those bounds loses no binding. Further ahead, a binding
// is a peer trying to outlive its TTL and is refused.
const MaxClockStep = time.Hour

// MaxDeferred bounds the bindings waiting for the clock; past it, more are
// refused (and counted), so a keyed peer cannot grow memory through them.
const MaxDeferred = 1 << 16

type deferredBinding struct {
	at int64 // unix ms from which the bounds admit it
	k  Key
	b  Binding
}

type deferredGroup struct {
	at int64 // unix ms from which its epoch is no longer in the future
	g  Group
}

// deferrals holds the bindings and the groups (of an epoch begun ahead of
// this node's clock) waiting for the clock, in arrival order. Events of
// both count against MaxDeferred.
type deferrals struct {
	mu     sync.Mutex
	list   []deferredBinding
	groups []deferredGroup
	events int // in groups
}

// admitAt returns when (unix ms) the bounds will admit b, and whether that
// is within MaxClockStep of now. ok is false for a binding admitted now.
func (db *DB) admitAt(b Binding, nowMs int64) (at int64, ok bool) {
	capMs := db.ttlMs + db.skewMs + db.cfg.MaxFutureEpoch.Milliseconds()
	if b.Expiry > nowMs+capMs {
		at = b.Expiry - capMs
	}
	if b.Generation <= MaxGeneration && b.Generation > birth(nowMs)+MaxGenerationAhead {
		// birth(t) >= Generation - MaxGenerationAhead from this time on.
		at = max(at, genEpoch+int64(b.Generation-MaxGenerationAhead-1)*1000)
	}
	if at == 0 {
		return 0, false
	}
	return at, at-nowMs <= MaxClockStep.Milliseconds()
}

// deferBinding keeps b for later if it is ahead by at most MaxClockStep and
// there is room; it reports whether it did.
func (db *DB) deferBinding(k Key, b Binding, nowMs int64) bool {
	at, ok := db.admitAt(b, nowMs)
	if !ok {
		return false
	}
	d := &db.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.list)+d.events >= MaxDeferred {
		return false
	}
	d.list = append(d.list, deferredBinding{at: at, k: k, b: b})
	db.stats.eventsDeferred.Add(1)
	return true
}

// deferGroup keeps a group whose epoch begins after now + MaxFutureEpoch,
// by at most MaxClockStep more, for when the clock has caught up; it
// reports whether it did. An empty group (a heartbeat) has nothing to
// apply later (its vector is not kept either): it is taken without being
// kept, so a peer whose clock is ahead cannot grow the list with
// heartbeats, which MaxDeferred, counting events, would not bound.
func (db *DB) deferGroup(g Group, nowMs int64) bool {
	at := g.Epoch - db.cfg.MaxFutureEpoch.Milliseconds()
	if at-nowMs > MaxClockStep.Milliseconds() {
		return false
	}
	if len(g.Events) == 0 {
		return true
	}
	d := &db.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.list)+d.events+len(g.Events) > MaxDeferred {
		return false
	}
	g.Vector = nil // what the sender knew then; its later vectors will say more
	d.groups = append(d.groups, deferredGroup{at: at, g: g})
	d.events += len(g.Events)
	db.stats.groupsDeferred.Add(1)
	return true
}

// admitDeferred merges the deferred bindings and applies the deferred
// groups the clock now admits. The caller holds db.mu.
func (db *DB) admitDeferred(nowMs int64) {
	d := &db.deferred
	d.mu.Lock()
	var groups []deferredGroup
	keepG := d.groups[:0]
	for _, x := range d.groups {
		if x.at <= nowMs {
			groups = append(groups, x)
			d.events -= len(x.g.Events)
		} else {
			keepG = append(keepG, x)
		}
	}
	clear(d.groups[len(keepG):])
	d.groups = keepG
	var due []deferredBinding
	keep := d.list[:0]
	for _, x := range d.list {
		if x.at <= nowMs {
			due = append(due, x)
		} else {
			keep = append(keep, x)
		}
	}
	clear(d.list[len(keep):])
	d.list = keep
	d.mu.Unlock()
	var ic internCache
	var js []joined
	for _, x := range due {
		_, _ = db.mergeRemote(x.k, x.b, nowMs, &ic, &js)
	}
	db.announceJoins(js)
	for i := range groups {
		var res Result
		_ = db.applyGroup(&groups[i].g, nowMs, &res) // checked when it arrived
	}
}

// Deferred returns how many received bindings and events wait for the
// clock.
func (db *DB) Deferred() int {
	db.deferred.mu.Lock()
	defer db.deferred.mu.Unlock()
	return len(db.deferred.list) + db.deferred.events
}

// deferredRecords appends the deferred bindings to buf, for a snapshot or
// a full copy.
func (db *DB) deferredRecords(buf []Record) []Record {
	d := &db.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.list {
		buf = append(buf, Record{Key: x.k, Binding: x.b})
	}
	return buf
}
