package gossip

import (
	"sort"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// boot is the start-up work of the run loop after joining: the epoch check
// and the initial full copy. Readiness waits for the copy (or for
// CatchUpTimeout): the peers' vectors need not count every binding a copy
// brings (bindings restored from a snapshot, merged from other copies).
type boot struct {
	copyDone bool
	askedAt  time.Time
	asked    int    // peers asked so far, to ask the next one
	chunksAt uint64 // chunks received when we last asked
}

// initialCopyWait is how long a peer asked for the start-up copy may take to
// send its first chunk before the next peer is asked: a peer over its
// full-copy rate limit (a node restarted many times in a row) says nothing.
const initialCopyWait = 2 * time.Second

// startup (run loop) runs the start-up steps that need peers: a new epoch if
// a peer knows one of ours after the current one (checked on every pass:
// the peer that knows it may answer late), then the initial copy
// (Config.InitialCopy).
func (n *Node) startup(now time.Time) {
	b := &n.boot
	if !n.ready.joined.Load() {
		return
	}
	n.checkEpoch(now)
	if b.copyDone {
		return
	}
	if !n.cfg.InitialCopy || n.stats.fullCopiesReceived.Load() > 0 {
		b.copyDone = true
		return
	}
	if !b.askedAt.IsZero() {
		wait := initialCopyWait
		if n.stats.chunksReceived.Load() != b.chunksAt {
			wait = n.cfg.CopyTimeout // a copy is arriving: let it finish
		}
		if now.Sub(b.askedAt) < wait {
			return
		}
	}
	live := n.peers.live()
	if len(live) == 0 {
		return
	}
	if b.asked >= len(live) {
		// Every live peer was asked once: catch up event by event through
		// the gap handling instead (readiness still waits for the peers'
		// vectors to be covered).
		b.copyDone = true
		n.log.Warn().Int("asked", b.asked).Msg("no peer sent a start-up copy; catching up from the change logs")
		return
	}
	sort.Slice(live, func(i, j int) bool { return live[i].name < live[j].name })
	// Start at a peer that depends on the time, so that nodes restarting
	// together, or one node restarting often, spread their copies.
	p := live[(int(now.UnixNano()/int64(time.Millisecond))+b.asked)%len(live)]
	b.asked++
	b.askedAt = now
	b.chunksAt = n.stats.chunksReceived.Load()
	n.log.Info().Str("peer", p.name).Msg("asking for a full copy (start-up)")
	n.sendRequest(stickydb.Request{To: p.name, Full: true, Reason: stickydb.ReasonInitial}, now)
}

// checkEpoch starts an epoch after the latest one of ours a peer knows, if
// that is later than the current one (a clock behind, or stepped back at a
// restart): peers would take our events for ones of an epoch that is over.
// Without a disk the core has done so by itself; with one the epoch is
// written first (Config.NewEpoch).
func (n *Node) checkEpoch(now time.Time) {
	hi := n.db.EpochAhead()
	if hi == 0 {
		return
	}
	e := max(now.UnixMilli(), hi+1)
	newEpoch := n.cfg.NewEpoch
	if newEpoch == nil {
		newEpoch = n.db.NewEpoch
	}
	if err := newEpoch(e); err != nil {
		n.log.Error().Err(err).Int64("epoch", e).Msg("could not start an epoch after the peers' one")
		return
	}
	n.log.Warn().Int64("peers_epoch", hi).Int64("epoch", e).Msg("a peer knows a later epoch of ours (clock behind?); started a later one")
}
