package gossip

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Stats is a snapshot of the node's counters, all monotonic since Start
// (Prometheus counters), except the gauges marked so.
type Stats struct {
	Joined, Ready bool          // gauges
	CatchUp       time.Duration // gauge: from joining to ready; 0 while not ready
	ReadyWhy      string        // gauge: how the node became ready, or what it waits for (stickydb.Why*)
	Members       int           // gauge: live peers

	Pushes         uint64 // push rounds that sent something
	GroupsSent     uint64 // change-group messages sent (per peer), heartbeats excluded
	EventsSent     uint64 // events sent (per peer)
	Heartbeats     uint64
	GroupsReceived uint64
	EventsApplied  uint64 // events the core applied
	EventsRejected uint64 // events the core dropped: expired on arrival, or over one of its caps
	MessagesUDP    uint64 // messages sent best-effort
	MessagesTCP    uint64 // messages sent reliably
	BytesSent      uint64 // tether message bytes (memberlist adds ~50 per message)
	SendErrors     uint64
	OutboxDropped  uint64 // reliable messages dropped: the peer's queue was full
	WorkDropped    uint64 // incoming work dropped: the worker queue was full
	ReceiveDropped uint64 // change groups dropped: the receiver's queue was full
	CursorSkips    uint64 // pushes that skipped a truncated part of the own log
	LogSuppressed  uint64 // memberlist log lines left out by the rate limit (logging.go)

	RequestsSent       uint64
	RequestsAnswered   uint64 // range requests answered with groups
	RequestsRefused    uint64 // over a peer's rate limit
	FullCopiesSent     uint64
	FullCopiesJoined   uint64 // full-copy asks answered by a copy already streaming to that peer
	FullCopiesFailed   uint64
	FullCopiesReceived uint64 // merged completely
	ChunksReceived     uint64
	CopiesIncomplete   uint64 // incoming copies that timed out
	Unsolicited        uint64 // copy messages from a peer we did not ask

	DecodeErrors   uint64 // messages that did not decode (wrong version and type included)
	CapBreaches    uint64 // messages over one of our caps
	CoreRejects    uint64 // groups or records the core refused (its caps and checks)
	UnknownPeer    uint64 // messages to or from a peer not in the membership
	StatesMerged   uint64 // push/pull vectors taken in
	PersistErrors  uint64
	JoinRetries    uint64
	Reconnects     uint64 // failed members contacted again (reconnect.go)
	CatchUpTimeout uint64 // became ready by CatchUpTimeout, not by catching up

	Peers   []PeerStats
	Senders []SenderStats // error counts by claimed sender, peers or not
}

// PeerStats are one peer's counters.
type PeerStats struct {
	Name             string
	Live             bool
	Cursor           uint64 // last own event pushed to it (gauge)
	GroupsSent       uint64
	EventsSent       uint64
	MessagesSent     uint64
	BytesSent        uint64
	SendErrors       uint64
	OutboxDropped    uint64
	GroupsReceived   uint64
	EventsApplied    uint64
	RequestsSent     uint64
	RequestsReceived uint64
	RequestsRefused  uint64
	FullCopiesSent   uint64
	// LagLastMs/LagMaxMs: replication lag of pushed groups from this peer:
	// from the first write after its previous push to the arrival here
	// (its clock vs ours), ms.
	LagLastMs int64
	LagMaxMs  int64
}

// SenderStats counts errors by the sender a message claimed.
type SenderStats struct {
	Name         string // "" when the message did not even name one
	DecodeErrors uint64
	CapBreaches  uint64 // our caps and the core's
	Unsolicited  uint64
}

type counters struct {
	pushes, groupsSent, eventsSent, heartbeats, groupsReceived, eventsApplied, eventsRejected atomic.Uint64
	msgsUDP, msgsTCP, bytesSent, sendErrors, outboxDropped, workDropped                       atomic.Uint64
	cursorSkips, recvDropped                                                                  atomic.Uint64
	requestsSent, requestsAnswered, requestsRefused                                           atomic.Uint64
	fullCopiesSent, fullCopiesJoined, fullCopiesFailed, fullCopiesReceived, chunksReceived    atomic.Uint64
	copiesIncomplete, unsolicited                                                             atomic.Uint64
	decodeErrors, capBreaches, coreRejects, unknownPeer, statesMerged                         atomic.Uint64
	persistErrors, joinRetries, catchUpTimeout, reconnects                                    atomic.Uint64
}

type peerCounters struct {
	groupsSent, eventsSent, msgsSent, bytesSent, sendErrors, outboxDropped atomic.Uint64
	groupsReceived, eventsApplied                                          atomic.Uint64
	requestsSent, requestsReceived, requestsRefused, fullCopiesSent        atomic.Uint64
	lagLast, lagMax                                                        atomic.Int64
}

