package faultnet

import (
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair wraps two real transports on loopback, named a and b.
func pair(t *testing.T, n *Network) (a, b *Transport) {
	t.Helper()
	mk := func(name string) *Transport {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: log.New(io.Discard, "", 0)})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := n.Wrap(name, nt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Shutdown() })
		return tr
	}
	return mk("a"), mk("b")
}

func packet(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }

// receive reads want packets from t, or fails after a deadline.
func receive(tb testing.TB, t *Transport, want int) []int {
	tb.Helper()
	var got []int
	deadline := time.After(5 * time.Second)
	for len(got) < want {
		select {
		case p := <-t.PacketCh():
			got = append(got, int(binary.BigEndian.Uint32(p.Buf)))
		case <-deadline:
			tb.Fatalf("received %d of %d packets", len(got), want)
		}
	}
	return got
}

func TestPacketLoss(t *testing.T) {
	n := New(1)
	a, b := pair(t, n)
	n.SetPacketLoss(0.2)
	const sent = 1000
	for i := range sent {
		if _, err := a.WriteToAddress(packet(i), memberlist.Address{Addr: b.Addr(), Name: "b"}); err != nil {
			t.Fatal(err)
		}
	}
	st := n.Stats()
	if st.PacketsDropped < 150 || st.PacketsDropped > 250 {
		t.Fatalf("dropped %d of %d at 20%%", st.PacketsDropped, sent)
	}
	got := receive(t, b, sent-int(st.PacketsDropped))
	if b.Received(a.Addr()) != uint64(len(got)) {
		t.Fatalf("Received counts %d, got %d", b.Received(a.Addr()), len(got))
	}
	// A marker sent after loss is off must be the next packet: nothing
	// dropped is still on its way.
	n.SetPacketLoss(0)
	if _, err := a.WriteTo(packet(-1), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, b, 1); m[0] != int(uint32(0xffffffff)) {
		t.Fatalf("got %d after the marker", m[0])
	}
}

func TestDelayReorders(t *testing.T) {
	n := New(2)
	a, b := pair(t, n)
	n.SetDelay(0, 5*time.Millisecond)
	const sent = 200
	for i := range sent {
		if _, err := a.WriteToAddress(packet(i), memberlist.Address{Addr: b.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	got := receive(t, b, sent)
	inversions := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			inversions++
		}
	}
	if inversions == 0 || n.Stats().PacketsDelayed == 0 {
		t.Fatalf("no reordering: %v", got)
	}
	seen := map[int]bool{}
	for _, v := range got {
		seen[v] = true
	}
	if len(seen) != sent {
		t.Fatalf("%d distinct packets of %d", len(seen), sent)
	}
}

func TestCutAndHeal(t *testing.T) {
	n := New(3)
	a, b := pair(t, n)
	n.Cut("a", "b")
	if _, err := a.WriteTo(packet(1), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DialAddressTimeout(memberlist.Address{Addr: a.Addr(), Name: "a"}, time.Second); !errors.Is(err, ErrCut) {
		t.Fatalf("dial over a cut link: %v", err)
	}
	if st := n.Stats(); st.PacketsCut != 1 || st.StreamsCut != 1 {
		t.Fatalf("%+v", st)
	}
	n.Heal("a", "b")
	if _, err := a.WriteTo(packet(2), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, b, 1); got[0] != 2 {
		t.Fatalf("got %v", got)
	}
	c, err := b.DialAddressTimeout(memberlist.Address{Addr: a.Addr(), Name: "a"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	in := <-a.StreamCh()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("%q %v", buf, err)
	}
	_ = c.Close()
	_ = in.Close()
}

func TestStreamLossBlackholes(t *testing.T) {
	n := New(4)
	a, b := pair(t, n)
	n.SetStreamLoss(1)
	c, err := a.DialAddressTimeout(memberlist.Address{Addr: b.Addr(), Name: "b"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := c.Write([]byte("lost")); err != nil || k != 4 {
		t.Fatalf("write: %d %v", k, err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	_ = c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if st := n.Stats(); st.StreamsLost != 1 {
		t.Fatalf("%+v", st)
	}
}

// TestShutdownDropsPending: delayed packets still waiting at shutdown are
// dropped without leaking goroutines (goleak checks).
func TestShutdownDropsPending(t *testing.T) {
	n := New(5)
	a, b := pair(t, n)
	n.SetDelay(time.Hour, time.Hour)
	for i := range 10 {
		if _, err := a.WriteTo(packet(i), b.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	n.Isolate("a")
	n.Reset()
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// multiInner is a transport that sends to many addresses at once (as
// gossip's does), counting the addresses it was handed.
type multiInner struct {
	memberlist.NodeAwareTransport
	handed int
}

func (m *multiInner) WriteToAddresses(b []byte, as []memberlist.Address, errs []error) {
	m.handed += len(as)
	for i, a := range as {
		_, errs[i] = m.WriteToAddress(b, a)
	}
}

// WriteToAddresses judges each address as WriteToAddress does (a cut link
// drops its packet) and hands the rest to an inner transport that sends to
// many at once, or sends them one by one.
func TestWriteToAddresses(t *testing.T) {
	for _, multi := range []bool{true, false} {
		n := New(5)
		var inner *multiInner
		mk := func(name string) *Transport {
			nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
				BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: log.New(io.Discard, "", 0)})
			if err != nil {
				t.Fatal(err)
			}
			var it memberlist.NodeAwareTransport = nt
			if name == "a" && multi {
				inner = &multiInner{NodeAwareTransport: nt}
				it = inner
			}
			tr, err := n.Wrap(name, it)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tr.Shutdown() })
			return tr
		}
		a, b, c := mk("a"), mk("b"), mk("c")
		n.Cut("a", "c")
		as := []memberlist.Address{{Addr: b.Addr(), Name: "b"}, {Addr: c.Addr(), Name: "c"}, {Addr: b.Addr(), Name: "b"}}
		errs := make([]error, len(as))
		a.WriteToAddresses(packet(7), as, errs)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("multi %v: address %d: %v", multi, i, err)
			}
		}
		if got := receive(t, b, 2); got[0] != 7 || got[1] != 7 {
			t.Fatalf("multi %v: b got %v", multi, got)
		}
		if st := n.Stats(); st.PacketsCut != 1 || st.Packets != 3 {
			t.Fatalf("multi %v: %+v", multi, st)
		}
		if multi && inner.handed != 2 {
			t.Fatalf("the inner transport was handed %d addresses, want 2 (the cut one judged first)", inner.handed)
		}
		select {
		case p := <-c.PacketCh():
			t.Fatalf("multi %v: a packet crossed the cut: %v", multi, p.Buf)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
