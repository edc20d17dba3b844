package gossip

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
	"golang.org/x/net/ipv4"
)

// transport is memberlist's network transport (UDP for packets, a TCP
// connection per stream), as memberlist.NetTransport does it, with one
// difference that matters at scale: NetTransport reads every UDP packet
// into a fresh 64 KiB buffer, so a node receiving a few thousand packets a
// second allocated (and cleared, and had the GC scan past) hundreds of MB
// a second. Profiled at 25 in-process nodes and 5,000 new bindings/s,
// those allocations and the GC work they caused were about a third of the
// process's CPU. Here one buffer per listener is reused, and each packet
// is copied out at its own length.
//
// Sending resolves a numeric "ip:port" without allocating (memberlist
// addresses are numeric); a name goes through net.ResolveUDPAddr as in
// NetTransport.
type transport struct {
	bindIP   string
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	logger   *log.Logger
	wg       sync.WaitGroup
	shutdown atomic.Bool
	// user, once set, is offered every packet first, in the reader
	// goroutine; it reports whether it took the packet (packet.go), and
	// must not keep pkt (the reader's buffer).
	user atomic.Pointer[func(pkt []byte) bool]

	batch   *ipv4.PacketConn // udp, for WriteToAddresses
	batchMu sync.Mutex       // guards what follows
	noBatch bool             // the socket took a packet that a batch could not send
	msgs    []ipv4.Message
	idx     []int                   // the address of each of msgs
	addrs   map[string]*net.UDPAddr // resolved "ip:port"s, at most maxAddrs
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// multiWriter is a transport that sends one packet to many addresses at
// once (transport, and faultnet's wrapper around it). errs has an entry
// per address: nil, or the error of that send.
type multiWriter interface {
	WriteToAddresses(b []byte, as []memberlist.Address, errs []error)
}

var _ multiWriter = (*transport)(nil)

// maxAddrs bounds the resolved addresses WriteToAddresses keeps.
const maxAddrs = 4096

// WriteToAddresses sends b to every address in as few system calls as
// the kernel allows (sendmmsg on Linux through x/net/ipv4; one per packet
// elsewhere). A push round sends one packet to every peer: at 50 nodes
// the 49 sendto calls of a round cost 1.7 times one sendmmsg of them
// (BenchmarkWriteToAddresses), and the UDP write was the largest single
// cost of a busy node. Linux takes IPv4 addresses in a batch from a
// dual-stack socket too; should a batch refuse a packet that net's own
// write (which maps addresses for the socket's family) then sends,
// batches stop for this transport.
func (t *transport) WriteToAddresses(b []byte, as []memberlist.Address, errs []error) {
	t.batchMu.Lock()
	defer t.batchMu.Unlock()
	ms, idx := t.msgs[:0], t.idx[:0]
	for i, a := range as {
		errs[i] = nil
		ua, err := t.resolve(a.Addr)
		if err != nil {
			errs[i] = err
			continue
		}
		ms = append(ms, ipv4.Message{Buffers: [][]byte{b}, Addr: ua})
		idx = append(idx, i)
	}
	t.msgs, t.idx = ms, idx
	for off := 0; off < len(ms); {
		if !t.noBatch {
			if n, err := t.batch.WriteBatch(ms[off:], 0); err == nil && n > 0 {
				off += n
				continue
			}
		}
		// One at a time: batches given up, or the batch refused its first
		// message (sendmmsg fails only then). net's own write maps
		// addresses for the socket's family: if it takes a packet a batch
		// refused, batches stop for good.
		_, err := t.udp.WriteToUDP(b, ms[off].Addr.(*net.UDPAddr))
		errs[idx[off]] = err
		if err == nil {
			t.noBatch = true
		}
		off++
	}
	for i := range ms {
		ms[i] = ipv4.Message{} // keep neither b nor the addresses
	}
}

// resolve returns the UDP address of "ip:port" (or a name), cached.
func (t *transport) resolve(addr string) (*net.UDPAddr, error) {
	if ua, ok := t.addrs[addr]; ok {
		return ua, nil
	}
	var ua *net.UDPAddr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ua = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	} else if ua, err = net.ResolveUDPAddr("udp", addr); err != nil {
		return nil, err
	}
	if t.addrs == nil || len(t.addrs) >= maxAddrs {
		t.addrs = make(map[string]*net.UDPAddr)
	}
	t.addrs[addr] = ua
	return ua, nil
}

