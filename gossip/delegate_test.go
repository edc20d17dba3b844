package gossip

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tetherproxy/tether/stickydb"
)

// unstartedNode is a node whose delegate can be fed directly: decoding and
// counting need no network.
func unstartedNode(t *testing.T, name string) *Node {
	t.Helper()
	db, err := stickydb.New(stickydb.DefaultConfig(name), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Caps.MaxMessageBytes = 64 << 10
	n, err := New(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func withHeader(t msgType, version byte, body []byte) []byte {
	return append([]byte{byte(t), version}, body...)
}

// TestNotifyMsgDropsBadMessages: every malformed, truncated, oversized,
// huge-count, wrong-version or unknown-type message is dropped and counted
// against the sender it claims, and never panics.
func TestNotifyMsgDropsBadMessages(t *testing.T) {
	g := sampleGroup(t, 20, true)
	g.Sender, g.Origin, g.From, g.To = "peer", "peer", 1, 20
	for i := range g.Events {
		g.Events[i].Seq = uint64(i + 1)
		g.Events[i].Binding.Origin = "peer"
		g.Events[i].Binding.Expiry = time.Now().Add(time.Minute).UnixMilli()
	}
	good := encodeGroup(&g, groupMeta{})
	tests := []struct {
		name       string
		msg        []byte
		decode     uint64 // DecodeErrors expected
		caps       uint64 // CapBreaches expected
		wantSender string
	}{
		{"empty", nil, 1, 0, ""},
		{"one byte", []byte{1}, 1, 0, ""},
		{"truncated group", good[:len(good)/2], 1, 0, "peer"},
		{"wrong version", withHeader(msgGroup, 9, good[headerLen:]), 1, 0, "peer"},
		{"unknown type", withHeader(200, wireVersion, good[headerLen:]), 1, 0, "peer"},
		{"state via NotifyMsg", withHeader(msgState, wireVersion, good[headerLen:]), 1, 0, "peer"},
		{"oversized", withHeader(msgGroup, wireVersion, make([]byte, 70<<10)), 0, 1, ""},
		{"huge names count", withHeader(msgGroup, wireVersion, []byte{0xa4, 'p', 'e', 'e', 'r', 0xce, 0xff, 0xff, 0xff, 0xff}), 0, 1, "peer"},
		{"huge str length", withHeader(msgRequest, wireVersion, []byte{0xa4, 'p', 'e', 'e', 'r', 1, 0xdb, 0xff, 0xff, 0xff, 0xf0}), 1, 0, "peer"},
		{"events over cap", withHeader(msgGroup, wireVersion, groupWithCount(1<<20)), 0, 1, "a"},
		{"bad chunk", withHeader(msgCopyChunk, wireVersion, []byte{0xa4, 'p', 'e', 'e', 'r', 0xff}), 1, 0, "peer"},
		{"bad copy end", withHeader(msgCopyEnd, wireVersion, []byte{0xa4, 'p', 'e', 'e', 'r', 1, 1, 1, 0, 0, 0xc0}), 1, 0, "peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := unstartedNode(t, "me")
			d := &delegate{n: n}
			d.NotifyMsg(tt.msg)
			st := n.Stats()
			if st.DecodeErrors != tt.decode || st.CapBreaches != tt.caps {
				t.Fatalf("decode %d cap %d, want %d %d", st.DecodeErrors, st.CapBreaches, tt.decode, tt.caps)
			}
			if len(st.Senders) != 1 || st.Senders[0].Name != tt.wantSender {
				t.Fatalf("attributed to %+v, want %q", st.Senders, tt.wantSender)
			}
			if n.DB().Len() != 0 {
				t.Fatal("a dropped message changed the database")
			}
		})
	}
	t.Run("the good one is taken", func(t *testing.T) {
		n := unstartedNode(t, "me")
		(&delegate{n: n}).NotifyMsg(good)
		if st := n.Stats(); st.DecodeErrors+st.CapBreaches != 0 || n.DB().Len() != 20 {
			t.Fatalf("good group: %+v, %d bindings", st, n.DB().Len())
		}
	})
	t.Run("state of another type", func(t *testing.T) {
		n := unstartedNode(t, "me")
		(&delegate{n: n}).MergeRemoteState(good, true)
		if st := n.Stats(); st.DecodeErrors != 1 {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("core refusal is counted", func(t *testing.T) {
		n := unstartedNode(t, "me")
		bad := g
		bad.Events = append([]stickydb.Event(nil), g.Events...)
		bad.Events[3].Binding.Origin = "someone-else" // a bind in another node's name
		(&delegate{n: n}).NotifyMsg(encodeGroup(&bad, groupMeta{}))
		st := n.Stats()
		if st.CoreRejects != 1 || st.Senders[0].CapBreaches != 1 || n.DB().Len() != 0 {
			t.Fatalf("%+v", st)
		}
	})
}

// TestNotifyMsgGarbage throws random bytes and random corruptions of good
// messages at the delegate: nothing may panic, and every drop is counted.
func TestNotifyMsgGarbage(t *testing.T) {
	n := unstartedNode(t, "me")
	d := &delegate{n: n}
	g := sampleGroup(t, 30, true)
	msgs := [][]byte{encodeGroup(&g, groupMeta{}), encodeChunk(&chunkMsg{Sender: "x", Copy: 1, Index: 2, Records: []stickydb.Record{{Key: g.Events[0].Key, Binding: g.Events[0].Binding}}}),
		encodeRequest("x", &stickydb.Request{Known: g.Vector}), encodeCopyEnd("x", 1, 1, 1, g.Vector), encodeState("x", g.Vector)}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var b []byte
		if i%4 == 0 {
			b = make([]byte, rng.IntN(64))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if len(b) > 1 {
				b[1] = wireVersion
			}
		} else {
			b = append([]byte(nil), msgs[rng.IntN(len(msgs))]...)
			for range 1 + rng.IntN(4) {
				switch rng.IntN(3) {
				case 0:
					b[rng.IntN(len(b))] = byte(rng.Uint32())
				case 1:
					b = b[:rng.IntN(len(b))]
				case 2:
					b = append(b, byte(rng.Uint32()))
				}
				if len(b) == 0 {
					break
				}
			}
		}
		d.NotifyMsg(b)
		d.MergeRemoteState(b, false)
	}
	if st := n.Stats(); st.DecodeErrors+st.CapBreaches == 0 {
		t.Fatalf("nothing was dropped: %+v", st)
	}
}

// TestBadMessagesOverTheNetwork: a member holding the key sends broken
// messages over UDP and TCP; the receiver drops and counts them against it
// and keeps replicating.
func TestBadMessagesOverTheNetwork(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{key: []byte("0123456789abcdef"), node: func(i int, cfg *Config) {
		cfg.Caps.MaxMessageBytes = 16 << 10
	}})
	from, to := c.nodes[1], c.nodes[0]
	g := sampleGroup(t, 20, false)
	g.Sender = "n1"
	good := encodeGroup(&g, groupMeta{})
	named := []byte{0xa2, 'n', '1'}
	bad := [][]byte{
		good[:len(good)/2],
		withHeader(msgGroup, 7, good[headerLen:]),
		withHeader(99, wireVersion, named),
		withHeader(msgGroup, wireVersion, append(named, 0xce, 0xff, 0xff, 0xff, 0xff)),
	}
	addr := memberlist.Address{Addr: to.Addr(), Name: to.Name()}
	for _, m := range bad {
		if err := from.ml.SendToAddress(addr, m); err != nil {
			t.Fatal(err)
		}
	}
	node := to.ml.LocalNode()
	if err := from.ml.SendReliable(node, withHeader(msgGroup, wireVersion, append(named, make([]byte, 20<<10)...))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		st := to.Stats()
		return st.DecodeErrors >= 3 && st.CapBreaches >= 2
	}, func() string { return "drops not counted" })
	k := testKey(t, 4242)
	if _, _, err := from.Store().BindIfAbsent(k, "backend-a", time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { _, ok := to.DB().Lookup(k); return ok }, func() string { return "replication stopped" })
	var n1 SenderStats
	for _, s := range to.Stats().Senders {
		if s.Name == "n1" {
			n1 = s
		}
	}
	if n1.DecodeErrors < 3 || n1.CapBreaches < 2 {
		t.Fatalf("not attributed to n1: %+v", to.Stats().Senders)
	}
}
