package gossip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tetherproxy/tether/stickydb"
)

// readiness mirrors the core's Lifecycle for /readyz and the stats: the
// decisions (epoch check, start-up copy, catch-up, readiness) are the
// core's (stickydb/lifecycle.go); the run loop applies each Tick's Ready.
type readiness struct {
	joined   atomic.Bool
	joinedAt atomic.Int64 // unix ns
	ready    atomic.Bool
	readyAt  atomic.Int64 // unix ns
	done     chan struct{}
	once     sync.Once
}

func (r *readiness) catchUp() time.Duration {
	a, b := r.joinedAt.Load(), r.readyAt.Load()
	if a == 0 || b == 0 {
		return 0
	}
	return time.Duration(b - a)
}

// lifeConfig is the core lifecycle's part of the configuration.
func (c Config) lifeConfig() stickydb.LifeConfig {
	return stickydb.LifeConfig{
		InitialCopy:    c.InitialCopy,
		CopyWait:       initialCopyWait,
		CopyTimeout:    c.CopyTimeout,
		CatchUpTimeout: c.CatchUpTimeout,
		Provisional:    c.Provisional,
		Reconcile:      c.Reconcile != nil,
	}
}

// initialCopyWait is how long a peer asked for the start-up copy may take to
// send its first chunk before the next peer is asked: a peer over its
// full-copy rate limit (a node restarted many times in a row) says nothing.
const initialCopyWait = 2 * time.Second

// applyLife (run loop) applies one Tick of the core's lifecycle: a new
// epoch first, then the requests, then readiness.
func (n *Node) applyLife(rd stickydb.Ready, now time.Time) {
	if rd.NewEpoch > 0 {
		n.startEpoch(rd.NewEpoch, rd.PeersEpoch)
	}
	for _, req := range rd.Requests {
		if req.Reason == stickydb.ReasonInitial {
			n.log.Info().Str("peer", req.To).Msg("asking for a full copy (start-up)")
		}
		n.sendRequest(req, now)
	}
	if rd.CopyGivenUp {
		n.log.Warn().Msg("no peer sent a start-up copy; catching up from the change logs")
	}
	if rd.Reconcile && !n.reconciling.Swap(true) {
		n.wg.Add(1)
		go n.reconcile()
	}
	if !rd.Ready && rd.Why == stickydb.WhyCatchingUp {
		n.logBehind(now)
	}
	if rd.Became {
		if rd.Why == stickydb.WhyTimeout {
			n.stats.catchUpTimeout.Add(1)
			n.log.Warn().Dur("timeout_ms", n.cfg.CatchUpTimeout).Msg("not caught up with the peers; ready anyway")
		}
		n.markReady(rd.Why, now)
	}
}

// Catching up normally takes a few seconds: past behindAfter since joining
// the run loop logs (at debug level, every behindEvery) what the node still
// lacks of its target and what its gap handling is doing about it.
const (
	behindAfter = 10 * time.Second
	behindEvery = 2 * time.Second
)

// logBehind (run loop) logs the lifecycle's Behind while the node catches
// up for long.
func (n *Node) logBehind(now time.Time) {
	if n.log.GetLevel() > zerolog.DebugLevel || now.Sub(n.behindLogged) < behindEvery {
		return
	}
	joined := n.ready.joinedAt.Load()
	if joined == 0 || now.Sub(time.Unix(0, joined)) < behindAfter {
		return
	}
	b, ok := n.life.Behind()
	if !ok {
		return
	}
	n.behindLogged = now
	ev := n.log.Debug().Dur("since_join_ms", now.Sub(time.Unix(0, joined))).
		Str("origin", b.Origin).Int64("epoch", b.Epoch).Uint64("target", b.Target).Uint64("have", b.Have).
		Uint64("claim", b.Claim).Str("claimant", b.Claimant)
	if b.Departed {
		ev = ev.Bool("departed", true).Int64("floor_epoch", b.Floor.Epoch).Uint64("floor_seq", b.Floor.Seq)
	}
	if b.Gap {
		ev = ev.Str("gap_stage", b.GapStage).Str("gap_asked", b.GapAsked).Uint64("gap_want", b.GapWant).
			Int64("gap_open_ms", now.UnixMilli()-b.GapSince)
		if b.GapAskedAt > 0 {
			ev = ev.Int64("gap_asked_ms_ago", now.UnixMilli()-b.GapAskedAt)
		}
	}
	ev.Msg("catching up: the vector does not cover this pair of the target")
}

// reconcile runs Config.Reconcile once (Ready.Reconcile): disk work, off
// the run loop.
func (n *Node) reconcile() {
	defer n.wg.Done()
	if err := n.cfg.Reconcile(); err != nil {
		n.log.Error().Err(err).Msg("reconcile after recovery; the node stays not ready")
		return
	}
	n.life.Reconciled()
	n.wake()
}

// startEpoch starts the epoch the lifecycle asks for: with a disk it is
// written first (Config.NewEpoch). On failure the next tick asks again.
func (n *Node) startEpoch(epoch, peers int64) {
	newEpoch := n.cfg.NewEpoch
	if newEpoch == nil {
		newEpoch = n.db.NewEpoch
	}
	if err := newEpoch(epoch); err != nil {
		n.log.Error().Err(err).Int64("epoch", epoch).Msg("could not start an epoch after the peers' one")
		return
	}
	n.log.Warn().Int64("peers_epoch", peers).Int64("epoch", epoch).Msg("a peer knows a later epoch of ours (clock behind?); started a later one")
}

// Behind is what the node lacks of its catch-up target while the lifecycle
// says WhyCatchingUp (stickydb.Lifecycle.Behind).
func (n *Node) Behind() (stickydb.Behind, bool) { return n.life.Behind() }

// ReadyWhy is the lifecycle's last word on readiness: what the node waits
// for, or how it became ready (stickydb.Why*; Stats.ReadyWhy).
func (n *Node) ReadyWhy() string {
	_, why := n.life.Status()
	return why
}

func (n *Node) markReady(why string, now time.Time) {
	r := &n.ready
	r.readyAt.Store(now.UnixNano())
	r.ready.Store(true)
	r.once.Do(func() { close(r.done) })
	n.log.Info().Str("why", why).Dur("catch_up_ms", r.catchUp()).Msg("ready")
}
