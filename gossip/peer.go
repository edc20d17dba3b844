package gossip

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/time/rate"
)

// peer is one other node of the fleet.
type peer struct {
	name string
	node atomic.Pointer[memberlist.Node] // where to send; updated on NotifyUpdate
	live atomic.Bool
	box  atomic.Pointer[outbox] // reliable sender while live

	reqLimit  *rate.Limiter // range requests answered
	copyLimit *rate.Limiter // full copies streamed

	// pushTokens paces pushes to this peer (Config.PushBurst); the run
	// loop takes a token per push that sent it something.
	pushTokens *rate.Limiter

	lastSent atomic.Int64 // unix ns of the last change group sent (push, answer, heartbeat)

	// The vector last sent to this peer in a pushed group or heartbeat
	// (its hash, vectorHash) and when: a heartbeat carries the vector only
	// when it changed since, or every vectorRefresh (push.go). vecAt
	// is reset to 0 when the peer shows a new epoch (it restarted and may
	// not have our vector).
	vecHash   atomic.Uint64
	vecAt     atomic.Int64 // unix ns; 0: send it
	epochSeen atomic.Int64 // the peer's own epoch in its last group
	downAt    time.Time    // run loop only
	roundAt   int64        // unix ns of the push round p waits for (took); run loop only

	// cursor is the last own event pushed to this peer (current epoch).
	// Only the run loop moves it; Stats reads it.
	cursor atomic.Uint64

	c peerCounters
}

// outbox queues reliable messages to one peer; one goroutine drains it, so
// a slow or dead peer delays nobody else.
type outbox struct {
	ch   chan []byte
	stop chan struct{}
}

// peerTable holds the peers. The run loop adds and retires them; any
// goroutine may look one up.
type peerTable struct {
	mu sync.RWMutex
	m  map[string]*peer
	// liveCache is live()'s answer until a peer goes up or down (every
	// push round asked for it: a sort and an allocation per round).
	liveCache []*peer
}

func (t *peerTable) init() { t.m = map[string]*peer{} }

func (t *peerTable) get(name string) *peer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[name]
}

