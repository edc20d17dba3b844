package gossip

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// FuzzDecode feeds arbitrary bytes to the decoders and to the delegate.
// Nothing may panic; a message that decodes must re-encode to one that
// decodes to the same value. The committed corpus (testdata/fuzz) holds
// hostile headers: 5-byte msgpack headers claiming 4 billion elements or
// bytes, wrong versions and types, truncations.
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 30s ./gossip/
func FuzzDecode(f *testing.F) {
	k, _ := stickydb.NewKey(netip.AddrFrom16([16]byte{15: 1}), "app.example")
	exp := time.Now().Add(time.Minute).UnixMilli()
	g := stickydb.Group{Origin: "n1", Epoch: epoch0, From: 1, To: 2, Sender: "n1",
		Vector: stickydb.Vector{"n1": {{Epoch: epoch0, Seq: 2}}},
		Events: []stickydb.Event{
			{Seq: 1, Kind: stickydb.KindBind, Key: k, Binding: stickydb.Binding{Replica: "a", Expiry: exp, Generation: 1, Origin: "n1"}},
			{Seq: 2, Kind: stickydb.KindDelete, Key: k, Binding: stickydb.Binding{Expiry: exp + 2000, Generation: 2, Origin: "n1", Deleted: true}},
		}}
	f.Add(encodeGroup(&g, groupMeta{}))
	f.Add(encodeGroup(&g, groupMeta{flags: groupAnswer}))
	f.Add(encodeRequest("n2", &stickydb.Request{Origins: []string{"n1"}, Known: g.Vector, Reason: stickydb.ReasonGap}))
	f.Add(encodeChunk(&chunkMsg{Sender: "n1", Copy: 5, Hint: 100, Records: []stickydb.Record{{Key: k, Binding: g.Events[0].Binding}}}))
	f.Add(encodeCopyEnd("n1", 5, 1, 1, g.Vector))
	f.Add(encodeState("n1", g.Vector))
	f.Add(encodeTicketKeys("n1", []TicketKey{{Secret: [32]byte{1}, Created: exp, Origin: "n1"}}))

	n := unstartedNodeF(f)
	d := &delegate{n: n}
	caps := &n.cfg.Caps
	f.Fuzz(func(t *testing.T, msg []byte) {
		d.NotifyMsg(msg)
		d.MergeRemoteState(msg, false)
		typ, body, err := header(msg, caps.MaxMessageBytes)
		if err != nil {
			return
		}
		v, err := decodeBody(typ, body, caps)
		if err != nil {
			return
		}
		var again []byte
		switch m := v.(type) {
		case stickydb.Group:
			again = encodeGroup(&m, groupMeta{})
		case requestMsg:
			again = encodeRequest(m.Sender, &m.Req)
		case chunkMsg:
			again = encodeChunk(&m)
		case copyEndMsg:
			again = encodeCopyEnd(m.Sender, m.Copy, m.Chunks, m.Records, m.Vector)
		case stateMsg:
			again = encodeState(m.Sender, m.Vector)
		case ticketMsg:
			again = encodeTicketKeys(m.Sender, m.Keys)
		}
		v2, err := decodeBody(typ, again[headerLen:], caps)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", v, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", v, v2)
		}
	})
}

func unstartedNodeF(f *testing.F) *Node {
	db, err := stickydb.New(stickydb.DefaultConfig("me"), time.Now())
	if err != nil {
		f.Fatal(err)
	}
	n, err := New(DefaultConfig(), db)
	if err != nil {
		f.Fatal(err)
	}
	return n
}
