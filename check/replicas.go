package check

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxSlots caps a replica's evidence bitmap at 512 KiB; longer runs get
// wider slots.
const maxSlots = 1 << 22

// slotClock maps an offset from the run's start to an evidence slot.
type slotClock struct {
	width time.Duration
	n     int
}

// newSlotClock covers span (the run, the last requests' timeout and the
// sticky window) with 1 ms slots, or wider ones when that would take more
// than maxSlots.
func newSlotClock(span time.Duration) slotClock {
	w := time.Millisecond
	if span/w >= maxSlots {
		w = span/maxSlots + 1
	}
	return slotClock{width: w, n: int(span/w) + 2}
}

// slot returns the slot of offset d, clamped to the bitmap.
func (c slotClock) slot(d time.Duration) int {
	if d < 0 {
		return 0
	}
	return min(int(d/c.width), c.n-1)
}

// replica is one backend replica, as named by responses.
type replica struct {
	name   string
	served atomic.Uint64
	// up has bit s set when a request sent in slot s was served by this
	// replica: the evidence that it was up then.
	up []atomic.Uint64
}

// markUp records that a request sent in slot s was served. It writes only
// when the bit is clear, so a busy replica costs a load, not a contended
// write, per request.
func (r *replica) markUp(s int) {
	w, bit := &r.up[s>>6], uint64(1)<<(s&63)
	if w.Load()&bit == 0 {
		w.Or(bit)
	}
}

// upIn reports whether the replica served a request sent in a slot of
// [from, to].
func (r *replica) upIn(from, to int) bool {
	to = min(to, len(r.up)*64-1)
	for s := max(from, 0); s <= to; {
		word := r.up[s>>6].Load() >> (s & 63) // bit 0 is now slot s
		last := s | 63                        // the word's last slot
		if last > to {
			word &= 1<<(to-s+1) - 1 // drop the slots after to
		}
		if word != 0 {
			return true
		}
		s = last + 1
	}
	return false
}

// replicaTable interns replica names. Lookups of a known name take a read
// lock; clients cache their current replica, so most requests skip even
// that.
type replicaTable struct {
	clock slotClock
	limit int

	mu     sync.RWMutex
	byName map[string]*replica
	list   []*replica // in order of first appearance
}

func newReplicaTable(clock slotClock, limit int) *replicaTable {
	return &replicaTable{clock: clock, limit: limit, byName: map[string]*replica{}}
}

// get returns the replica called name, adding it when new; nil when the
// table is full.
func (t *replicaTable) get(name string) *replica {
	t.mu.RLock()
	r := t.byName[name]
	t.mu.RUnlock()
	if r != nil {
		return r
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r = t.byName[name]; r != nil {
		return r
	}
	if len(t.list) >= t.limit {
		return nil
	}
	r = &replica{name: name, up: make([]atomic.Uint64, (t.clock.n+63)/64)}
	t.byName[name] = r
	t.list = append(t.list, r)
	return r
}

// all returns the replicas in order of first appearance. The slice is a
// copy; the replicas are shared.
func (t *replicaTable) all() []*replica {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]*replica(nil), t.list...)
}