// live returns the live peers in name order. The slice is shared with
// other callers: it must not be modified.
func (t *peerTable) live() []*peer {
	t.mu.RLock()
	out := t.liveCache
	t.mu.RUnlock()
	if out != nil {
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.liveCache != nil {
		return t.liveCache
	}
	out = make([]*peer, 0, len(t.m))
	for _, p := range t.m {
		if p.live.Load() {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	t.liveCache = out
	return out
}

func (t *peerTable) all() []*peer {
	t.mu.RLock()
	out := make([]*peer, 0, len(t.m))
	for _, p := range t.m {
		out = append(out, p)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// up records a live member. It returns the peer and whether it just came
// up (then the caller starts its sender).
func (t *peerTable) up(name string, node memberlist.Node, cfg Config) (*peer, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.m[name]
	if p == nil {
		p = &peer{
			name:       name,
			reqLimit:   rate.NewLimiter(rate.Limit(cfg.RequestRate), cfg.RequestBurst),
			copyLimit:  rate.NewLimiter(rate.Every(cfg.FullCopyInterval), cfg.FullCopyBurst),
			pushTokens: rate.NewLimiter(cfg.pushRate(0), cfg.PushBurst), // syncPeers sets the rate for the fleet's size
		}
		t.m[name] = p
	}
	nc := node
	p.node.Store(&nc)
	if p.live.Load() {
		return p, false
	}
	p.box.Store(&outbox{ch: make(chan []byte, cfg.OutboxDepth), stop: make(chan struct{})})
	p.vecAt.Store(0) // back after being down: send it our vector again
	p.live.Store(true)
	t.liveCache = nil
	return p, true
}

// retention: a departed peer's counters are kept this long for Stats.
const retention = time.Hour

// downExcept retires the live peers not in live and returns them; peers
// gone for longer than retention are forgotten.
func (t *peerTable) downExcept(live map[string]memberlist.Node) []*peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*peer
	now := time.Now()
	for name, p := range t.m {
		if _, ok := live[name]; ok {
			continue
		}
		if p.live.Load() {
			p.live.Store(false)
			t.liveCache = nil
			p.downAt = now
			if b := p.box.Load(); b != nil {
				close(b.stop)
			}
			out = append(out, p)
		} else if now.Sub(p.downAt) > retention {
			delete(t.m, name)
		}
	}
	return out
}

// outbox drains one peer's reliable queue until the peer goes down or the
// node stops.
func (n *Node) outbox(p *peer, b *outbox) {
	defer n.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case <-n.stop:
			return
		case msg := <-b.ch:
			n.sendReliable(p, msg)
			if len(b.ch) == 0 {
				n.wake() // pushes held while this queue was busy may go
			}
		}
	}
}

// send delivers msg to p without blocking: best-effort (UDP) when it fits
// MaxUDPBytes, else through p's reliable sender. It reports whether the
// message left or was queued.
func (n *Node) send(p *peer, msg []byte) bool {
	if len(msg) <= n.cfg.MaxUDPBytes {
		return n.sendPacket(p, msg)
	}
	b := p.box.Load()
	if b == nil || !p.live.Load() {
		n.stats.unknownPeer.Add(1)
		return false
	}
	select {
	case b.ch <- msg:
		return true
	default:
		n.stats.outboxDropped.Add(1)
		p.c.outboxDropped.Add(1)
		return false
	}
}

// sendAll is send of one msg to each of peers; ok[i] is send's answer for
// peers[i] (the slice is reused by the next call). A datagram is sealed
// once for the peers of each packet format (with or without a CRC) and
// written to them together when the transport can (multiWriter: one
// sendmmsg on Linux for a whole push round). Run loop only.
func (n *Node) sendAll(peers []*peer, msg []byte) []bool {
	ok := slices.Grow(n.sendOK[:0], len(peers))[:len(peers)]
	n.sendOK = ok
	mw, multi := n.tr.(multiWriter)
	if !multi || len(peers) < 2 || len(msg) > n.cfg.MaxUDPBytes {
		for i, p := range peers {
			ok[i] = n.send(p, msg)
		}
		return ok
	}
	for _, crc := range [2]bool{false, true} {
		as, at := n.sendAddrs[:0], n.sendAt[:0]
		for i, p := range peers {
			if node := p.node.Load(); (node.PMax >= 5) == crc {
				as = append(as, memberlist.Address{Addr: node.Address(), Name: node.Name})
				at = append(at, i)
			}
		}
		if len(as) > 0 {
			errs := slices.Grow(n.sendErrs[:0], len(as))[:len(as)]
			b := n.codec.buf()
			*b = n.codec.seal((*b)[:0], msg, crc)
			mw.WriteToAddresses(*b, as, errs)
			n.codec.put(b)
			for j, i := range at {
				if ok[i] = errs[j] == nil; ok[i] {
					n.sent(peers[i], len(msg), true)
				} else {
					n.sendFailed(peers[i], errs[j])
				}
			}
			clear(errs)
			n.sendErrs = errs
		}
		clear(as)
		n.sendAddrs, n.sendAt = as, at
	}
	return ok
}

// sendNow is send for workers: a large message is sent reliably here,
// blocking until it is written, and tried again if the send fails.
func (n *Node) sendNow(p *peer, msg []byte) bool {
	if len(msg) <= n.cfg.MaxUDPBytes {
		return n.sendPacket(p, msg)
	}
	return n.sendReliableRetry(p, msg)
}

// sendPacket sends msg to p in one datagram, written as memberlist's
// SendBestEffort would (packet.go) straight to the transport.
func (n *Node) sendPacket(p *peer, msg []byte) bool {
	node := p.node.Load()
	b := n.codec.buf()
	defer n.codec.put(b)
	*b = n.codec.seal((*b)[:0], msg, node.PMax >= 5)
	if _, err := n.tr.WriteToAddress(*b, memberlist.Address{Addr: node.Address(), Name: node.Name}); err != nil {
		n.sendFailed(p, err)
		return false
	}
	n.sent(p, len(msg), true)
	return true
}

func (n *Node) sendReliable(p *peer, msg []byte) bool {
	if err := n.ml.SendReliable(p.node.Load(), msg); err != nil {
		n.sendFailed(p, err)
		return false
	}
	n.sent(p, len(msg), false)
	return true
}

func (n *Node) sent(p *peer, bytes int, udp bool) {
	if udp {
		n.stats.msgsUDP.Add(1)
	} else {
		n.stats.msgsTCP.Add(1)
	}
	n.stats.bytesSent.Add(uint64(bytes))
	p.c.bytesSent.Add(uint64(bytes))
	p.c.msgsSent.Add(1)
}

func (n *Node) sendFailed(p *peer, err error) {
	n.stats.sendErrors.Add(1)
	p.c.sendErrors.Add(1)
	if n.closing.Load() {
		return
	}
	n.logs.send.Do(func() { n.log.Warn().Err(err).Str("peer", p.name).Msg("send failed") })
}
