package gossip

import (
	"sort"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// run is the node's loop: pushes own events (at once after a quiet spell,
// then at most once per PushInterval), ticks the core, sends heartbeats and
// follows membership. It is the only goroutine that moves push cursors.
func (n *Node) run() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.PushInterval)
	defer ticker.Stop()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	defer pace.Stop()
	var paced bool // a push is scheduled on pace
	n.syncPeers()

	schedule := func() {
		if paced {
			return
		}
		wait := n.cfg.PushInterval - time.Since(n.lastPush)
		if wait <= 0 {
			if n.push() {
				n.schedule(pace, &paced)
			}
			return
		}
		pace.Reset(wait)
		paced = true
	}
	for {
		select {
		case <-n.stop:
			return
		case <-n.kickCh:
			schedule()
		case <-pace.C:
			paced = false
			if n.push() {
				n.schedule(pace, &paced)
			}
		case <-n.memberCh:
			n.syncPeers()
		case <-ticker.C:
			n.tick()
		}
	}
}

// schedule arms the pacing timer for the next push after a busy one.
func (n *Node) schedule(pace *time.Timer, paced *bool) {
	if *paced {
		return
	}
	pace.Reset(n.cfg.PushInterval)
	*paced = true
}

// push sends every live peer the own events after its cursor, persisting
// them first in durable mode. It returns true when the loop should push
// again after PushInterval: something was sent (more may follow), or the
// persister failed (retry).
func (n *Node) push() bool {
	if p := n.cfg.Persister; p != nil {
		// The persister marks what it wrote (DB.MarkPersisted): the DB then
		// releases exactly that much to OwnEvents.
		if _, err := p.Flush(); err != nil {
			n.stats.persistErrors.Add(1)
			n.logs.persist.Do(func() { n.log.Error().Err(err).Msg("persist before push failed; not sending") })
			return true
		}
	}
	epoch, _ := n.db.Position()
	peers := n.peers.live()
	if epoch != n.cursorEpoch {
		// A new epoch numbers events from 1 again.
		for _, p := range peers {
			p.cursor.Store(0)
		}
		n.cursorEpoch = epoch
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].cursor.Load() < peers[j].cursor.Load() })
	withVector := time.Since(n.lastVector) >= n.cfg.VectorInterval
	made := n.unsent.Swap(0)
	sentAny, sentVector := false, false
	// Peers at the same cursor (the usual case) share one encoding.
	for i := 0; i < len(peers); {
		j := i
		for j < len(peers) && peers[j].cursor.Load() == peers[i].cursor.Load() {
			j++
		}
		same := peers[i:j]
		cur, sent, more := n.pushFrom(same[0].cursor.Load(), same, withVector, made)
		if more {
			// Events left for the next push were made no later than that.
			n.unsent.CompareAndSwap(0, made)
		}
		for _, p := range same {
			p.cursor.Store(cur)
		}
		if sent {
			sentAny = true
			sentVector = sentVector || withVector
		}
		i = j
	}
	if sentAny {
		n.lastPush = time.Now()
		n.stats.pushes.Add(1)
	}
	if sentVector {
		n.lastVector = time.Now()
	}
	return sentAny
}

// pushFrom sends peers the own events after cursor, up to MaxPushEvents,
// in messages of at most Caps.MaxEvents events. It returns the new cursor,
// whether it sent anything, and whether the budget ran out first.
func (n *Node) pushFrom(cursor uint64, peers []*peer, withVector bool, made int64) (uint64, bool, bool) {
	budget := n.cfg.MaxPushEvents
	sent := false
	for budget > 0 {
		g := n.db.OwnEvents(cursor, min(budget, n.cfg.Caps.MaxEvents))
		if len(g.Events) == 0 {
			break
		}
		if g.From > cursor+1 {
			// The log no longer holds what follows the cursor: the group
			// starts at what it holds; the peer sees the gap and asks (and
			// is sent a full copy).
			n.stats.cursorSkips.Add(1)
		}
		if !withVector {
			g.Vector = nil
		}
		msg := encodeGroup(&g, groupMeta{made: made})
		now := time.Now().UnixNano()
		for _, p := range peers {
			if n.send(p, msg) {
				p.lastSent.Store(now)
				p.c.groupsSent.Add(1)
				p.c.eventsSent.Add(uint64(len(g.Events)))
			}
		}
		n.stats.groupsSent.Add(uint64(len(peers)))
		n.stats.eventsSent.Add(uint64(len(g.Events) * len(peers)))
		sent = true
		cursor = g.To
		budget -= len(g.Events)
	}
	return cursor, sent, budget <= 0
}

// tick runs every PushInterval: the core's Tick (gap and watchdog requests),
// heartbeats, full-copy bookkeeping, readiness and sweeping.
func (n *Node) tick() {
	now := n.now()
	for _, req := range n.db.Tick(now) {
		n.sendRequest(req, now)
	}
	n.heartbeats()
	n.copies.expire(now, &n.stats)
	n.startup(now)
	n.checkReady(now)
	n.drainTick()
	if n.cfg.SweepInterval > 0 && time.Since(n.lastSweep) >= n.cfg.SweepInterval {
		n.lastSweep = time.Now()
		n.db.Sweep(now, 1)
	}
}

// heartbeats sends an empty group with our vector to every peer that was
// sent nothing for HeartbeatInterval, so it notices a lost tail and its
// watchdog stays quiet.
func (n *Node) heartbeats() {
	limit := time.Now().Add(-n.cfg.HeartbeatInterval).UnixNano()
	var msg []byte
	for _, p := range n.peers.live() {
		if p.lastSent.Load() > limit {
			continue
		}
		if msg == nil {
			epoch, _ := n.db.Position()
			c := p.cursor.Load()
			g := stickydb.Group{Origin: n.self, Epoch: epoch, From: c + 1, To: c, Sender: n.self, Vector: n.db.Vector()}
			msg = encodeGroup(&g, groupMeta{})
		}
		if n.send(p, msg) {
			p.lastSent.Store(time.Now().UnixNano())
			n.stats.heartbeats.Add(1)
		}
	}
}
