package gossip

import (
	"encoding/binary"
	"hash/fnv"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/tetherproxy/tether/stickydb"
)

// run is the node's loop: pushes own events (at once while a peer's link
// is idle and its budget allows, batched otherwise), ticks the core, sends
// heartbeats and follows membership. It is the only goroutine that moves
// push cursors.
func (n *Node) run() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.PushInterval)
	defer ticker.Stop()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	defer pace.Stop()
	var due time.Time // when pace fires; zero: not armed
	n.syncPeers()

	push := func() {
		wait := n.push()
		if wait <= 0 {
			return
		}
		at := time.Now().Add(wait)
		if !due.IsZero() && !at.Before(due) {
			return // armed for sooner already
		}
		pace.Reset(wait)
		due = at
	}
	for {
		select {
		case <-n.stop:
			return
		case <-n.kickCh:
			push()
		case <-pace.C:
			due = time.Time{}
			push()
		case <-n.memberCh:
			n.syncPeers()
		case <-ticker.C:
			n.tick()
		}
	}
}

// push sends every live peer whose link is free the own events after its
// cursor, persisting them first in durable mode. A peer is free when its
// token bucket (Config.PushBurst groups at once, PushBurst per
// PushInterval when busy) holds a token and no reliable message to it is
// still queued; events for a peer that is not free wait, and leave
// together once it is. push returns how long to wait before trying again
// (a peer's next token, a queue to drain, a failed persister), or 0 when
// nothing is left to send.
func (n *Node) push() time.Duration {
	if p := n.cfg.Persister; p != nil {
		// The persister marks what it wrote (DB.MarkPersisted): the DB then
		// releases exactly that much to OwnEvents.
		if _, err := p.Flush(); err != nil {
			n.stats.persistErrors.Add(1)
			n.logs.persist.Do(func() { n.log.Error().Err(err).Msg("persist before push failed; not sending") })
			return n.cfg.PushInterval
		}
	}
	epoch, last := n.db.Position()
	peers := n.peers.live()
	if epoch != n.cursorEpoch {
		// A new epoch numbers events from 1 again.
		for _, p := range peers {
			p.cursor.Store(0)
		}
		n.cursorEpoch = epoch
	}
	now := time.Now()
	var wait time.Duration
	free := n.pushFree[:0] // peers is shared (peerTable.live): not modified
	for _, p := range peers {
		if p.cursor.Load() >= last {
			continue // nothing new for p
		}
		if d := n.busy(p, now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		free = append(free, p)
	}
	n.pushFree = free[:0]
	if len(free) == 0 {
		return wait
	}
	sort.Slice(free, func(i, j int) bool { return free[i].cursor.Load() < free[j].cursor.Load() })
	withVector := now.Sub(n.lastVector) >= n.vectorEvery(len(peers))
	refresh := now.Add(-vectorRefresh * n.heartbeatEvery(len(peers))).UnixNano()
	made := n.unsent.Swap(0)
	sentAny, sentVector := false, false
	// Peers at the same cursor (the usual case) share one encoding.
	for i := 0; i < len(free); {
		j := i
		for j < len(free) && free[j].cursor.Load() == free[i].cursor.Load() {
			j++
		}
		same := free[i:j]
		cur, sent, more := n.pushFrom(same[0].cursor.Load(), same, withVector, refresh, made)
		for _, p := range same {
			p.cursor.Store(cur)
			if sent {
				n.took(p, now)
			}
		}
		if more || wait > 0 {
			// Events left for later were made no later than that.
			n.unsent.CompareAndSwap(0, made)
		}
		if more && (wait == 0 || n.cfg.PushInterval < wait) {
			wait = n.cfg.PushInterval
		}
		if sent {
			sentAny = true
			sentVector = sentVector || withVector
		}
		i = j
	}
	if sentAny {
		n.lastPush = now
		n.stats.pushes.Add(1)
	}
	if sentVector {
		n.lastVector = now
	}
	return wait
}

// busy returns 0 when p's link is free for a push at now, else how long
// until it may be: its next push token, or (a reliable message still
// queued to it) a poll interval, cut short by the sender's kick once the
// queue drains.
//
// A peer whose budget is spent is next free on the node's round: a tick
// of the grid whose period is one token's refill (every peer refills at
// the same rate, syncPeers), so paced peers are pushed together, once per
// period. Left to their own tokens, the peers' turns can spread over the
// period (each keeps the phase its bucket emptied at), and a new binding
// then reached the last of them after about a whole period where a round
// reaches them all after half of one on average, for the same messages.
// Each node's grid has its own phase (roundPhase, from its name), so that
// the fleet's nodes do not all push at the same instant.
func (n *Node) busy(p *peer, now time.Time) time.Duration {
	if b := p.box.Load(); b != nil && len(b.ch) > 0 {
		return n.cfg.PushInterval
	}
	if d := p.roundAt - now.UnixNano(); d > 0 {
		// Paced: the round, even if a kick (a new event) comes after
		// the token has refilled.
		return time.Duration(d)
	}
	return n.untilRound(p, now)
}

// untilRound is 0 when p's bucket holds a token at now (less roundSlack),
// else how long until the first of the node's rounds by which it will.
func (n *Node) untilRound(p *peer, now time.Time) time.Duration {
	tok := p.pushTokens.TokensAt(now)
	if tok >= 1-roundSlack {
		return 0
	}
	return roundWait(now, 1-roundSlack-tok, p.pushTokens.Limit(), n.roundPhase)
}

// took takes a push token from p for a push at now, and when that spent
// its budget (less than a token left) sets the round at which p is next
// free: a peer paced by its budget is pushed on the node's rounds only,
// not at the first kick after its token refills, which would keep its own
// phase. Taken even if the bucket is a hair short (roundSlack): it then
// owes that much of the next token. Run loop only.
func (n *Node) took(p *peer, now time.Time) {
	p.pushTokens.ReserveN(now, 1)
	p.roundAt = 0
	if d := n.untilRound(p, now); d > 0 {
		p.roundAt = now.Add(d).UnixNano()
	}
}

// roundSlack is the part of a token a peer may lack and still be free:
// the timer fires at the round, but a bucket read there can come out a
// hair short of the token it refilled (floating point), and a refill
// computed to end a hair after the round would skip a whole one. Both
// the wait and the check allow it; the push takes the token anyway
// (ReserveN), so the peer owes the difference.
const roundSlack = 1e-3

// roundWait is how long from now until the first round (phase plus a
// multiple of the token period 1/r, on the unix clock in ns) by which need
// tokens have refilled at r per second. It is at least a microsecond.
func roundWait(now time.Time, need float64, r rate.Limit, phase int64) time.Duration {
	period := int64(float64(time.Second) / float64(r))
	ready := now.UnixNano() + int64(max(need, 0)/float64(r)*float64(time.Second))
	if period <= 0 {
		return max(time.Duration(ready-now.UnixNano()), time.Microsecond)
	}
	phase %= period
	round := (ready-phase+period-1)/period*period + phase
	return max(time.Duration(round-now.UnixNano()), time.Microsecond)
}

// roundPhaseOf is a node's phase of its push rounds (roundWait, which
// takes it modulo the period): from its name, so a fleet's nodes spread
// their rounds.
func roundPhaseOf(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64() >> 1)
}

