package gossip

import (
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// createMemberlist builds memberlist's configuration for a LAN or loopback
// fleet and starts it.
func (n *Node) createMemberlist() (*memberlist.Memberlist, error) {
	c := n.cfg
	base := zerolog.Nop()
	if c.Logger != nil {
		base = *c.Logger // not n.log: one "component" key per line
	}
	mlog := log.New(mlWriter{base.With().Str("component", "memberlist").Logger(), &n.logs.ml}, "", 0)
	host, port, _ := splitHostPort(c.BindAddr)
	nt, err := newTransport(host, port, mlog)
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s: %w", c.BindAddr, err)
	}
	var t memberlist.NodeAwareTransport = nt
	if c.WrapTransport != nil {
		if t, err = c.WrapTransport(nt); err != nil {
			_ = nt.Shutdown()
			return nil, fmt.Errorf("gossip: wrap transport: %w", err)
		}
	}
	bound := nt.port()

	mc := memberlist.DefaultLANConfig()
	mc.Name = n.self
	mc.Transport = t
	mc.BindAddr, mc.BindPort = host, bound
	mc.AdvertiseAddr, mc.AdvertisePort = "", bound
	if c.AdvertiseAddr != "" {
		ah, ap, _ := splitHostPort(c.AdvertiseAddr)
		if ap == 0 {
			ap = bound
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	mc.Delegate = n.delegate
	mc.Events = &eventDelegate{n: n}
	mc.Logger = mlog
	mc.Label = c.Label
	if c.Key != nil {
		mc.SecretKey = slices.Clone(c.Key)
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	// Our messages are compact already; LZW would cost CPU for little.
	mc.EnableCompression = false
	m := c.Memberlist
	mc.ProbeInterval, mc.ProbeTimeout = m.ProbeInterval, m.ProbeTimeout
	mc.SuspicionMult = m.SuspicionMult
	mc.GossipInterval = m.GossipInterval
	// Dead nodes are gossiped to (so they can refute) and kept this long.
	mc.GossipToTheDeadTime = 5 * time.Second
	mc.PushPullInterval = m.PushPullInterval
	mc.TCPTimeout = m.TCPTimeout
	mc.DeadNodeReclaimTime = m.DeadNodeReclaimTime
	mc.HandoffQueueDepth = m.HandoffQueueDepth

	codec, err := newPacketCodec(mc.SecretKey, mc.Label)
	if err != nil {
		_ = t.Shutdown()
		return nil, fmt.Errorf("gossip: key: %w", err)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = t.Shutdown()
		return nil, fmt.Errorf("gossip: start memberlist: %w", err)
	}
	// Our datagrams bypass memberlist from here on (packet.go).
	n.codec, n.tr = codec, t
	user := n.onPacket
	nt.user.Store(&user)
	return ml, nil
}

// joinLoop joins the seeds, backing off between attempts, until one answers
// or another node joins us (TETHER_JOIN semantics). Then it makes sure the
// fleet accepted us: a node restarting under its old name from a new
// address is refused by peers that still hold the old one (memberlist's
// DeadNodeReclaimTime), although the join itself succeeds. Peers push to
// every member at least each HeartbeatInterval, so until a group arrives
// the node joins again.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	defer n.lonely() // seeds.go: names are resolved again while alone
	if len(n.seeds()) == 0 {
		n.setJoined()
		return
	}
	delay := n.cfg.JoinRetryMin
	wait := func() bool {
		tm := time.NewTimer(delay)
		defer tm.Stop()
		select {
		case <-n.stop:
			return false
		case <-tm.C:
		}
		delay = min(2*delay, n.cfg.JoinRetryMax)
		return true
	}
	for attempt := 1; ; attempt++ {
		if n.ml.NumMembers() > 1 {
			n.setJoined()
			break
		}
		seeds, err := n.resolveSeeds()
		if len(seeds) == 0 && err == nil {
			// Every seed is this node (a name that resolves to it alone).
			n.seedsSelf.Store(true)
			n.log.Info().Strs("join", n.cfg.Join).Msg("the seeds resolve to this node only: a fleet of one for now")
			n.setJoined()
			return
		}
		k := 0
		if len(seeds) > 0 {
			k, err = n.ml.Join(seeds)
		}
		if k > 0 && n.ml.NumMembers() > 1 {
			n.log.Info().Int("contacted", k).Int("attempt", attempt).Msg("joined")
			n.setJoined()
			break
		}
		n.stats.joinRetries.Add(1)
		n.logs.join.Do(func() {
			n.log.Warn().Err(err).Strs("seeds", seeds).Int("attempt", attempt).Dur("retry_in_ms", delay).Msg("no seed answered; retrying")
		})
		if !wait() {
			return
		}
	}
	delay = max(n.cfg.JoinRetryMin, 2*n.cfg.HeartbeatInterval)
	for n.stats.groupsReceived.Load() == 0 {
		if !wait() {
			return
		}
		if n.stats.groupsReceived.Load() > 0 {
			return
		}
		n.stats.joinRetries.Add(1)
		n.log.Info().Msg("no peer has sent anything since we joined; joining again")
		if seeds, _ := n.resolveSeeds(); len(seeds) > 0 {
			_, _ = n.ml.Join(seeds)
		}
	}
}

// seeds returns the join list without this node's own address.
func (n *Node) seeds() []string {
	var out []string
	for _, s := range n.cfg.Join {
		if !n.isSelf(s) {
			out = append(out, s)
		}
	}
	return out
}

func (n *Node) setJoined() {
	if !n.ready.joined.Swap(true) {
		now := n.now()
		n.ready.joinedAt.Store(now.UnixNano())
		// A fleet of one: no seed but this node (seeds.go).
		n.life.Joined(now, len(n.seeds()) == 0 || n.seedsSelf.Load())
	}
}

// eventDelegate receives membership changes. memberlist calls it with its
// node lock held: it only records the change and wakes the run loop, which
// tells the core (SetPeers) and starts or stops the peer's sender.
type eventDelegate struct{ n *Node }

var _ memberlist.EventDelegate = (*eventDelegate)(nil)

func (e *eventDelegate) NotifyJoin(node *memberlist.Node)   { e.n.memberUp(node) }
func (e *eventDelegate) NotifyUpdate(node *memberlist.Node) { e.n.memberUp(node) }
func (e *eventDelegate) NotifyLeave(node *memberlist.Node)  { e.n.memberDown(node) }

func (n *Node) memberUp(node *memberlist.Node) {
	if node.Name == n.self {
		return
	}
	n.memberMu.Lock()
	n.members[node.Name] = *node
	delete(n.gone, node.Name)
	n.memberMu.Unlock()
	n.signalMembers()
}

func (n *Node) memberDown(node *memberlist.Node) {
	if node.Name == n.self {
		return
	}
	n.memberMu.Lock()
	delete(n.members, node.Name)
	n.memberFailed(node)
	n.memberMu.Unlock()
	n.signalMembers()
}

func (n *Node) signalMembers() {
	select {
	case n.memberCh <- struct{}{}:
	default:
	}
}

// syncPeers (run loop) brings the peer table in line with membership and
// tells the core who is alive.
func (n *Node) syncPeers() {
	n.memberMu.Lock()
	live := make(map[string]memberlist.Node, len(n.members))
	for k, v := range n.members {
		live[k] = v
	}
	n.memberMu.Unlock()

	epoch, _ := n.db.Position()
	start := n.db.Vector().Get(n.self, epoch)
	names := make([]string, 0, len(live))
	for name, node := range live {
		names = append(names, name)
		p, isNew := n.peers.up(name, node, n.cfg)
		if isNew {
			// A new peer gets our events from now on; what it lacks of the
			// past it finds through the core's gap handling, which asks
			// with exactly what it knows.
			p.cursor.Store(start)
			n.wg.Add(1)
			go n.outbox(p, p.box.Load())
			n.resendDrains([]*peer{p})
			n.resendTicketKeys([]*peer{p})
			n.log.Info().Str("peer", name).Str("addr", node.Address()).Msg("peer up")
		}
	}
	for _, p := range n.peers.downExcept(live) {
		n.log.Info().Str("peer", p.name).Msg("peer down")
	}
	// The push budget is shared by the live peers (Config.PushBudget).
	r := n.cfg.pushRate(len(live))
	for _, p := range n.peers.live() {
		if p.pushTokens.Limit() != r {
			p.pushTokens.SetLimit(r)
		}
	}
	n.db.SetPeers(names, n.now())
}
