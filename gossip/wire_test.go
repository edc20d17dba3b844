package gossip

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tetherproxy/tether/stickydb"
)

func defaultCaps() *Caps {
	c := DefaultConfig().Caps
	return &c
}

var epoch0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()

func mustKey(t testing.TB, ip, host string) stickydb.Key {
	t.Helper()
	k, err := stickydb.NewKey(netip.MustParseAddr(ip), host)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// genKey draws a valid key: IPv4 or IPv6 client, one of a few hosts or a
// random one.
func genKey(t *rapid.T) stickydb.Key {
	var a netip.Addr
	if rapid.Bool().Draw(t, "v6") {
		a = netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "ip6")))
	} else {
		a = netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "ip4")))
	}
	host := rapid.OneOf(rapid.SampledFrom([]string{"app.example", "shop.example", "[::1]"}),
		rapid.StringMatching(`[a-z0-9][a-z0-9.-]{0,40}`)).Draw(t, "host")
	k, err := stickydb.NewKey(a, host)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	return k
}

func genVector(t *rapid.T, label string) stickydb.Vector {
	if rapid.Bool().Draw(t, label+"nil") {
		return nil
	}
	v := stickydb.Vector{}
	for _, o := range rapid.SliceOfNDistinct(rapid.StringMatching(`node-[a-z0-9]{1,8}`), 0, 6, rapid.ID[string]).Draw(t, label+"origins") {
		np := rapid.IntRange(1, 3).Draw(t, label+"pairs")
		for i := range np {
			v.Advance(o, epoch0+int64(i)*1000, rapid.Uint64Range(0, 1<<40).Draw(t, label+"seq"))
		}
	}
	return v
}

func genGroup(t *rapid.T) stickydb.Group {
	origin := rapid.StringMatching(`node-[a-z0-9]{1,8}`).Draw(t, "origin")
	g := stickydb.Group{
		Origin: origin,
		Epoch:  epoch0 + rapid.Int64Range(0, 1e9).Draw(t, "epoch"),
		From:   rapid.Uint64Range(1, 1<<40).Draw(t, "from"),
		Sender: rapid.SampledFrom([]string{origin, "third"}).Draw(t, "sender"),
		Vector: genVector(t, "v"),
	}
	n := rapid.IntRange(0, 50).Draw(t, "n")
	exp := epoch0 + 30*60*1000
	for i := range n {
		kind := stickydb.EventKind(rapid.IntRange(1, 4).Draw(t, "kind"))
		b := stickydb.Binding{
			Expiry:     exp + rapid.Int64Range(-5000, 5000).Draw(t, "dexp"),
			Generation: rapid.Uint32().Draw(t, "gen"),
			Origin:     rapid.SampledFrom([]string{origin, "other"}).Draw(t, "borigin"),
			Deleted:    kind == stickydb.KindDelete,
		}
		if !b.Deleted {
			b.Replica = rapid.SampledFrom([]string{"a", "b", "backend-3"}).Draw(t, "replica")
		}
		g.Events = append(g.Events, stickydb.Event{Seq: g.From + uint64(i), Kind: kind, Key: genKey(t), Binding: b})
	}
	g.To = g.From + uint64(n) - 1
	return g
}

func TestGroupRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := genGroup(t)
		meta := groupMeta{flags: rapid.Uint64Range(0, 1).Draw(t, "flags"), made: rapid.Int64Range(0, maxExpiry).Draw(t, "made")}
		msg := encodeGroup(&g, meta)
		if msgType(msg[0]) != msgGroup || msg[1] != wireVersion {
			t.Fatalf("header % x", msg[:2])
		}
		got, gotMeta, err := decodeGroup(msg[headerLen:], defaultCaps())
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if gotMeta != meta {
			t.Fatalf("meta %+v, want %+v", gotMeta, meta)
		}
		if len(g.Events) == 0 {
			g.Events = nil
		}
		if !reflect.DeepEqual(got, g) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, g)
		}
	})
}

func TestChunkRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var recs []stickydb.Record
		for range rapid.IntRange(0, 40).Draw(t, "n") {
			b := stickydb.Binding{
				Expiry:     epoch0 + rapid.Int64Range(0, 1e7).Draw(t, "exp"),
				Generation: rapid.Uint32().Draw(t, "gen"),
				Origin:     rapid.SampledFrom([]string{"n1", "n2"}).Draw(t, "origin"),
				Deleted:    rapid.Bool().Draw(t, "del"),
			}
			if !b.Deleted {
				b.Replica = rapid.SampledFrom([]string{"a", "b"}).Draw(t, "rep")
			}
			recs = append(recs, stickydb.Record{Key: genKey(t), Binding: b})
		}
		id, idx := rapid.Uint64Range(0, 1<<62).Draw(t, "id"), rapid.Uint64Range(0, 1<<30).Draw(t, "idx")
		want := chunkMsg{Sender: "n1", Copy: id, Index: idx, Hint: rapid.Uint64Range(0, 1<<40).Draw(t, "hint"), Records: recs}
		msg := encodeChunk(&want)
		got, err := decodeChunk(msg[headerLen:], defaultCaps())
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestRequestEndStateRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		req := stickydb.Request{
			Full:   rapid.Bool().Draw(t, "full"),
			Reason: stickydb.Reason(rapid.IntRange(0, int(stickydb.ReasonInitial)).Draw(t, "reason")),
			Known:  genVector(t, "known"),
		}
		if rapid.Bool().Draw(t, "some") {
			req.Origins = rapid.SliceOfN(rapid.StringMatching(`n[0-9]{1,3}`), 0, 5).Draw(t, "origins")
		}
		msg := encodeRequest("me", &req)
		got, err := decodeRequest(msg[headerLen:], defaultCaps())
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		if !reflect.DeepEqual(got, requestMsg{Sender: "me", Req: req}) {
			t.Fatalf("request:\n got %+v\nwant %+v", got.Req, req)
		}

		v := genVector(t, "end")
		if v == nil {
			v = stickydb.Vector{}
		}
		end := encodeCopyEnd("me", 7, 9, 1000, v)
		gotEnd, err := decodeCopyEnd(end[headerLen:], defaultCaps())
		if err != nil {
			t.Fatalf("end: %v", err)
		}
		if !reflect.DeepEqual(gotEnd, copyEndMsg{Sender: "me", Copy: 7, Chunks: 9, Records: 1000, Vector: v}) {
			t.Fatalf("end: %+v", gotEnd)
		}

		st := encodeState("me", v)
		gotSt, err := decodeState(st[headerLen:], defaultCaps())
		if err != nil || gotSt.Sender != "me" || !reflect.DeepEqual(gotSt.Vector, v) {
			t.Fatalf("state: %+v %v", gotSt, err)
		}
	})
}

// sampleGroup is a realistic pushed group: n binds of distinct IPv4
// clients to one host, a few replicas, made within one push interval.
func sampleGroup(t testing.TB, n int, withVector bool) stickydb.Group {
	g := stickydb.Group{Origin: "node-1", Epoch: epoch0, From: 1001, Sender: "node-1"}
	exp := epoch0 + 30*60*1000
	for i := range n {
		k := mustKey(t, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "app.example.com")
		g.Events = append(g.Events, stickydb.Event{Seq: g.From + uint64(i), Kind: stickydb.KindBind, Key: k,
			Binding: stickydb.Binding{Replica: fmt.Sprintf("backend-%d", i%3), Expiry: exp + int64(i/10), Generation: 1, Origin: "node-1"}})
	}
	g.To = g.From + uint64(n) - 1
	if withVector {
		g.Vector = stickydb.Vector{"node-1": {{Epoch: epoch0, Seq: g.To}}, "node-2": {{Epoch: epoch0 + 7, Seq: 123456}}, "node-3": {{Epoch: epoch0 + 99, Seq: 42}}}
	}
	return g
}

func TestWireCostPerBinding(t *testing.T) {
	for _, n := range []int{1, 10, 100, 1000} {
		g := sampleGroup(t, n, true)
		msg := encodeGroup(&g, groupMeta{})
		per := float64(len(msg)) / float64(n)
		t.Logf("%4d binds: %6d bytes, %.1f B/binding (+ memberlist's ~50 B per message)", n, len(msg), per)
		if n >= 100 && per > 40 {
			t.Errorf("%d binds: %.1f B per binding, want <= 40", n, per)
		}
	}
}

