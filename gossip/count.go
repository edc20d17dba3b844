package gossip

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Counting a replica's live bindings on every node (drain until empty).
//
// Every node holds the fleet's bindings, but not the same expiries: a node
// extends a binding its clients use locally and announces the later expiry
// only once it runs RefreshThreshold ahead (stickydb.Touch). So whether
// "no node holds a live binding to R" takes every node's own view. The
// asking node sends a count query (msgCountQuery: an id and the replica)
// to every live peer; each peer walks its table on a worker (rate-limited
// with the peer's range requests) and answers with its count
// (msgCountAnswer). Queries and answers are small and go best-effort:
// a lost one shows as a peer missing from that round, and the caller
// (a drain wait) asks again next round.

// NodeCount is one node's count of live bindings to a replica.
type NodeCount struct {
	Node string
	Live int
}

// FleetCount is the answer of CountLive.
type FleetCount struct {
	// Nodes: this node first, then every live peer that answered, by name.
	Nodes []NodeCount
	// Missing: live peers that did not answer before the deadline.
	Missing []string
}

// Left is the most live bindings any node that answered holds.
func (f FleetCount) Left() int {
	m := 0
	for _, c := range f.Nodes {
		m = max(m, c.Live)
	}
	return m
}

// Empty: every live node answered and none holds a live binding.
func (f FleetCount) Empty() bool { return len(f.Missing) == 0 && f.Left() == 0 }

// countWait collects the answers to one query.
type countWait struct {
	want map[string]bool // peers asked that have not answered
	got  []NodeCount
	done chan struct{} // closed when want is empty
}

// countTable holds the queries in flight.
type countTable struct {
	mu     sync.Mutex
	nextID uint64
	m      map[uint64]*countWait
}

// maxCountsInFlight bounds the queries one node waits for at once.
const maxCountsInFlight = 64

// CountLive counts the live bindings to replica on this node and asks
// every live peer for its count, waiting for the answers until ctx ends.
// It blocks; it never fails for a peer that does not answer (see
// FleetCount.Missing). ErrClosed after Close; ErrBusy when too many
// counts are in flight.
func (n *Node) CountLive(ctx context.Context, replica string) (FleetCount, error) {
	if n.closing.Load() || !n.started.Load() {
		return FleetCount{}, ErrClosed
	}
	live := n.peers.live()
	w := &countWait{want: map[string]bool{}, done: make(chan struct{})}
	for _, p := range live {
		w.want[p.name] = true
	}
	t := &n.counts
	t.mu.Lock()
	if len(t.m) >= maxCountsInFlight {
		t.mu.Unlock()
		return FleetCount{}, ErrBusy
	}
	if t.m == nil {
		t.m = map[uint64]*countWait{}
	}
	t.nextID++
	id := t.nextID
	t.m[id] = w
	if len(w.want) == 0 {
		close(w.done)
	}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.m, id)
		t.mu.Unlock()
	}()
	msg := encodeCountQuery(countQueryMsg{Sender: n.self, ID: id, Replica: replica})
	for _, p := range live {
		n.send(p, msg)
	}
	own := NodeCount{Node: n.self, Live: countLocal(n.db, replica, n.now())}
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	t.mu.Lock()
	out := FleetCount{Nodes: append([]NodeCount{own}, w.got...)}
	for name := range w.want {
		out.Missing = append(out.Missing, name)
	}
	t.mu.Unlock()
	sort.Slice(out.Nodes[1:], func(i, j int) bool { return out.Nodes[1+i].Node < out.Nodes[1+j].Node })
	sort.Strings(out.Missing)
	return out, nil
}

// countLocal walks the table: live, non-deleted bindings to replica, by
// this node's own expiry.
func countLocal(db *stickydb.DB, replica string, now time.Time) int {
	return db.CountLive(replica, now)
}

// onCountQuery (delegate) answers from a worker: the walk takes tens of ms
// on a large table. It shares the peer's range-request limit.
func (n *Node) onCountQuery(m countQueryMsg) {
	p := n.peers.get(m.Sender)
	if p == nil || !p.live.Load() {
		n.stats.unknownPeer.Add(1)
		return
	}
	if !p.reqLimit.Allow() {
		n.refuse(p, false)
		return
	}
	n.enqueue(func() {
		live := countLocal(n.db, m.Replica, n.now())
		n.send(p, encodeCountAnswer(countAnswerMsg{Sender: n.self, ID: m.ID, Live: uint64(live)}))
	})
}

// onCountAnswer (delegate) records an answer to a query in flight; any
// other (late, unasked, repeated) is ignored.
func (n *Node) onCountAnswer(m countAnswerMsg) {
	t := &n.counts
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.m[m.ID]
	if w == nil || !w.want[m.Sender] {
		return
	}
	delete(w.want, m.Sender)
	w.got = append(w.got, NodeCount{Node: m.Sender, Live: int(min(m.Live, 1<<31))})
	if len(w.want) == 0 {
		close(w.done)
	}
}
