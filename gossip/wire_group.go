package gossip

import (
	"math"

	"github.com/tetherproxy/tether/stickydb"
)

// Group flags on the wire. Only append.
const (
	groupAnswer = 1 << 0 // sent in answer to a request, not pushed
	// groupStated: an empty group from its origin whose numbers state how
	// far the origin's events were pushed to this peer (a heartbeat);
	// stickydb.Group.Stated. Senders before it set no such bit, and their
	// heartbeats' numbers could name events of a new epoch that do not
	// exist, so without it they say nothing.
	groupStated = 1 << 1
)

// groupMeta is what a group message carries besides the group.
type groupMeta struct {
	flags uint64
	// made is when the oldest event of a pushed group was made, as far
	// as the sender knows (unix ms of its clock; 0 unknown): the receiver
	// measures replication lag with it.
	made int64
}

// encodeGroup encodes a change group (msgGroup), with groupStated when
// g.Stated (as it was decoded) or m says so. The caller owns the bytes.
func encodeGroup(g *stickydb.Group, m groupMeta) []byte {
	if g.Stated {
		m.flags |= groupStated
	}
	w := getWriter(msgGroup)
	defer putWriter(w)
	w.str(g.Sender)

	w.names.add(g.Origin)
	for i := range g.Events {
		b := &g.Events[i].Binding
		w.hosts.add(g.Events[i].Key.Host())
		if b.Replica != "" {
			w.names.add(b.Replica)
		}
		w.names.add(b.Origin)
	}
	w.collectVector(g.Vector)
	w.tables()

	w.uint(m.flags)
	w.int(m.made)
	w.uint(w.names.id(g.Origin))
	w.int(g.Epoch)
	w.uint(g.From)
	w.uint(uint64(len(g.Events)))
	w.vector(g.Vector)
	if len(g.Events) == 0 {
		return w.bytes()
	}
	prev := g.Events[0].Binding.Expiry
	w.int(prev)
	for i := range g.Events {
		ev := &g.Events[i]
		b := &ev.Binding
		w.uint(uint64(ev.Kind))
		w.ip(ev.Key.Client())
		w.uint(w.hosts.id(ev.Key.Host()))
		w.rep(b.Replica)
		w.int(b.Expiry - prev)
		prev = b.Expiry
		w.uint(uint64(b.Generation))
		w.uint(w.names.id(b.Origin))
	}
	return w.bytes()
}

// rep writes a replica as 0 (none: a tombstone) or its name index + 1.
func (w *writer) rep(replica string) {
	if replica == "" {
		w.uint(0)
		return
	}
	w.uint(w.names.id(replica) + 1)
}

// decodeGroup decodes the body of a msgGroup (after the 2-byte header).
func decodeGroup(body []byte, caps *Caps) (stickydb.Group, groupMeta, error) {
	return decodeGroupInterned(body, caps, nil)
}

// decodeGroupInterned is decodeGroup taking its names and hosts from strs.
func decodeGroupInterned(body []byte, caps *Caps, strs *internStrings) (stickydb.Group, groupMeta, error) {
	r := newReader(body, caps)
	r.strs = strs
	defer r.release()
	var g stickydb.Group
	g.Sender = r.str(maxNameLen, "sender")
	r.tables()
	var m groupMeta
	m.flags = r.uint(0xff, "flags")
	g.Stated = m.flags&groupStated != 0
	m.made = r.int(0, maxExpiry, "made")
	g.Origin = r.name("origin")
	g.Epoch = r.int(1, maxExpiry, "epoch")
	g.From = r.uint(maxSeq, "from")
	n := r.count(caps.MaxEvents, 0, "events")
	g.Vector = r.vector("vector")
	if r.err == nil && g.From == 0 {
		r.fail(ErrMalformed, "from: 0")
	}
	if r.err == nil && n > 0 && n*minEventBytes > r.left() {
		// Bounded by the bytes left only now that the vector is read.
		r.fail(ErrMalformed, "events: %d cannot fit in %d bytes", n, r.left())
	}
	if r.err != nil {
		return stickydb.Group{}, groupMeta{}, r.err
	}
	g.To = g.From + uint64(n) - 1
	if n == 0 {
		r.end()
		if r.err != nil {
			return stickydb.Group{}, groupMeta{}, r.err
		}
		return g, m, nil
	}
	exp := r.int(0, maxExpiry, "expiry base")
	g.Events = make([]stickydb.Event, n)
	for i := range g.Events {
		ev := &g.Events[i]
		ev.Seq = g.From + uint64(i)
		ev.Kind = stickydb.EventKind(r.uint(math.MaxUint8, "kind"))
		ip := r.ip("ip")
		hk := r.hostKey("host")
		ev.Binding.Replica = r.replica("replica")
		exp += r.int(-maxExpiry, maxExpiry, "expiry delta")
		ev.Binding.Expiry = exp
		ev.Binding.Generation = uint32(r.uint(math.MaxUint32, "generation"))
		ev.Binding.Origin = r.name("event origin")
		ev.Binding.Deleted = ev.Kind == stickydb.KindDelete
		if r.err != nil {
			return stickydb.Group{}, groupMeta{}, r.err
		}
		if exp < 0 || exp > maxExpiry {
			return stickydb.Group{}, groupMeta{}, wireErr(ErrMalformed, "expiry %d out of range", exp)
		}
		k, err := hk.WithClient(ip)
		if err != nil {
			return stickydb.Group{}, groupMeta{}, wireErr(ErrMalformed, "event %d key: %v", i, err)
		}
		ev.Key = k
	}
	r.end()
	if r.err != nil {
		return stickydb.Group{}, groupMeta{}, r.err
	}
	return g, m, nil
}
