package gossip

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"github.com/tetherproxy/tether/stickydb"
)

// recvQueue bounds the change groups waiting for the receiver goroutine.
const recvQueue = 4096

// recvBehind is the backlog of received groups at which the node counts
// as behind and asks its peers for nothing (stickydb.DB.SetBehind): a
// full batch of the receiver waiting.
const recvBehind = recvBatch

type recvItem struct {
	g    stickydb.Group
	meta groupMeta
}

// deliverGroup (delegate, any goroutine) queues a decoded change group for
// the receiver goroutine, in arrival order; before Start (tests) it is
// applied at once. memberlist hands user messages to the delegate from a
// queue it serves newest first: while its one handler goroutine was busy
// applying groups, a CPU-starved node took an origin's groups out of order,
// buffered the newer ones, discarded them after GapWait and asked for
// them again (thousands of range requests per run at 50 in-process
// nodes). Queued here, the handler only decodes, its queue stays short,
// and the groups are applied in the order they came. A full queue drops
// the group and counts it (Stats.ReceiveDropped); the gap handling
// recovers it.
func (n *Node) deliverGroup(g stickydb.Group, meta groupMeta) {
	if !n.started.Load() || n.recvCh == nil {
		n.onGroup(g, meta)
		return
	}
	select {
	case n.recvCh <- recvItem{g, meta}:
	default:
		n.stats.recvDropped.Add(1)
	}
}

// recvBatch bounds the groups the receiver takes from its queue at once.
const recvBatch = 256

// receiver applies queued change groups until the node stops. It takes
// what is queued at once and applies it in (origin, epoch, first event)
// order: when memberlist's handler falls behind (a CPU-starved node), it
// hands over its backlog newest first, and an origin's groups would come
// reversed; sorted, each fills the way for the next instead of waiting in
// the core's reorder buffer for one queued behind it.
func (n *Node) receiver() {
	defer n.wg.Done()
	batch := make([]recvItem, 0, recvBatch)
	for {
		select {
		case <-n.stop:
			return
		case it := <-n.recvCh:
			batch = append(batch[:0], it)
		}
	more:
		for len(batch) < recvBatch {
			select {
			case it := <-n.recvCh:
				batch = append(batch, it)
			default:
				break more
			}
		}
		sortGroups(batch)
		for i := range batch {
			n.onGroup(batch[i].g, batch[i].meta)
			batch[i] = recvItem{} // the core owns the group now
		}
	}
}

// sortGroups orders queued groups by origin, epoch and first event,
// keeping the arrival order of equal ones.
func sortGroups(b []recvItem) {
	if len(b) < 2 {
		return
	}
	slices.SortStableFunc(b, func(x, y recvItem) int {
		if c := strings.Compare(x.g.Origin, y.g.Origin); c != 0 {
			return c
		}
		if c := cmp.Compare(x.g.Epoch, y.g.Epoch); c != 0 {
			return c
		}
		return cmp.Compare(x.g.From, y.g.From)
	})
}

// onGroup hands a change group to the core.
func (n *Node) onGroup(g stickydb.Group, meta groupMeta) {
	now := n.now()
	p := n.peers.get(g.Sender)
	if p != nil && meta.flags&groupAnswer == 0 && meta.made > 0 {
		n.observeLag(p, now.UnixMilli()-meta.made)
	}
	if p != nil && g.Origin == g.Sender && g.Epoch > 0 && p.epochSeen.Swap(g.Epoch) != g.Epoch {
		// The peer's epoch is new to us (first group, or it restarted):
		// its next heartbeat from us carries our vector again.
		p.vecAt.Store(0)
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
