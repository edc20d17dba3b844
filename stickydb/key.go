package stickydb

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

const (
	maxHostLen = 253 // a DNS name; an IPv6 literal in brackets fits too
	maxNameLen = 255 // replica and node names
)

// Key is the request identifier of the reference text: the client's IP
// address and the application, here the request's Host. Build one with
// NewKey; the zero Key is not valid. Key is comparable and small, so it is
// the map key of the binding table as it is.
type Key struct {
	ip   [16]byte // IPv4 kept IPv4-mapped, so 1.2.3.4 and ::ffff:1.2.3.4 are one client
	host string   // lower case, no port
}

// NewKey checks and normalises a request identifier. The host must already be
// lower case without a port (the proxy parses the Host header); an IPv4-mapped
// IPv6 address is folded to IPv4 and a zone is dropped.
func NewKey(client netip.Addr, host string) (Key, error) {
	if !client.IsValid() || !validHost(host) {
		return Key{}, ErrInvalidKey
	}
	return Key{ip: client.Unmap().WithZone("").As16(), host: host}, nil
}

// WithClient is NewKey(client, k.Host()) for a k that came from NewKey,
// without checking the host again: a message's decoder checks each host
// of its table once, not once per event. A zero k is refused.
func (k Key) WithClient(client netip.Addr) (Key, error) {
	if !k.Valid() || !client.IsValid() {
		return Key{}, ErrInvalidKey
	}
	k.ip = client.Unmap().WithZone("").As16()
	return k, nil
}

// Client returns the client address (IPv4 when it is one).
func (k Key) Client() netip.Addr { return netip.AddrFrom16(k.ip).Unmap() }

// Host returns the lower-case host.
func (k Key) Host() string { return k.host }

// Valid reports whether k came from NewKey.
func (k Key) Valid() bool { return k.host != "" }

// String renders "client host", for logs and tests.
func (k Key) String() string { return k.Client().String() + " " + k.host }

// Hash is a deterministic 64-bit hash of the key, the same on every node and
// every platform. It seeds rendezvous hashing and picks the shard: being
// the same everywhere, a full copy or a snapshot, walked shard by shard,
// arrives shard by shard, and the receiver fills one shard's map at a time
// instead of touching the whole table for every record. It reads the host
// 8 bytes at a time with one multiply each, then avalanches with mix64.
func (k Key) Hash() uint64 {
	const m = 0x9e3779b97f4a7c15
	s := k.host
	h := uint64(len(s)) * m
	for len(s) >= 8 {
		w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h = (bits.RotateLeft64(h, 23) ^ w) * m
		s = s[8:]
	}
	var w uint64
	for i := len(s) - 1; i >= 0; i-- {
		w = w<<8 | uint64(s[i])
	}
	h = (bits.RotateLeft64(h, 23) ^ w) * m
	h = (bits.RotateLeft64(h, 23) ^ binary.LittleEndian.Uint64(k.ip[:8])) * m
	h = (bits.RotateLeft64(h, 23) ^ binary.LittleEndian.Uint64(k.ip[8:])) * m
	return mix64(h)
}

// validHost accepts what a normalised Host can be: a DNS name or an IP
// literal, lower case, without a port. It never allocates.
func validHost(h string) bool {
	if len(h) == 0 || len(h) > maxHostLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

func validName(s string) bool { return len(s) > 0 && len(s) <= maxNameLen }

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func fnv1a(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// mix64 is the splitmix64 finaliser: every input bit flips about half the
// output bits, which FNV alone does not give in the high bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
