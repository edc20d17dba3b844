package stickydb

// Drain registers: the fleet-wide drain state of replicas.

import (
	"sort"
	"sync"
	"time"
)

// Drain state is fleet-wide: an operator drains a replica on one node's
// admin page and every node stops giving it new clients. Each (pool,
// replica) is a last-writer-wins register, stamped with the writer's clock
// (made strictly later than the stamp it replaces) and its node name to
// break ties, so every node settles on the same value whatever the order
// of delivery. The shell sends a change to every live peer, and the whole
// set to a peer that comes up and to every peer when ResendDue says so.

// DrainEntry is one replica's drain register.
type DrainEntry struct {
	Pool, Name string
	On         bool
	Stamp      int64  // unix ms of the writer's clock
	Origin     string // the node that wrote it
}

// newer orders registers: the later stamp, then the greater origin, then
// on over off. An honest origin never writes two states with one stamp;
// the last rule makes the order total anyway, so a peer that does cannot
// leave nodes on different states depending on delivery order.
func (a DrainEntry) newer(b DrainEntry) bool {
	if a.Stamp != b.Stamp {
		return a.Stamp > b.Stamp
	}
	if a.Origin != b.Origin {
		return a.Origin > b.Origin
	}
	return a.On && !b.On
}

// MaxDrains bounds the registers kept (and accepted per message).
const MaxDrains = 4096

type drainKey struct{ pool, name string }

// Drains is a node's set of drain registers. It is pure (the clock comes
// in) and safe for concurrent use.
type Drains struct {
	mu       sync.Mutex
	m        map[drainKey]DrainEntry
	lastSent int64 // unix ms of the last whole-set resend
}

// Set writes this node's (origin's) drain state of a replica, stamped with
// now or, if the register holds that stamp or a later one, just after it.
// It returns the entry to send and whether the replica's state changed.
func (d *Drains) Set(pool, name string, on bool, origin string, now time.Time) (DrainEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	stamp := now.UnixMilli()
	if cur, ok := d.m[drainKey{pool, name}]; ok && cur.Stamp >= stamp {
		stamp = cur.Stamp + 1
	}
	e := DrainEntry{Pool: pool, Name: name, On: on, Stamp: stamp, Origin: origin}
	return e, len(d.merge([]DrainEntry{e})) > 0
}

// Merge takes entries in (from a peer) and returns those that changed a
// replica's state. A register past MaxDrains is dropped.
func (d *Drains) Merge(es []DrainEntry) []DrainEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.merge(es)
}

func (d *Drains) merge(es []DrainEntry) []DrainEntry {
	if d.m == nil {
		d.m = map[drainKey]DrainEntry{}
	}
	var changed []DrainEntry
	for _, e := range es {
		k := drainKey{e.Pool, e.Name}
		cur, ok := d.m[k]
		if ok && !e.newer(cur) {
			continue
		}
		if !ok && len(d.m) >= MaxDrains {
			continue
		}
		d.m[k] = e
		if !ok || cur.On != e.On {
			changed = append(changed, e)
		}
	}
	return changed
}

// All returns every register, by pool then replica.
func (d *Drains) All() []DrainEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DrainEntry, 0, len(d.m))
	for _, e := range d.m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pool != out[j].Pool {
			return out[i].Pool < out[j].Pool
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ResendDue reports whether the whole set is due to every peer again
// (every period; anti-entropy for a lost change), and if so starts the
// next period at now.
func (d *Drains) ResendDue(now time.Time, period time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ms := now.UnixMilli()
	if d.lastSent != 0 && ms-d.lastSent < period.Milliseconds() && ms >= d.lastSent {
		return false
	}
	d.lastSent = ms
	return true
}
