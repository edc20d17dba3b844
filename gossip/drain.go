package gossip

import (
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Drain state is fleet-wide: the registers and their merge are the core's
// (stickydb.Drains); this file sends them. A change goes reliably to every
// live peer at once; the whole set goes to a peer that joins and to every
// peer every drainResend, which repairs a lost message. The set is small
// (one entry per drained or undrained replica), so it is sent whole.

// DrainEntry is one replica's drain register.
type DrainEntry = stickydb.DrainEntry

// maxDrains bounds the registers accepted per message.
const maxDrains = stickydb.MaxDrains

// SetDrain drains (on) or undrains a replica on every node: here at once
// (through Config.OnDrain), on the live peers as soon as they receive it.
func (n *Node) SetDrain(pool, name string, on bool) {
	e, changed := n.drains.Set(pool, name, on, n.self, n.now())
	if changed {
		n.applyDrains([]DrainEntry{e})
	}
	msg := encodeDrains(n.self, []DrainEntry{e})
	for _, p := range n.peers.live() {
		n.sendReliable(p, msg)
	}
}

// Drains returns the drain registers this node knows, for the admin page.
func (n *Node) Drains() []DrainEntry { return n.drains.All() }

func (n *Node) onDrains(m drainMsg) {
	if m.Sender == n.self {
		return
	}
	n.applyDrains(n.drains.Merge(m.Entries))
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
	all := n.drains.All()
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

func (n *Node) drainTick(now time.Time) {
	if n.drains.ResendDue(now, drainResend) {
		n.resendDrains(n.peers.live())
	}
}
