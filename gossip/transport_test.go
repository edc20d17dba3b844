package gossip

import (
	"bytes"
	"io"
	"log"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func newTestTransport(t *testing.T) *transport {
	t.Helper()
	tr, err := newTransport("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func recvPacket(t *testing.T, tr *transport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no packet")
		return nil
	}
}

// Each packet arrives in a slice of its own length that later reads do
// not overwrite (the read buffer is reused), from the sender's address.
func TestTransportPackets(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	defer a.Shutdown()
	defer b.Shutdown()
	ip, port, err := b.FinalAdvertiseAddr("", 0)
	if err != nil || ip.String() != "127.0.0.1" || port != b.port() {
		t.Fatalf("advertise %v %d %v, want 127.0.0.1 %d", ip, port, err, b.port())
	}
	to := memberlist.Address{Addr: b.udp.LocalAddr().String(), Name: "b"}
	first := bytes.Repeat([]byte{'x'}, 1000)
	if _, err := a.WriteToAddress(first, to); err != nil {
		t.Fatal(err)
	}
	p1 := recvPacket(t, b)
	if _, err := a.WriteTo([]byte("second"), to.Addr); err != nil {
		t.Fatal(err)
	}
	p2 := recvPacket(t, b)
	if !bytes.Equal(p1.Buf, first) || cap(p1.Buf) > 2*len(first) {
		t.Fatalf("first packet %d bytes (cap %d) changed or oversized after a second read", len(p1.Buf), cap(p1.Buf))
	}
	if string(p2.Buf) != "second" {
		t.Fatalf("second packet %q", p2.Buf)
	}
	if p1.From.String() != a.udp.LocalAddr().String() {
		t.Fatalf("from %v, want %v", p1.From, a.udp.LocalAddr())
	}
	// A name resolves too (NetTransport's path).
	if _, err := a.WriteTo([]byte("named"), "localhost:"+strconv.Itoa(b.port())); err != nil {
		t.Fatal(err)
	}
	if p := recvPacket(t, b); string(p.Buf) != "named" {
		t.Fatalf("named: %q", p.Buf)
	}
	if _, err := a.WriteTo([]byte("x"), "no port"); err == nil {
		t.Fatal("bad address accepted")
	}
}

// Receiving a small packet no longer costs a 64 KiB allocation: 500
// packets of 100 bytes allocate far less than one 64 KiB buffer each
// (NetTransport: 500 x 64 KiB = 32 MiB).
func TestTransportPacketAllocations(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	defer a.Shutdown()
	defer b.Shutdown()
	to := b.udp.LocalAddr().String()
	msg := make([]byte, 100)
	const n = 500
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got := 0
	for i := 0; i < n; i++ {
		if _, err := a.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
		// One at a time: loopback does not drop what is read at once.
		p := recvPacket(t, b)
		got += len(p.Buf)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d packets, %d bytes allocated (%.0f per packet)", n, alloc, float64(alloc)/n)
	if got != n*len(msg) {
		t.Fatalf("received %d bytes, want %d", got, n*len(msg))
	}
	if alloc > n*8<<10 {
		t.Fatalf("%d bytes allocated for %d packets of %d bytes: over 8 KiB a packet", alloc, n, len(msg))
	}
}

// Streams: a dial reaches the other side's StreamCh; Shutdown ends both
// listeners (goleak checks the goroutines).
func TestTransportStreams(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	defer a.Shutdown()
	c, err := a.DialAddressTimeout(memberlist.Address{Addr: b.tcp.Addr().String()}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	var s interface {
		Read([]byte) (int, error)
		Close() error
	}
	select {
	case s = <-b.StreamCh():
	case <-time.After(10 * time.Second):
		t.Fatal("no stream")
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("stream read %q %v", buf, err)
	}
	s.Close()
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DialTimeout(b.tcp.Addr().String(), time.Second); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
	ip, port, err := a.FinalAdvertiseAddr("10.1.2.3", 7000)
	if err != nil || ip.String() != "10.1.2.3" || port != 7000 {
		t.Fatalf("advertise given: %v %d %v", ip, port, err)
	}
	if _, _, err := a.FinalAdvertiseAddr("not-an-ip", 1); err == nil {
		t.Fatal("bad advertise address accepted")
	}
}

func TestTransportBadBind(t *testing.T) {
	if _, err := newTransport("nohost", 0, log.New(io.Discard, "", 0)); err == nil {
		t.Fatal("a bind address that is not an IP was accepted")
	}
}