// pushFrom sends peers the own events after cursor, up to MaxPushEvents,
// in messages of at most Caps.MaxEvents events. It returns the new cursor,
// whether it sent anything, and whether the budget ran out first.
//
// withVector: the vector rides with the events (the vectorEvery cadence)
// when it fits a datagram with them. One that does not (a fleet of more
// than ~30 nodes with real host names) goes in an empty group of its own
// after the events, and only to the peers whose last vector was sent
// before refresh (unix ns: vectorRefresh heartbeat spacings ago, or never):
// a reliable message is a TCP connection of its own, and a peer learns our
// own position from the pushes and heartbeats anyway.
func (n *Node) pushFrom(cursor uint64, peers []*peer, withVector bool, refresh int64, made int64) (uint64, bool, bool) {
	budget := n.cfg.MaxPushEvents
	sent := false
	want := withVector // the vector still to go with this push
	var epoch int64
	for budget > 0 {
		var g stickydb.Group
		if want {
			g = n.db.OwnEvents(cursor, min(budget, n.cfg.Caps.MaxEvents))
		} else {
			g = n.db.OwnEventsBare(cursor, min(budget, n.cfg.Caps.MaxEvents))
		}
		if len(g.Events) == 0 {
			break
		}
		if g.From > cursor+1 {
			// The log no longer holds what follows the cursor: the group
			// starts at what it holds; the peer sees the gap and asks (and
			// is sent a full copy).
			n.stats.cursorSkips.Add(1)
		}
		epoch = g.Epoch
		msg := encodeGroup(&g, groupMeta{made: made})
		if g.Vector != nil && len(msg) > n.cfg.MaxUDPBytes {
			// Events that fit a datagram go as one without the vector: a
			// group sent reliably (a TCP connection of its own) arrives
			// after the datagrams pushed behind it, which then wait as a
			// hole. The vector follows in an empty group of its own, and
			// only at the refresh. Events too many for a
			// datagram go reliably anyway, and take the vector along.
			v := g.Vector
			g.Vector = nil
			if only := encodeGroup(&g, groupMeta{made: made}); len(only) <= n.cfg.MaxUDPBytes {
				msg = only
			} else {
				g.Vector = v
			}
		}
		var vh uint64
		if g.Vector != nil {
			vh = vectorHash(g.Vector)
			want = false
		}
		now := time.Now().UnixNano()
		ok := n.sendAll(peers, msg)
		for i, p := range peers {
			if ok[i] {
				p.lastSent.Store(now)
				p.c.groupsSent.Add(1)
				p.c.eventsSent.Add(uint64(len(g.Events)))
				if g.Vector != nil {
					p.vecHash.Store(vh)
					p.vecAt.Store(now)
				}
			}
		}
		n.stats.groupsSent.Add(uint64(len(peers)))
		n.stats.eventsSent.Add(uint64(len(g.Events) * len(peers)))
		sent = true
		cursor = g.To
		budget -= len(g.Events)
	}
	if sent {
		n.pushVectorAlone(epoch, cursor, peers, refresh)
	}
	return cursor, sent, budget <= 0
}