// udpRecvBuf is the socket receive buffer asked for (halved until the
// kernel accepts it), as NetTransport does.
const udpRecvBuf = 2 << 20

// maxPacket is the largest UDP payload read; larger datagrams are cut by
// the kernel and fail to decrypt or decode (memberlist never sends them).
const maxPacket = 65536

// newTransport listens on host:port, TCP and UDP (port 0: a free port,
// the same for both).
func newTransport(host string, port int, logger *log.Logger) (*transport, error) {
	if host == "" {
		host = "0.0.0.0" // every interface, as NetTransport binds it
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("bind address %q is not an IP address", host)
	}
	t := &transport{
		bindIP:   host,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		logger:   logger,
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("TCP listener on %s port %d: %w", host, port, err)
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("UDP listener on %s port %d: %w", host, port, err)
	}
	for size := udpRecvBuf; size > 0; size /= 2 {
		if err = udp.SetReadBuffer(size); err == nil {
			break
		}
	}
	if err != nil {
		_ = tcp.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("UDP receive buffer: %w", err)
	}
	t.tcp, t.udp = tcp, udp
	t.batch = ipv4.NewPacketConn(udp)
	t.wg.Add(2)
	go t.tcpListen()
	go t.udpListen()
	return t, nil
}

// port is the bound port (TCP and UDP).
func (t *transport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is NetTransport's: the given address, else a private
// IP of the host when bound to 0.0.0.0, else the bound IP.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	if t.bindIP == "0.0.0.0" {
		priv, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("failed to get interface addresses: %v", err)
		}
		if priv == "" {
			return nil, 0, errors.New("no private IP address found, and explicit IP not provided")
		}
		a := net.ParseIP(priv)
		if a == nil {
			return nil, 0, fmt.Errorf("failed to parse advertise address: %q", priv)
		}
		return a, t.port(), nil
	}
	return t.tcp.Addr().(*net.TCPAddr).IP, t.port(), nil
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if ap, err := netip.ParseAddrPort(a.Addr); err == nil {
		_, err = t.udp.WriteToUDPAddrPort(b, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		return time.Now(), err
	}
	ua, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown closes the listeners and waits for their goroutines. memberlist
// calls it before it stops reading PacketCh and StreamCh, so a goroutine
// handing over a packet or connection is not left blocked.
func (t *transport) Shutdown() error {
	t.shutdown.Store(true)
	_ = t.tcp.Close()
	_ = t.udp.Close()
	t.wg.Wait()
	return nil
}

func (t *transport) tcpListen() {
	defer t.wg.Done()
	const baseDelay, maxDelay = 5 * time.Millisecond, time.Second
	var delay time.Duration
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			delay = min(max(2*delay, baseDelay), maxDelay)
			t.logger.Printf("[ERR] memberlist: Error accepting TCP connection: %v", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.streamCh <- conn
	}
}

// udpListen reads packets into one reused buffer, offers each to the user
// hook (our own datagrams, packet.go), and hands the others on to
// memberlist in a slice of their own length (memberlist keeps it).
func (t *transport) udpListen() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		ts := time.Now()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			t.logger.Printf("[ERR] memberlist: Error reading UDP packet: %v", err)
			continue
		}
		if n < 1 {
			t.logger.Printf("[ERR] memberlist: UDP packet too short (%d bytes) %s", n, from)
			continue
		}
		if u := t.user.Load(); u != nil && (*u)(buf[:n]) {
			continue
		}
		t.packetCh <- &memberlist.Packet{
			Buf:       append([]byte(nil), buf[:n]...),
			From:      net.UDPAddrFromAddrPort(from),
			Timestamp: ts,
		}
	}
}
