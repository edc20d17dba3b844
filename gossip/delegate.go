package gossip

import (
	"github.com/hashicorp/memberlist"
)

// delegate is the thin memberlist adapter: it checks lengths and the
// header, decodes, and hands the result to the node. No policy here.
//
// memberlist calls NotifyMsg on its single UDP handler goroutine (for
// best-effort messages) and on one goroutine per TCP connection (reliable
// ones), concurrently and in any order; buf is only valid during the call.
// Nothing here blocks: heavy work is queued to the node's workers.
type delegate struct{ n *Node }

var _ memberlist.Delegate = (*delegate)(nil)

// NodeMeta is Config.Meta (checked against MetaMaxSize by validate).
func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.n.cfg.Meta) > limit {
		return nil
	}
	return d.n.cfg.Meta
}

// GetBroadcasts: groups go peer to peer, not through memberlist's
// transmit-limited queue (it does not reach every node).
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState is our push/pull state: our vector, not the database.
func (d *delegate) LocalState(join bool) []byte {
	return encodeState(d.n.self, d.n.db.Vector())
}

// MergeRemoteState takes a peer's vector from push/pull (anti-entropy).
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	n := d.n
	t, body, err := header(buf, n.cfg.Caps.MaxStateBytes)
	if err == nil && t != msgState {
		err = wireErr(ErrType, "%v in push/pull state", t)
	}
	if err != nil {
		n.dropped(t, body, err)
		return
	}
	m, err := decodeState(body, &n.cfg.Caps)
	if err != nil {
		n.dropped(t, body, err)
		return
	}
	n.onState(m)
}

// NotifyMsg receives tether's messages.
func (d *delegate) NotifyMsg(buf []byte) {
	n := d.n
	caps := &n.cfg.Caps
	t, body, err := header(buf, caps.MaxMessageBytes)
	if err != nil {
		n.dropped(t, body, err)
		return
	}
	switch t {
	case msgGroup:
		g, meta, err := decodeGroupInterned(body, caps, &n.strs)
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.deliverGroup(g, meta)
	case msgRequest:
		m, err := decodeRequest(body, caps)
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.onRequest(m)
	case msgCopyChunk:
		m, err := decodeChunk(body, caps)
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.onChunk(m)
	case msgCopyEnd:
		m, err := decodeCopyEnd(body, caps)
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.onCopyEnd(m)
	case msgDrain:
		m, err := decodeDrains(body, caps)
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.onDrains(m)
	case msgCountQuery:
		m, err := decodeCountQuery(body, caps)
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.onCountQuery(m)
	case msgCountAnswer:
		m, err := decodeCountAnswer(body, caps)
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.onCountAnswer(m)
	case msgTicketKeys:
		m, err := decodeTicketKeys(body, caps)
		if err == nil {
			err = n.checkTicketKeys(m)
		}
		if err != nil {
			n.dropped(t, body, err)
			return
		}
		n.onTicketKeys(m)
	default:
		n.dropped(t, body, wireErr(ErrType, "%v", t))
	}
}

// header splits a message into its type and body, checking the length and
// the version.
func header(buf []byte, maxLen int) (msgType, []byte, error) {
	if len(buf) < headerLen {
		return 0, nil, wireErr(ErrMalformed, "%d bytes, shorter than the header", len(buf))
	}
	t, body := msgType(buf[0]), buf[headerLen:]
	if len(buf) > maxLen {
		return t, body, wireErr(ErrOverCap, "%d bytes over %d", len(buf), maxLen)
	}
	if buf[1] != wireVersion {
		return t, body, wireErr(ErrVersion, "version %d", buf[1])
	}
	return t, body, nil
}