// pushVectorAlone sends the vector, in an empty group of epoch at cursor
// (after the events just pushed), to the peers whose last vector was sent
// before refresh (unix ns): those this push gave no vector (it did not fit
// a datagram with the events, or it was not its turn) that are due for
// one, or never had one. The vector is read only when one is due.
func (n *Node) pushVectorAlone(epoch int64, cursor uint64, peers []*peer, refresh int64) {
	var msg []byte
	var vh uint64
	for _, p := range peers {
		if p.vecAt.Load() > refresh {
			continue
		}
		if msg == nil {
			v := n.db.Vector()
			msg, vh = n.statedGroup(epoch, cursor, v), vectorHash(v)
		}
		if n.send(p, msg) {
			p.vecHash.Store(vh)
			p.vecAt.Store(time.Now().UnixNano())
		}
	}
}

// statedGroup encodes an empty group of our own whose numbers state that
// our events of epoch were pushed up to cursor (groupStated), with v (or
// nil): a heartbeat, or a vector sent on its own.
func (n *Node) statedGroup(epoch int64, cursor uint64, v stickydb.Vector) []byte {
	g := stickydb.Group{Origin: n.self, Epoch: epoch, From: cursor + 1, To: cursor, Sender: n.self, Vector: v}
	return encodeGroup(&g, groupMeta{flags: groupStated})
}

// tick runs every PushInterval: the core's lifecycle Tick (gap, watchdog and
// start-up copy requests, epoch check, readiness), heartbeats, full-copy
// bookkeeping and sweeping.
func (n *Node) tick() {
	now := n.now()
	// A backlog of received groups: the node is short of CPU, and what a
	// request would ask for may be queued already (stickydb.SetBehind).
	n.db.SetBehind(len(n.recvCh) >= recvBehind)
	if !n.ready.ready.Load() {
		n.life.SeedsMissing(n.missingSeeds())
	}
	rd := n.life.Tick(now)
	n.heartbeats()
	n.copies.expire(now, &n.stats)
	n.applyLife(rd, now)
	n.drainTick(now)
	n.ticketTick()
	if n.cfg.SweepInterval > 0 && time.Since(n.lastSweep) >= n.cfg.SweepInterval {
		n.lastSweep = time.Now()
		n.db.Sweep(now, 1)
	}
}

// vectorEvery is how often pushed groups carry the vector, with peers
// live peers: VectorInterval up to vectorPeers peers, then longer in
// proportion (capped at the heartbeat spacing), so that the vector bytes a
// node sends grow with N, not N² (each vector is ~15 B per origin).
func (n *Node) vectorEvery(peers int) time.Duration {
	d := n.cfg.VectorInterval
	if peers > vectorPeers {
		d = d * time.Duration(peers) / vectorPeers
	}
	return max(n.cfg.VectorInterval, min(d, n.heartbeatEvery(peers)))
}

