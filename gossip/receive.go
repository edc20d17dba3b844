package gossip

import (
	"errors"

	"github.com/tetherproxy/tether/stickydb"
)

// onGroup (delegate, any goroutine) hands a change group to the core.
func (n *Node) onGroup(g stickydb.Group, meta groupMeta) {
	now := n.now()
	p := n.peers.get(g.Sender)
	if p != nil && meta.flags&groupAnswer == 0 && meta.made > 0 {
		n.observeLag(p, now.UnixMilli()-meta.made)
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
	if res.Announced > 0 {
		n.kick() // the core made own events announcing a merge's join
	}
	if res.Rejected > 0 {
		// Expired on arrival or refused by a cap of the core: the group
		// itself was fine.
		n.stats.eventsRejected.Add(uint64(res.Rejected))
	}
}

// observeLag records the replication lag of a pushed group: from when its
// oldest event was made at the sender (the first write after its previous
// push) to its arrival here, so the pacing wait is included. Clocks are
// compared, so across hosts it is as good as their sync (on one host,
// exact to the millisecond).
func (n *Node) observeLag(p *peer, lag int64) {
	lag = max(lag, 0)
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