// Stats returns a snapshot of the counters.
func (n *Node) Stats() Stats {
	c := &n.stats
	s := Stats{
		Joined: n.Joined(), Ready: n.Ready(), CatchUp: n.ready.catchUp(), ReadyWhy: n.ReadyWhy(),
		Pushes: c.pushes.Load(), GroupsSent: c.groupsSent.Load(), EventsSent: c.eventsSent.Load(),
		Heartbeats: c.heartbeats.Load(), GroupsReceived: c.groupsReceived.Load(), EventsApplied: c.eventsApplied.Load(), EventsRejected: c.eventsRejected.Load(),
		MessagesUDP: c.msgsUDP.Load(), MessagesTCP: c.msgsTCP.Load(), BytesSent: c.bytesSent.Load(),
		SendErrors: c.sendErrors.Load(), OutboxDropped: c.outboxDropped.Load(), WorkDropped: c.workDropped.Load(), ReceiveDropped: c.recvDropped.Load(),
		CursorSkips: c.cursorSkips.Load(), LogSuppressed: n.logs.ml.Suppressed(),
		RequestsSent: c.requestsSent.Load(), RequestsAnswered: c.requestsAnswered.Load(), RequestsRefused: c.requestsRefused.Load(),
		FullCopiesSent: c.fullCopiesSent.Load(), FullCopiesJoined: c.fullCopiesJoined.Load(), FullCopiesFailed: c.fullCopiesFailed.Load(),
		FullCopiesReceived: c.fullCopiesReceived.Load(), ChunksReceived: c.chunksReceived.Load(),
		CopiesIncomplete: c.copiesIncomplete.Load(), Unsolicited: c.unsolicited.Load(),
		DecodeErrors: c.decodeErrors.Load(), CapBreaches: c.capBreaches.Load(), CoreRejects: c.coreRejects.Load(),
		UnknownPeer: c.unknownPeer.Load(), StatesMerged: c.statesMerged.Load(),
		PersistErrors: c.persistErrors.Load(), JoinRetries: c.joinRetries.Load(), CatchUpTimeout: c.catchUpTimeout.Load(),
		Reconnects: c.reconnects.Load(),
	}
	for _, p := range n.peers.all() {
		pc := &p.c
		live := p.live.Load()
		if live {
			s.Members++
		}
		s.Peers = append(s.Peers, PeerStats{
			Name: p.name, Live: live, Cursor: p.cursor.Load(),
			GroupsSent: pc.groupsSent.Load(), EventsSent: pc.eventsSent.Load(), MessagesSent: pc.msgsSent.Load(),
			BytesSent: pc.bytesSent.Load(), SendErrors: pc.sendErrors.Load(), OutboxDropped: pc.outboxDropped.Load(),
			GroupsReceived: pc.groupsReceived.Load(), EventsApplied: pc.eventsApplied.Load(),
			RequestsSent: pc.requestsSent.Load(), RequestsReceived: pc.requestsReceived.Load(),
			RequestsRefused: pc.requestsRefused.Load(), FullCopiesSent: pc.fullCopiesSent.Load(),
			LagLastMs: pc.lagLast.Load(), LagMaxMs: pc.lagMax.Load(),
		})
	}
	s.Senders = n.senders.snapshot()
	return s
}

// senderTable counts errors by claimed sender. It is bounded: past
// maxSenders names, new ones are counted under "" (unknown).
type senderTable struct {
	mu sync.Mutex
	m  map[string]*SenderStats
}

const maxSenders = 1024

func (t *senderTable) init() { t.m = map[string]*SenderStats{} }

func (t *senderTable) add(sender string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[sender]
	if s == nil {
		if len(t.m) >= maxSenders {
			sender = ""
			s = t.m[sender]
		}
		if s == nil {
			s = &SenderStats{Name: sender}
			t.m[sender] = s
		}
	}
	switch {
	case errors.Is(err, errUnsolicited):
		s.Unsolicited++
	case isCapBreach(err):
		s.CapBreaches++
	default:
		s.DecodeErrors++
	}
}

// isCapBreach: our caps and every refusal of the core (its caps and its
// format checks of what decoded fine).
func isCapBreach(err error) bool {
	return errors.Is(err, ErrOverCap) || errors.Is(err, stickydb.ErrMalformed) ||
		errors.Is(err, stickydb.ErrTooManyEvents) || errors.Is(err, stickydb.ErrSeqJump) ||
		errors.Is(err, stickydb.ErrFutureEpoch) || errors.Is(err, stickydb.ErrOriginFull) ||
		errors.Is(err, stickydb.ErrExpiryOverCap) || errors.Is(err, stickydb.ErrTooManyNames) ||
		errors.Is(err, stickydb.ErrInvalidBinding) || errors.Is(err, stickydb.ErrInvalidKey)
}

func (t *senderTable) snapshot() []SenderStats {
	t.mu.Lock()
	out := make([]SenderStats, 0, len(t.m))
	for _, s := range t.m {
		out = append(out, *s)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
