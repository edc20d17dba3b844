package gossip

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"sync"
)

// Our datagrams (change groups, heartbeats, requests) bypass memberlist on
// both ends, in memberlist's own packet format, so that a peer running
// memberlist's path reads ours and we read its:
//
//	[244 len label]            the label header, when Config.Label is set
//	[1 nonce(12)] seal(...)    AES-GCM with the gossip key (version 1: no
//	                           padding), the label as additional data,
//	                           when Config.Key is set; sealed is:
//	[12 crc32(4)]              a CRC of the rest, for peers of protocol 5+
//	[8] message                memberlist's userMsg, then our message
//
// Why: memberlist builds a new AES cipher and GCM for every packet it
// seals or opens, and a packet it receives crosses two of its goroutines
// and a handoff queue before our delegate sees it. Profiled at 50 nodes
// in one process, that was about a fifth of the CPU spent per message
// (~37 µs all in); bypassing it took 12-16 % off the CPU per node at 25
// nodes (bench/SCALE.md, "Datagrams past memberlist"). Here the GCM is built once; sending writes straight to the transport,
// and the transport's UDP reader hands a packet of ours to the delegate
// itself. Anything else (memberlist's own messages, a compound or
// compressed packet, another label, a version-0 or unauthenticated
// packet) goes to memberlist as before, which reads and judges it.
const (
	mlUserMsg     = 8   // memberlist's userMsg
	mlHasCrcMsg   = 12  // memberlist's hasCrcMsg
	mlHasLabelMsg = 244 // memberlist's hasLabelMsg
	mlEncVersion  = 1   // memberlist's encryption version 1: AES-GCM, no padding
	gcmNonceSize  = 12
)

// packetCodec seals and opens our datagrams. It is safe for concurrent use
// (cipher.AEAD is).
type packetCodec struct {
	label []byte
	aead  cipher.AEAD // nil without a key
	bufs  sync.Pool   // *[]byte: datagrams being sealed or opened
}

// buf returns a buffer for one datagram; give it back with put once the
// datagram is written or its message handled. Sending and receiving
// allocated one per datagram: at 50 in-process nodes a tenth of all
// allocation, and with it of the garbage collector's work.
func (c *packetCodec) buf() *[]byte {
	if b, ok := c.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 2048)
	return &b
}

func (c *packetCodec) put(b *[]byte) {
	if cap(*b) <= 1<<16 { // a reliable-sized message's buffer is not kept
		c.bufs.Put(b)
	}
}

func newPacketCodec(key []byte, label string) (*packetCodec, error) {
	c := &packetCodec{label: []byte(label)}
	if key != nil {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		if c.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// seal appends to dst the datagram memberlist's SendBestEffort would send
// for msg (withCRC for a peer that speaks protocol 5 or later).
func (c *packetCodec) seal(dst, msg []byte, withCRC bool) []byte {
	plain := 1 + len(msg)
	if withCRC {
		plain += 5
	}
	size := plain
	if len(c.label) > 0 {
		size += 2 + len(c.label)
	}
	if c.aead != nil {
		size += 1 + gcmNonceSize + c.aead.Overhead()
	}
	out := slices.Grow(dst, size)
	if len(c.label) > 0 {
		out = append(out, mlHasLabelMsg, byte(len(c.label)))
		out = append(out, c.label...)
	}
	var nonce []byte
	if c.aead != nil {
		out = append(out, mlEncVersion)
		nonce = out[len(out) : len(out)+gcmNonceSize]
		_, _ = rand.Read(nonce) // never fails (crypto/rand)
		out = out[:len(out)+gcmNonceSize]
	}
	head := len(out)
	if withCRC {
		out = append(out, mlHasCrcMsg, 0, 0, 0, 0)
	}
	out = append(out, mlUserMsg)
	out = append(out, msg...)
	if withCRC {
		binary.BigEndian.PutUint32(out[head+1:], crc32.ChecksumIEEE(out[head+5:]))
	}
	if c.aead != nil {
		// Sealed in place: the output starts where the plaintext does.
		out = c.aead.Seal(out[:head], nonce, out[head:], c.label)
	}
	return out
}

// open returns our message in pkt, or ok false when pkt is not a single
// user message under our label and key: memberlist must handle it. A
// sealed message is decrypted into dst (appended), so pkt is left as it
// came for memberlist when it is not ours; a plain one is part of pkt.
func (c *packetCodec) open(dst, pkt []byte) (msg []byte, ok bool) {
	if len(c.label) > 0 {
		n := 2 + len(c.label)
		if len(pkt) < n || pkt[0] != mlHasLabelMsg || int(pkt[1]) != len(c.label) || !bytes.Equal(pkt[2:n], c.label) {
			return nil, false
		}
		pkt = pkt[n:]
	} else if len(pkt) > 0 && pkt[0] == mlHasLabelMsg {
		return nil, false
	}
	plain := pkt
	if c.aead != nil {
		if len(pkt) < 1+gcmNonceSize+c.aead.Overhead() || pkt[0] != mlEncVersion {
			return nil, false
		}
		var err error
		if plain, err = c.aead.Open(dst, pkt[1:1+gcmNonceSize], pkt[1+gcmNonceSize:], c.label); err != nil {
			return nil, false
		}
	}
	if len(plain) >= 5 && plain[0] == mlHasCrcMsg {
		if crc32.ChecksumIEEE(plain[5:]) != binary.BigEndian.Uint32(plain[1:5]) {
			return nil, false
		}
		plain = plain[5:]
	}
	if len(plain) < 1 || plain[0] != mlUserMsg {
		return nil, false
	}
	return plain[1:], true
}

// onPacket takes a datagram of ours from the transport's reader and hands
// its message to the delegate, as memberlist would.
func (n *Node) onPacket(pkt []byte) bool {
	b := n.codec.buf()
	defer n.codec.put(b)
	msg, ok := n.codec.open((*b)[:0], pkt)
	if !ok {
		return false
	}
	// The delegate copies what it keeps (memberlist's contract for
	// NotifyMsg): msg, in pkt or b, is reused once this returns.
	n.delegate.NotifyMsg(msg)
	if n.codec.aead != nil && cap(msg) > cap(*b) {
		*b = msg[:0] // Open grew it: keep the larger buffer (unkeyed, msg is part of pkt)
	}
	return true
}
