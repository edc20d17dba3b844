package gossip

import (
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// sendRequest (run loop) sends one of the core's requests to its peer.
func (n *Node) sendRequest(req stickydb.Request, now time.Time) {
	p := n.peers.get(req.To)
	if p == nil || !p.live.Load() {
		n.stats.unknownPeer.Add(1)
		return
	}
	if req.Full && n.copies.arriving() {
		// One copy at a time: the one arriving closes the gap or, if it
		// does not, the core asks again once it is merged (copyflow.go).
		n.log.Debug().Str("peer", req.To).Stringer("reason", req.Reason).Msg("full copy request held: a copy is arriving")
		return
	}
	// Any request may be answered with a full copy (when the range is gone
	// from the peer's logs): its chunks are welcome from now on.
	n.copies.expectFrom(req.To, now.Add(n.cfg.CopyTimeout))
	msg := encodeRequest(n.self, &req)
	if n.send(p, msg) {
		n.stats.requestsSent.Add(1)
		p.c.requestsSent.Add(1)
	}
	n.log.Debug().Str("peer", req.To).Stringer("reason", req.Reason).Bool("full", req.Full).Strs("origins", req.Origins).Msg("request sent")
}

// onRequest (delegate) applies the per-peer rate limits, then hands the
// answer to a worker: answering may stream a lot.
func (n *Node) onRequest(m requestMsg) {
	p := n.peers.get(m.Sender)
	if p == nil || !p.live.Load() {
		// We could not address the answer; the peer asks again once
		// membership has caught up.
		n.stats.unknownPeer.Add(1)
		return
	}
	p.c.requestsReceived.Add(1)
	lim := p.reqLimit
	if m.Req.Full {
		lim = p.copyLimit
	}
	if !lim.Allow() {
		n.refuse(p, m.Req.Full)
		return
	}
	n.enqueue(func() { n.answer(p, m.Req) })
}

func (n *Node) refuse(p *peer, full bool) {
	n.stats.requestsRefused.Add(1)
	p.c.requestsRefused.Add(1)
	n.logs.refuse.Do(func() {
		n.log.Warn().Str("peer", p.name).Bool("full", full).Msg("request over the peer's rate limit; refused")
	})
}

// answer (worker) serves a request: the groups the core returns, or a full
// copy when the core says the range is gone (rate-limited separately).
func (n *Node) answer(p *peer, req stickydb.Request) {
	now := n.now()
	groups, full := n.db.Answer(req, now)
	if full {
		if !req.Full && !p.copyLimit.Allow() {
			n.refuse(p, true)
			return
		}
		n.startCopy(p, now)
		return
	}
	n.stats.requestsAnswered.Add(1)
	n.log.Debug().Str("peer", p.name).Stringer("reason", req.Reason).Int("groups", len(groups)).Msg("answering")
	for i := range groups {
		if !n.sendAnswerGroup(p, &groups[i]) {
			return
		}
	}
}

// sendAnswerGroup sends one answer group, split into messages of at most
// Caps.MaxEvents events (each carrying the vector, so any part that
// arrives updates the version vector table).
func (n *Node) sendAnswerGroup(p *peer, g *stickydb.Group) bool {
	evs := g.Events
	for first := true; first || len(evs) > 0; first = false {
		part := *g
		if len(evs) > 0 {
			k := min(len(evs), n.cfg.Caps.MaxEvents)
			part.Events, part.From, part.To = evs[:k], evs[0].Seq, evs[k-1].Seq
			evs = evs[k:]
		}
		if !n.sendNow(p, encodeGroup(&part, groupMeta{flags: groupAnswer})) {
			return false
		}
		p.lastSent.Store(time.Now().UnixNano())
		p.c.groupsSent.Add(1)
		p.c.eventsSent.Add(uint64(len(part.Events)))
		n.stats.groupsSent.Add(1)
		n.stats.eventsSent.Add(uint64(len(part.Events)))
	}
	return true
}
