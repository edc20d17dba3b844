package faultnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrCut is the dial error of a stream over a cut link.
var ErrCut = errors.New("faultnet: link cut")

// Network holds the faults shared by the transports wrapped from it. The
// zero value is not usable; call New. All methods are safe for concurrent
// use.
type Network struct {
	mu         sync.Mutex
	rng        *rand.Rand
	packetLoss float64
	streamLoss float64
	delayMin   time.Duration
	delayMax   time.Duration
	cut        map[link]bool
	names      map[string]string // "ip:port" -> node name

	stats counters
}

type link struct{ from, to string }

type counters struct {
	packets, packetsDropped, packetsDelayed, packetsCut atomic.Uint64
	streams, streamsLost, streamsCut                    atomic.Uint64
	bytes                                               atomic.Uint64
}

// Stats counts what the network did, over all its transports.
type Stats struct {
	Packets        uint64 // packets handed to the network
	PacketsDropped uint64 // lost to SetPacketLoss
	PacketsDelayed uint64 // sent late (SetDelay)
	PacketsCut     uint64 // dropped on a cut link
	Streams        uint64 // stream dials
	StreamsLost    uint64 // black-holed by SetStreamLoss
	StreamsCut     uint64 // refused on a cut link
	Bytes          uint64 // packet bytes actually sent, and stream bytes written
}

// New returns a network without faults. seed makes the random decisions
// repeatable.
func New(seed uint64) *Network {
	return &Network{
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		cut:   map[link]bool{},
		names: map[string]string{},
	}
}

// SetLoss sets both packet and stream loss to p (0..1).
func (n *Network) SetLoss(p float64) {
	n.SetPacketLoss(p)
	n.SetStreamLoss(p)
}

// SetPacketLoss makes every packet vanish with probability p (0..1).
func (n *Network) SetPacketLoss(p float64) {
	n.mu.Lock()
	n.packetLoss = clamp(p)
	n.mu.Unlock()
}

// SetStreamLoss black-holes every stream with probability p (0..1).
func (n *Network) SetStreamLoss(p float64) {
	n.mu.Lock()
	n.streamLoss = clamp(p)
	n.mu.Unlock()
}

// SetDelay delays every packet (and stream dial) by a uniform random time in
// [min, max]. Packets with different delays overtake each other. Zero
// durations switch delays off.
func (n *Network) SetDelay(min, max time.Duration) {
	if max < min {
		max = min
	}
	n.mu.Lock()
	n.delayMin, n.delayMax = min, max
	n.mu.Unlock()
}

// Cut stops all traffic between a and b, both ways.
func (n *Network) Cut(a, b string) {
	n.mu.Lock()
	n.cut[link{a, b}], n.cut[link{b, a}] = true, true
	n.mu.Unlock()
}

// Heal restores traffic between a and b.
func (n *Network) Heal(a, b string) {
	n.mu.Lock()
	delete(n.cut, link{a, b})
	delete(n.cut, link{b, a})
	n.mu.Unlock()
}

// Isolate cuts a from every node registered so far.
func (n *Network) Isolate(a string) {
	n.mu.Lock()
	for _, b := range n.names {
		if b != a {
			n.cut[link{a, b}], n.cut[link{b, a}] = true, true
		}
	}
	n.mu.Unlock()
}

// Reset removes every fault: loss, delay and cuts.
func (n *Network) Reset() {
	n.mu.Lock()
	n.packetLoss, n.streamLoss, n.delayMin, n.delayMax = 0, 0, 0, 0
	clear(n.cut)
	n.mu.Unlock()
}

// Stats returns the counters.
func (n *Network) Stats() Stats {
	c := &n.stats
	return Stats{
		Packets: c.packets.Load(), PacketsDropped: c.packetsDropped.Load(),
		PacketsDelayed: c.packetsDelayed.Load(), PacketsCut: c.packetsCut.Load(),
		Streams: c.streams.Load(), StreamsLost: c.streamsLost.Load(), StreamsCut: c.streamsCut.Load(),
		Bytes: c.bytes.Load(),
	}
}

// Wrap returns inner with the network's faults applied to what it sends.
// name is the memberlist node name of the node using it; its advertised
// address is registered so that packets addressed without a name can be
// attributed.
func (n *Network) Wrap(name string, inner memberlist.NodeAwareTransport) (*Transport, error) {
	ip, port, err := inner.FinalAdvertiseAddr("", 0)
	if err != nil {
		return nil, fmt.Errorf("faultnet: advertise address of %s: %w", name, err)
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	n.mu.Lock()
	n.names[addr] = name
	n.mu.Unlock()
	t := &Transport{
		name:     name,
		addr:     addr,
		inner:    inner,
		net:      n,
		packetCh: make(chan *memberlist.Packet),
		done:     make(chan struct{}),
		timers:   map[*time.Timer]struct{}{},
		received: map[string]uint64{},
	}
	t.relay.Add(1)
	go t.relayPackets()
	return t, nil
}

// verdict is what happens to one packet or stream.
type verdict int

const (
	deliver verdict = iota
	drop
	cut
)

// decide draws the fate of one send from `from` to addr (name when known).
func (n *Network) decide(from string, a memberlist.Address, stream bool) (verdict, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	to := a.Name
	if to == "" {
		to = n.names[a.Addr]
	}
	if to != "" && n.cut[link{from, to}] {
		return cut, 0
	}
	loss := n.packetLoss
	if stream {
		loss = n.streamLoss
	}
	if loss > 0 && n.rng.Float64() < loss {
		return drop, 0
	}
	d := n.delayMin
	if span := n.delayMax - n.delayMin; span > 0 {
		d += time.Duration(n.rng.Int64N(int64(span) + 1))
	}
	return deliver, d
}

func clamp(p float64) float64 { return min(max(p, 0), 1) }
