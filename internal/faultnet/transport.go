package faultnet

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Transport is one node's wrapped transport. memberlist calls it from many
// goroutines; every method is safe for concurrent use.
type Transport struct {
	name  string
	addr  string
	inner memberlist.NodeAwareTransport
	net   *Network

	packetCh chan *memberlist.Packet
	done     chan struct{}
	relay    sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	timers   map[*time.Timer]struct{} // delayed packets not yet sent
	pending  sync.WaitGroup           // delayed packets being sent
	received map[string]uint64        // packets received, by source "ip:port"
	sent     atomic.Uint64            // bytes this node put on the wire
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Addr is the address the wrapped transport advertises, "ip:port".
func (t *Transport) Addr() string { return t.addr }

// BytesSent returns the bytes this node put on the wire: packets, and
// stream bytes written (memberlist framing, encryption and label
// included).
func (t *Transport) BytesSent() uint64 { return t.sent.Load() }

// Received returns how many packets arrived from the address "ip:port".
func (t *Transport) Received(from string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.received[from]
}

// FinalAdvertiseAddr passes through.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// PacketCh relays the inner transport's packets, counting them by source.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh passes through.
func (t *Transport) StreamCh() <-chan net.Conn { return t.inner.StreamCh() }

// WriteTo sends a packet to an address given without a node name.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddresses sends b to every address, each judged as by
// WriteToAddress (cut, dropped, delayed or sent); those sent at once go
// to the inner transport together when it can send to many addresses
// (gossip's transport: sendmmsg), else one by one. errs has an entry per
// address.
func (t *Transport) WriteToAddresses(b []byte, as []memberlist.Address, errs []error) {
	type multi interface {
		WriteToAddresses(b []byte, as []memberlist.Address, errs []error)
	}
	inner, ok := t.inner.(multi)
	if !ok {
		for i, a := range as {
			_, errs[i] = t.WriteToAddress(b, a)
		}
		return
	}
	now := make([]memberlist.Address, 0, len(as))
	at := make([]int, 0, len(as))
	for i, a := range as {
		errs[i] = nil
		if t.judge(b, a) {
			now = append(now, a)
			at = append(at, i)
		}
	}
	if len(now) == 0 {
		return
	}
	sub := make([]error, len(now))
	inner.WriteToAddresses(b, now, sub)
	for j, i := range at {
		errs[i] = sub[j]
	}
}

// WriteToAddress sends, drops or delays one packet. A dropped packet looks
// sent to the caller, as a lost UDP datagram does.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.judge(b, a) {
		return t.inner.WriteToAddress(b, a)
	}
	return time.Now(), nil
}

// judge decides one packet's fate: cut or dropped (counted), delayed (a
// copy sent later), or to be sent now by the caller (true, counted as
// sent).
func (t *Transport) judge(b []byte, a memberlist.Address) bool {
	n := t.net
	n.stats.packets.Add(1)
	v, d := n.decide(t.name, a, false)
	switch v {
	case cut:
		n.stats.packetsCut.Add(1)
		return false
	case drop:
		n.stats.packetsDropped.Add(1)
		return false
	}
	if d <= 0 {
		n.stats.bytes.Add(uint64(len(b)))
		t.sent.Add(uint64(len(b)))
		return true
	}
	// The caller may reuse b after we return: keep a copy for later.
	buf := append([]byte(nil), b...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	n.stats.packetsDelayed.Add(1)
	t.pending.Add(1)
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		defer t.pending.Done()
		t.mu.Lock()
		delete(t.timers, tm)
		closed := t.closed
		t.mu.Unlock()
		if !closed {
			n.stats.bytes.Add(uint64(len(buf)))
			t.sent.Add(uint64(len(buf)))
			_, _ = t.inner.WriteToAddress(buf, a)
		}
	})
	t.timers[tm] = struct{}{}
	return false
}

// DialTimeout dials an address given without a node name.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout refuses, black-holes, delays or passes one stream.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	n := t.net
	n.stats.streams.Add(1)
	v, d := n.decide(t.name, a, true)
	switch v {
	case cut:
		n.stats.streamsCut.Add(1)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ErrCut}
	case drop:
		n.stats.streamsLost.Add(1)
		return newBlackhole(), nil
	}
	if d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-t.done:
			tm.Stop()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: net.ErrClosed}
		}
	}
	c, err := t.inner.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: n, t: t}, nil
}

// Shutdown drops the delayed packets still waiting, shuts the inner
// transport down and stops the relay.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for tm := range t.timers {
		if tm.Stop() {
			t.pending.Done()
		}
		delete(t.timers, tm)
	}
	t.mu.Unlock()
	t.pending.Wait()
	// The inner transport's listeners may be blocked handing us a packet:
	// keep relaying until they are gone.
	err := t.inner.Shutdown()
	close(t.done)
	t.relay.Wait()
	return err
}

func (t *Transport) relayPackets() {
	defer t.relay.Done()
	in := t.inner.PacketCh()
	for {
		select {
		case p := <-in:
			if p.From != nil {
				t.mu.Lock()
				t.received[p.From.String()]++
				t.mu.Unlock()
			}
			select {
			case t.packetCh <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

// countingConn counts stream bytes written.
type countingConn struct {
	net.Conn
	n *Network
	t *Transport
}

func (c *countingConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.n.stats.bytes.Add(uint64(k))
	c.t.sent.Add(uint64(k))
	return k, err
}
