package stickydb

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// FuzzReceive feeds the core change groups built from arbitrary bytes, as a
// peer holding the gossip key could send after the wire decoder accepted
// them: it must never panic, and a group it refuses must leave the vector
// as it was.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 3, 1, 1, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0xff, 2, 0, 0})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		db := newTestDB(t, "me", t0, func(c *Config) { c.MaxGroupEvents = 50 })
		db.SetPeers([]string{"o"}, t0)
		for len(data) >= 12 {
			g := Group{Origin: "o", Sender: "o"}
			g.Epoch = int64(binary.LittleEndian.Uint64(data))
			g.From = uint64(data[8])
			n := int(data[9] % 64)
			g.To = g.From + uint64(n) - 1
			if data[10]&1 == 1 {
				g.To += uint64(data[11]) // inconsistent on purpose
			}
			data = data[12:]
			for i := 0; i < n && len(data) > 0; i++ {
				b := data[0]
				data = data[1:]
				k, _ := NewKey(netip.AddrFrom4([4]byte{10, 0, b >> 4, b}), []string{"a", "b", "", "c"}[b%4])
				ev := Event{Seq: g.From + uint64(i), Kind: EventKind(b % 6), Key: k,
					Binding: Binding{Replica: []string{"r1", "r2", ""}[b%3], Expiry: t0.UnixMilli() + int64(b)*60_000,
						Generation: uint32(b % 3), Origin: []string{"o", "x"}[b%2], Deleted: b%5 == 0}}
				g.Events = append(g.Events, ev)
			}
			before := db.Vector()
			if _, err := db.Receive(g, t0); err != nil && !db.Vector().Equal(before) {
				t.Fatalf("refused group changed the vector: %v -> %v", before, db.Vector())
			}
			db.Tick(t0.Add(time.Second))
		}
	})
}
