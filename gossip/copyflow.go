package gossip

import (
	"sync"
	"time"
)

// Full copies over slow links (issue 14, measured on a 10 Mbit/s link
// between network namespaces). A copy of a million bindings needs ~20 MB on
// the wire, some 17 s at 10 Mbit/s, and the first version of the copy path
// assumed a LAN:
//
//   - the sender streamed on a worker: two copies to one slow joiner held
//     both workers for the whole copy, so nobody's range requests were
//     answered meanwhile (live replication to every peer starved);
//   - the joiner's core escalates a gap to a full copy every
//     FullCopyTimeout (3 s) while the first copy is still arriving, so it
//     asked every peer in turn and 2-3 copies shared the link, each slower;
//   - a copy had to be complete CopyTimeout (30 s) after it was asked for:
//     a copy that took longer, still arriving at full speed, was voided and
//     asked again, for ever.
//
// Now a copy streams on a goroutine of its own, one per peer at a time and
// at most maxCopiesOut at once; the joiner asks for no second copy while
// one arrives; CopyTimeout counts from the last chunk, not from the ask.

// maxCopiesOut bounds the full copies one node streams at once (each holds
// a snapshot walk and a TCP stream); more requests are refused and counted,
// and their askers ask again.
const maxCopiesOut = 4

// copyOut tracks the copies this node is streaming.
type copyOut struct {
	mu   sync.Mutex
	busy map[string]bool // peer -> a copy to it is streaming
}

// startCopy streams p a full copy off the worker pool, unless one to p is
// already streaming (it answers this request too) or maxCopiesOut are.
func (n *Node) startCopy(p *peer, now time.Time) {
	o := &n.copyOut
	o.mu.Lock()
	if o.busy == nil {
		o.busy = map[string]bool{}
	}
	if o.busy[p.name] {
		o.mu.Unlock()
		n.stats.fullCopiesJoined.Add(1)
		return
	}
	if len(o.busy) >= maxCopiesOut || n.closing.Load() {
		o.mu.Unlock()
		n.refuse(p, true)
		return
	}
	o.busy[p.name] = true
	n.wg.Add(1)
	o.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer func() {
			o.mu.Lock()
			delete(o.busy, p.name)
			o.mu.Unlock()
		}()
		n.streamCopy(p, now)
	}()
}

// copyArriving reports whether a full copy is being received: its chunks
// came within CopyTimeout and it is not complete.
func (t *copyTable) arriving() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m) > 0
}

// progress notes a chunk of a copy from peer: the copy and the peer's
// welcome last CopyTimeout from now, so a long copy on a slow link that
// keeps arriving is not voided half way.
func (t *copyTable) progress(peer string, k copyKey, now time.Time, cfg Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	until := now.Add(cfg.CopyTimeout)
	if t.expect[peer].Before(until) {
		if _, ok := t.expect[peer]; ok {
			t.expect[peer] = until
		}
	}
	if c := t.m[k]; c != nil && c.deadline.Before(until) {
		c.deadline = until
	}
}
