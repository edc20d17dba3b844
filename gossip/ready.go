package gossip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// readiness tracks joining and the initial catch-up, for /readyz.
type readiness struct {
	joined   atomic.Bool
	joinedAt atomic.Int64 // unix ns
	ready    atomic.Bool
	readyAt  atomic.Int64 // unix ns
	done     chan struct{}
	once     sync.Once

	// run loop only: what the live peers knew when we first saw each of
	// them (the newest pair of every origin but us), and which peers that
	// counts.
	target stickydb.Vector
	seen   map[string]bool
}

func (r *readiness) catchUp() time.Duration {
	a, b := r.joinedAt.Load(), r.readyAt.Load()
	if a == 0 || b == 0 {
		return 0
	}
	return time.Duration(b - a)
}

// checkReady (run loop) turns Ready on once the node has joined and its
// vector covers what each live peer's vector showed when the node first saw
// it (so a new node serves with the fleet's bindings, not an empty table):
// the newest epoch of every other origin, and every older epoch of our own (a
// node restarted without a disk gets its old bindings back). Every live
// peer's vector counts, including one that shows up while the node is still
// catching up: when a whole fleet restarts, the first peer heard from knows
// only its own bindings, and the others' arrive from the others. Or once
// CatchUpTimeout has passed since joining.
func (n *Node) checkReady(now time.Time) {
	r := &n.ready
	if r.ready.Load() || !r.joined.Load() {
		return
	}
	if r.seen == nil {
		r.seen, r.target = map[string]bool{}, stickydb.Vector{}
	}
	live, unknown := 0, 0
	current, _ := n.db.Position()
	for _, row := range n.db.Table() {
		if !row.Live {
			continue
		}
		live++
		if row.Vector == nil {
			unknown++
			continue
		}
		if r.seen[row.Name] {
			continue
		}
		r.seen[row.Name] = true
		for o, ps := range row.Vector {
			if o != n.self {
				if es, ok := row.Vector.Latest(o); ok {
					r.target.Advance(o, es.Epoch, es.Seq)
				}
				continue
			}
			// Our own older epochs (a restart without a disk): their
			// bindings are still live on the peers, and clients will come
			// back to us for them.
			for _, p := range ps {
				if p.Epoch < current {
					r.target.Advance(o, p.Epoch, p.Seq)
				}
			}
		}
	}
	switch {
	case live == 0 && len(r.seen) == 0 && (len(n.seeds()) == 0 || n.seedsSelf.Load()):
		n.markReady("alone")
		return
	case n.cfg.InitialCopy && !n.boot.copyDone:
		n.readyTimeout()
		return
	case len(r.seen) == 0 || unknown > 0:
		// Wait for every live peer's vector (heartbeats carry it).
		n.readyTimeout()
		return
	}
	v := n.db.Vector()
	for o, ps := range r.target {
		for _, p := range ps {
			if !v.Covers(o, p.Epoch, p.Seq) {
				n.readyTimeout()
				return
			}
		}
	}
	n.markReady("caught up")
}

func (n *Node) readyTimeout() {
	joined := time.Unix(0, n.ready.joinedAt.Load())
	if time.Since(joined) < n.cfg.CatchUpTimeout {
		return
	}
	n.stats.catchUpTimeout.Add(1)
	n.log.Warn().Dur("timeout_ms", n.cfg.CatchUpTimeout).Msg("not caught up with the peers; ready anyway")
	n.markReady("timeout")
}

func (n *Node) markReady(why string) {
	r := &n.ready
	r.readyAt.Store(time.Now().UnixNano())
	r.ready.Store(true)
	r.once.Do(func() { close(r.done) })
	n.log.Info().Str("why", why).Dur("catch_up_ms", r.catchUp()).Msg("ready")
}
