package gossip

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
// of delivery. A change goes reliably to every live peer at once; the whole
// set goes to a peer that joins and to every peer every DrainResend, which
// repairs a lost message. The set is small (one entry per drained or
// undrained replica), so it is sent whole.

// DrainEntry is one replica's drain register.
type DrainEntry struct {
	Pool, Name string
	On         bool
	Stamp      int64  // unix ms of the writer's clock
	Origin     string // the node that wrote it
}

func (a DrainEntry) newer(b DrainEntry) bool {
	if a.Stamp != b.Stamp {
		return a.Stamp > b.Stamp
	}
	return a.Origin > b.Origin
}

type drainKey struct{ pool, name string }

type drainTable struct {
	mu       sync.Mutex
	m        map[drainKey]DrainEntry
	lastSent time.Time // run loop only
}

// maxDrains bounds the registers kept and accepted per message.
const maxDrains = 4096

// merge takes entries in and returns those that changed the table.
func (t *drainTable) merge(es []DrainEntry) []DrainEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[drainKey]DrainEntry{}
	}
	var changed []DrainEntry
	for _, e := range es {
		k := drainKey{e.Pool, e.Name}
		cur, ok := t.m[k]
		if ok && !e.newer(cur) {
			continue
		}
		if !ok && len(t.m) >= maxDrains {
			continue
		}
		t.m[k] = e
		if !ok || cur.On != e.On {
			changed = append(changed, e)
		}
	}
	return changed
}

func (t *drainTable) all() []DrainEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]DrainEntry, 0, len(t.m))
	for _, e := range t.m {
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

func (t *drainTable) get(pool, name string) (DrainEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[drainKey{pool, name}]
	return e, ok
}

// SetDrain drains (on) or undrains a replica on every node: here at once
// (through Config.OnDrain), on the live peers as soon as they receive it.
func (n *Node) SetDrain(pool, name string, on bool) {
	stamp := n.now().UnixMilli()
	if cur, ok := n.drains.get(pool, name); ok && cur.Stamp >= stamp {
		stamp = cur.Stamp + 1
	}
	e := DrainEntry{Pool: pool, Name: name, On: on, Stamp: stamp, Origin: n.self}
	n.applyDrains(n.drains.merge([]DrainEntry{e}))
	msg := encodeDrains(n.self, []DrainEntry{e})
	for _, p := range n.peers.live() {
		n.sendReliable(p, msg)
	}
}

// Drains returns the drain registers this node knows, for the admin page.
func (n *Node) Drains() []DrainEntry { return n.drains.all() }

func (n *Node) onDrains(m drainMsg) {
	if m.Sender == n.self {
		return
	}
	n.applyDrains(n.drains.merge(m.Entries))
}

func (n *Node) applyDrains(changed []DrainEntry) {
	for _, e := range changed {
		n.log.Info().Str("pool", e.Pool).Str("replica", e.Name).Bool("drain", e.On).Str("by", e.Origin).Msg("drain state")
		if n.cfg.OnDrain != nil {
			n.cfg.OnDrain(e.Pool, e.Name, e.On)
		}
	}
}

// resendDrains (run loop) sends the whole set to every live peer every
// DrainResend, and to a peer that just came up (anti-entropy).
func (n *Node) resendDrains(to []*peer) {
	all := n.drains.all()
	if len(all) == 0 {
		return
	}
	msg := encodeDrains(n.self, all)
	for _, p := range to {
		n.sendReliable(p, msg)
	}
}

// drainResend is the period of the whole-set resend.
const drainResend = 10 * time.Second

func (n *Node) drainTick() {
	if time.Since(n.drains.lastSent) < drainResend {
		return
	}
	n.drains.lastSent = time.Now()
	n.resendDrains(n.peers.live())
}
