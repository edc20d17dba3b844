package gossip

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestPacketCodecRoundTrip: what seal writes, open reads back, for every
// key size, with and without a label and a CRC; a flipped bit, another key
// or another label leave the packet to memberlist.
func TestPacketCodecRoundTrip(t *testing.T) {
	msg := []byte("a change group, or anything")
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 24), bytes.Repeat([]byte{3}, 32)} {
		for _, label := range []string{"", "tether"} {
			for _, crc := range []bool{false, true} {
				name := fmt.Sprintf("key%d/label%q/crc%v", len(key), label, crc)
				c, err := newPacketCodec(key, label)
				if err != nil {
					t.Fatal(err)
				}
				pkt := c.seal(nil, msg, crc)
				if appended := c.seal([]byte("xyz"), msg, crc); string(appended[:3]) != "xyz" || len(appended) != 3+len(pkt) {
					t.Errorf("%s: seal did not append to dst: %q", name, appended)
				}
				got, ok := c.open(make([]byte, 0, 7), pkt)
				if !ok || !bytes.Equal(got, msg) {
					t.Fatalf("%s: open = %q, %v", name, got, ok)
				}
				for i := range pkt {
					bad := bytes.Clone(pkt)
					bad[i] ^= 0x10
					// Without key and CRC nothing guards the message
					// bytes (as in memberlist); with either, nothing
					// flipped may pass.
					kept := bytes.Clone(bad)
					if _, ok := c.open(nil, bad); ok && (key != nil || crc) {
						t.Errorf("%s: a flipped bit at %d of %d passed", name, i, len(pkt))
					}
					if !bytes.Equal(bad, kept) {
						t.Fatalf("%s: open changed the packet it refused (memberlist reads it next)", name)
					}
				}
				if key != nil {
					other, _ := newPacketCodec(bytes.Repeat([]byte{9}, len(key)), label)
					if _, ok := other.open(nil, pkt); ok {
						t.Errorf("%s: opened with another key", name)
					}
				}
				relabeled, _ := newPacketCodec(key, label+"x")
				if _, ok := relabeled.open(nil, pkt); ok {
					t.Errorf("%s: opened under another label", name)
				}
			}
		}
	}
	c, _ := newPacketCodec(nil, "")
	for _, pkt := range [][]byte{nil, {}, {0, 1, 2}, {mlHasCrcMsg, 0, 0, 0, 0}, {7, mlUserMsg}} {
		if _, ok := c.open(nil, pkt); ok {
			t.Errorf("open(%v) took a packet that is not a user message", pkt)
		}
	}
}

// TestPacketCodecSpeaksMemberlist: a stock memberlist (its own transport
// and packet code) reads what seal writes, and open reads what its
// SendBestEffort writes, with a key and a label as tether runs.
func TestPacketCodecSpeaksMemberlist(t *testing.T) {
	key := []byte("0123456789abcdef")
	const label = "tether"
	got := make(chan []byte, 4)
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "stock", "127.0.0.1", 0
	mc.SecretKey, mc.Label = key, label
	mc.Logger = log.New(io.Discard, "", 0)
	mc.Delegate = captureDelegate{got}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ml.Shutdown() }()
	stock := ml.LocalNode()

	c, err := newPacketCodec(key, label)
	if err != nil {
		t.Fatal(err)
	}
	// Ours to memberlist.
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: stock.Addr, Port: int(stock.Port)}
	for _, crc := range []bool{false, true} {
		want := []byte("ours, crc " + strconv.FormatBool(crc))
		if _, err := conn.WriteToUDP(c.seal(nil, want, crc), to); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if !bytes.Equal(m, want) {
				t.Fatalf("memberlist read %q, want %q", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("memberlist did not deliver our packet (crc %v)", crc)
		}
	}

	// Memberlist's to ours.
	me := conn.LocalAddr().(*net.UDPAddr)
	want := []byte("theirs")
	if err := ml.SendBestEffort(&memberlist.Node{Name: "us", Addr: me.IP, Port: uint16(me.Port), PMax: 5}, want); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := c.open(nil, buf[:n])
	if !ok || !bytes.Equal(m, want) {
		t.Fatalf("open(memberlist's packet) = %q, %v; want %q", m, ok, want)
	}
}

type captureDelegate struct{ got chan []byte }

func (d captureDelegate) NodeMeta(int) []byte { return nil }
func (d captureDelegate) NotifyMsg(b []byte) {
	select {
	case d.got <- bytes.Clone(b):
	default:
	}
}
func (d captureDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d captureDelegate) LocalState(bool) []byte          { return nil }
func (d captureDelegate) MergeRemoteState([]byte, bool)   {}

// FuzzPacketOpen: open never panics on any datagram (the UDP reader calls
// it on whatever arrives); with a key, whatever it takes went through
// GCM's authentication; whatever it takes seals and opens back the same.
func FuzzPacketOpen(f *testing.F) {
	key := []byte("0123456789abcdef")
	keyed, _ := newPacketCodec(key, "tether")
	open, _ := newPacketCodec(nil, "")
	f.Add(keyed.seal(nil, []byte("group"), true), false)
	f.Add(keyed.seal(nil, nil, false), false)
	f.Add(open.seal(nil, []byte("x"), true), true)
	f.Add([]byte{mlHasLabelMsg, 6, 't', 'e', 't', 'h', 'e', 'r', mlEncVersion}, false)
	f.Add([]byte{mlHasCrcMsg, 0, 0, 0, 0, mlUserMsg}, true)
	f.Fuzz(func(t *testing.T, pkt []byte, plain bool) {
		c := keyed
		if plain {
			c = open
		}
		kept := bytes.Clone(pkt)
		dst := make([]byte, 0, len(pkt))
		msg, ok := c.open(dst, pkt)
		if !bytes.Equal(pkt, kept) {
			t.Fatal("open changed the packet")
		}
		if !ok {
			return
		}
		if c.aead != nil && len(msg) > 0 {
			// Decrypted into dst, not in place: msg is not part of pkt.
			msg[0] ^= 1
			if !bytes.Equal(pkt, kept) {
				t.Fatal("a keyed packet opened in place")
			}
			msg[0] ^= 1
		}
		// What was taken seals back to a packet that opens to the same.
		again, ok2 := c.open(nil, c.seal(nil, msg, true))
		if !ok2 || !bytes.Equal(again, msg) {
			t.Fatalf("round trip of %q: %q, %v", msg, again, ok2)
		}
	})
}