// TestDecodeRejects feeds hostile and broken bodies to every decoder: each
// must return an error wrapping ErrMalformed or ErrOverCap, quickly and
// without allocating what a length prefix claims.
func TestDecodeRejects(t *testing.T) {
	good := sampleGroup(t, 3, true)
	goodMsg := encodeGroup(&good, groupMeta{})
	caps := defaultCaps()
	tests := []struct {
		name string
		typ  msgType
		body []byte
		want error
	}{
		{"empty", msgGroup, nil, ErrMalformed},
		{"truncated", msgGroup, goodMsg[headerLen : len(goodMsg)-5], ErrMalformed},
		{"trailing byte", msgGroup, append(append([]byte(nil), goodMsg[headerLen:]...), 0), ErrMalformed},
		// sender "a", then a names table claiming 2^32-1 entries (the 5-byte uint32 header)
		{"huge names count", msgGroup, []byte{0xa1, 'a', 0xce, 0xff, 0xff, 0xff, 0xff}, ErrOverCap},
		{"names count past the bytes", msgGroup, []byte{0xa1, 'a', 0xcd, 0x0f, 0xff, 0xa1, 'x'}, ErrMalformed},
		{"str32 claiming 4 GB", msgGroup, []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, ErrMalformed},
		{"array32 where a count goes", msgGroup, []byte{0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"negative count", msgGroup, []byte{0xa1, 'a', 0xff}, ErrMalformed},
		{"events over cap", msgGroup, groupWithCount(caps.MaxEvents + 1), ErrOverCap},
		{"events past the bytes", msgGroup, groupWithCount(1000), ErrMalformed},
		{"chunk records huge", msgCopyChunk, []byte{0xa1, 'a', 1, 0, 0, 0, 0, 0xce, 0xff, 0xff, 0xff, 0xff}, ErrOverCap},
		{"request origins huge", msgRequest, []byte{0xa1, 'a', 0, 0, 0, 0, 0xce, 0x7f, 0xff, 0xff, 0xff}, ErrOverCap},
		{"state vector huge", msgState, []byte{0xa1, 'a', 1, 0xa1, 'b', 0, 0xce, 0x7f, 0xff, 0xff, 0xff}, ErrOverCap},
		{"index out of range", msgState, []byte{0xa1, 'a', 1, 0xa1, 'b', 0, 1, 5, 1, 1, 1}, ErrMalformed},
		{"origin without pairs", msgState, []byte{0xa1, 'a', 1, 0xa1, 'b', 0, 1, 0, 0, 1, 1}, ErrMalformed},
		{"empty sender", msgState, []byte{0xa0, 0, 0, 0xc0}, ErrMalformed},
		{"ip of 5 bytes", msgCopyChunk, []byte{0xa1, 'a', 1, 0, 0, 1, 0xa1, 'o', 1, 0xa1, 'h', 1, 0x05, 0xc4, 5, 1, 2, 3, 4, 5, 0, 0, 0, 1, 0}, ErrMalformed},
		{"invalid host", msgCopyChunk, []byte{0xa1, 'a', 1, 0, 0, 1, 0xa1, 'o', 1, 0xa1, 'H', 1, 0x05, 0xc4, 4, 1, 2, 3, 4, 0, 0, 0, 1, 0}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			bytes := allocBytes(func() { _, err = decodeBody(tt.typ, tt.body, caps) })
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if bytes > 64<<10 {
				t.Errorf("%d bytes allocated to reject a %d-byte message", bytes, len(tt.body))
			}
		})
	}
}

// allocBytes returns the bytes fn allocates (averaged over a few runs).
func allocBytes(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	for range 4 {
		fn()
	}
	runtime.ReadMemStats(&b)
	return (b.TotalAlloc - a.TotalAlloc) / 4
}

// groupWithCount is a group body up to its event count, then little else.
func groupWithCount(n int) []byte {
	w := getWriter(msgGroup)
	defer putWriter(w)
	w.str("a")
	w.names.add("a")
	w.tables()
	w.uint(0) // flags
	w.int(0)  // made
	w.uint(0) // origin
	w.int(epoch0)
	w.uint(1)
	w.uint(uint64(n))
	w.nil()
	w.int(epoch0)
	return w.bytes()[headerLen:]
}

// decodeBody decodes a body of any type (tests and fuzzing).
func decodeBody(t msgType, body []byte, caps *Caps) (any, error) {
	switch t {
	case msgGroup:
		g, _, err := decodeGroup(body, caps)
		return g, err
	case msgRequest:
		return decodeRequest(body, caps)
	case msgCopyChunk:
		return decodeChunk(body, caps)
	case msgCopyEnd:
		return decodeCopyEnd(body, caps)
	case msgState:
		return decodeState(body, caps)
	case msgTicketKeys:
		return decodeTicketKeys(body, caps)
	}
	return nil, ErrType
}