// vectorPeers: see vectorEvery.
const vectorPeers = 10

// heartbeatEvery is the heartbeat spacing with peers live peers:
// HeartbeatInterval up to heartbeatPeers peers, then longer in proportion,
// so that an idle node sends at most heartbeatPeers heartbeats per
// HeartbeatInterval (50 a second by default) whatever the fleet's size,
// never rarer than a quarter of the core's Watchdog (three heartbeats in a
// row may be lost before the watchdog asks). At 100 nodes a heartbeat to
// every peer twice a second was ~20,000 messages a second fleet-wide for
// nothing new: a 100-node fleet in one process spent its two cores idle.
func (n *Node) heartbeatEvery(peers int) time.Duration {
	d := n.cfg.HeartbeatInterval
	if peers > heartbeatPeers {
		d = d * time.Duration(peers) / heartbeatPeers
	}
	return max(n.cfg.HeartbeatInterval, min(d, n.watchdog/4))
}

// heartbeatPeers: see heartbeatEvery.
const heartbeatPeers = 25

// vectorRefresh: a heartbeat carries the vector at least this often (in
// heartbeat intervals) even when it did not change, in case the last one
// was lost.
const vectorRefresh = 10

// heartbeats sends an empty group to every peer that was sent nothing for
// the heartbeat spacing (heartbeatEvery), so that its watchdog stays quiet
// and it notices a lost tail: the group's numbers say how far our own
// events were pushed to it (the core takes that as the origin's claim).
// The group carries our vector when it changed since the last one sent to
// that peer, or every vectorRefresh heartbeat intervals: an idle fleet's
// heartbeats were the whole vector (~15 B per origin) to every peer twice
// a second, N² bytes per node for nothing new. A changed vector too large
// for UDP waits for the refresh.
func (n *Node) heartbeats() {
	nowT := time.Now()
	live := n.peers.live()
	every := n.heartbeatEvery(len(live))
	limit := nowT.Add(-every).UnixNano()
	refresh := nowT.Add(-vectorRefresh * every).UnixNano()
	var (
		v     stickydb.Vector
		vh    uint64
		epoch int64
		enc   [2]struct { // without, with the vector
			cursor uint64
			msg    []byte
		}
	)
	encode := func(c uint64, withVector bool) []byte {
		e, gv := &enc[0], stickydb.Vector(nil)
		if withVector {
			e, gv = &enc[1], v
		}
		if e.msg == nil || e.cursor != c {
			e.cursor, e.msg = c, n.statedGroup(epoch, c, gv)
		}
		return e.msg
	}
	for _, p := range live {
		if p.lastSent.Load() > limit {
			continue
		}
		if v == nil {
			v = n.db.Vector()
			vh = vectorHash(v)
			epoch, _ = n.db.Position()
		}
		c := p.cursor.Load()
		if epoch != n.cursorEpoch {
			c = 0 // a new epoch the push has not seen yet: nothing of it sent
		}
		withVector := p.needsVector(vh, refresh)
		msg := encode(c, withVector)
		if withVector && p.vecAt.Load() > refresh && len(msg) > n.cfg.MaxUDPBytes {
			// Changed, but too large for UDP: it waits for the refresh.
			withVector = false
			msg = encode(c, false)
		}
		if n.send(p, msg) {
			now := time.Now().UnixNano()
			p.lastSent.Store(now)
			if withVector {
				p.vecHash.Store(vh)
				p.vecAt.Store(now)
			}
			n.stats.heartbeats.Add(1)
		}
	}
}

// needsVector reports whether a heartbeat to p must carry the vector of
// hash vh: it changed since the last one sent to p, or that was sent
// before refresh (unix ns), or p showed a new epoch since.
func (p *peer) needsVector(vh uint64, refresh int64) bool {
	return p.vecAt.Load() <= refresh || p.vecHash.Load() != vh
}

// vectorHash is a 64-bit FNV-1a hash of a vector's pairs in origin
// order: equal vectors hash alike, so a heartbeat can tell whether the
// vector changed since the last one sent to a peer.
func vectorHash(v stickydb.Vector) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, o := range v.Origins() {
		h.Write([]byte(o))
		h.Write([]byte{0})
		for _, p := range v[o] {
			binary.LittleEndian.PutUint64(b[:], uint64(p.Epoch))
			h.Write(b[:])
			binary.LittleEndian.PutUint64(b[:], p.Seq)
			h.Write(b[:])
		}
	}
	return h.Sum64()
}
