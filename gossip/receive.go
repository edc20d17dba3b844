package gossip

import (
	"errors"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// onGroup (delegate, any goroutine) hands a change group to the core.
func (n *Node) onGroup(g stickydb.Group, flags uint64) {
	now := n.now()
	p := n.peers.get(g.Sender)
	events := len(g.Events)
	if p != nil && flags&groupAnswer == 0 && g.Sender == g.Origin && events > 0 {
		n.observeLag(p, &g.Events[events-1], now)
	}
	res, err := n.db.Receive(g, now) // the core owns g from here
	n.stats.groupsReceived.Add(1)
	if p != nil {
		p.c.groupsReceived.Add(1)
		p.c.eventsApplied.Add(uint64(res.Applied))
	}
	if err != nil {
		n.rejected(g.Sender, err)
		return
	}
	n.stats.eventsApplied.Add(uint64(res.Applied))
	if res.Rejected > 0 {
		// Expired on arrival or refused by a cap of the core: the group
		// itself was fine.
		n.stats.eventsRejected.Add(uint64(res.Rejected))
	}
}

// observeLag estimates how long the newest event of a pushed group took to
// get here: its expiry was set to now + TTL at its origin (+ MaxSkew for a
// tombstone). With clocks in sync (NTP; on one host exactly) this is the
// replication lag, to the millisecond.
func (n *Node) observeLag(p *peer, ev *stickydb.Event, now time.Time) {
	made := ev.Binding.Expiry - n.ttlMs
	if ev.Kind == stickydb.KindDelete {
		made -= n.skew
	}
	lag := now.UnixMilli() - made
	if lag < 0 {
		lag = 0
	}
	p.c.lagLast.Store(lag)
	for {
		old := p.c.lagMax.Load()
		if lag <= old || p.c.lagMax.CompareAndSwap(old, lag) {
			break
		}
	}
}

// onState takes a peer's vector from memberlist's push/pull.
func (n *Node) onState(m stateMsg) {
	if m.Sender == n.self {
		return
	}
	n.db.ObserveVector(m.Sender, m.Vector, n.now())
	n.stats.statesMerged.Add(1)
}

// dropped counts and logs (rate-limited) a message that did not decode.
func (n *Node) dropped(t msgType, body []byte, err error) {
	sender := peekSender(body)
	if errors.Is(err, ErrOverCap) {
		n.stats.capBreaches.Add(1)
	} else {
		n.stats.decodeErrors.Add(1)
	}
	n.senders.add(sender, err)
	n.logs.decode.Do(func() {
		n.log.Warn().Err(err).Str("sender", sender).Stringer("type", t).Int("bytes", len(body)+headerLen).Msg("message dropped")
	})
}

// rejected counts a group or records the core refused (a cap or format
// breach of the sender's).
func (n *Node) rejected(sender string, err error) {
	n.stats.coreRejects.Add(1)
	n.senders.add(sender, err)
	n.logs.reject.Do(func() { n.log.Warn().Err(err).Str("sender", sender).Msg("refused by the core") })
}

// peekSender reads the sender name every body starts with, for logs and
// counters; "" when even that does not decode.
func peekSender(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	r := newReader(body, &Caps{})
	defer r.release()
	s := r.str(maxNameLen, "sender")
	if r.err != nil {
		return ""
	}
	return s
}
