package recovery

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"

	"github.com/tetherproxy/tether/stickydb"
	"github.com/vmihailenco/msgpack/v5"
)

// Record types: the first element of every frame body, in logs and
// snapshots alike. The values are on disk: only append.
const (
	typeSegHeader = 1  // first frame of a log segment
	typeEvent     = 2  // one own event
	typeMark      = 3  // a liveness or clean-close mark
	typeChunk     = 16 // a batch of snapshot records
	typeTrailer   = 17 // last frame of a snapshot: its meta and vector
)

// Mark reasons. Only append.
const (
	markAlive = 1 // written every FlushInterval by Run: the node was up then
	markClose = 2 // written by Close after the last flush
)

// Field counts this version writes. A reader accepts more (a newer writer
// appended fields) and skips them; fewer is corrupt.
const (
	segHeaderFields = 6
	eventFields     = 11
	markFields      = 3
	chunkFields     = 4
	recordFields    = 7
	trailerFields   = 9
)

// segHeader opens a log segment: whose it is, and where the own numbering
// stands when the segment begins.
type segHeader struct {
	Node    string
	Index   uint64 // the segment's number, as in its file name
	Epoch   int64  // every event in the segment is of this epoch
	Base    uint64 // own events of Epoch up to Base are accounted for before this segment
	Created int64  // unix ms
}

// frameBuf builds frames in one growing buffer, with a msgpack encoder
// writing the bodies straight into it. A bytes.Buffer never fails a write,
// so the encoder's errors are always nil and are not checked.
type frameBuf struct {
	buf   bytes.Buffer
	enc   *msgpack.Encoder
	start int
	addr  [16]byte
}

var zeroHeader [frameHeader]byte

func newFrameBuf() *frameBuf {
	fb := &frameBuf{}
	fb.enc = msgpack.NewEncoder(&fb.buf)
	return fb
}

func (fb *frameBuf) begin() {
	fb.start = fb.buf.Len()
	fb.buf.Write(zeroHeader[:])
}

func (fb *frameBuf) end() { sealFrame(fb.buf.Bytes(), fb.start) }

func (fb *frameBuf) reset() { fb.buf.Reset() }

func (fb *frameBuf) bytes() []byte { return fb.buf.Bytes() }

func (fb *frameBuf) header(h segHeader) {
	fb.begin()
	e := fb.enc
	_ = e.EncodeArrayLen(segHeaderFields)
	_ = e.EncodeUint(typeSegHeader)
	_ = e.EncodeString(h.Node)
	_ = e.EncodeUint(h.Index)
	_ = e.EncodeInt(h.Epoch)
	_ = e.EncodeUint(h.Base)
	_ = e.EncodeInt(h.Created)
	fb.end()
}

// event writes one own event. The origin is nil when it is the node
// itself, which it is for every kind but a refresh of another's binding.
func (fb *frameBuf) event(node string, epoch int64, ev *stickydb.Event) {
	fb.begin()
	e := fb.enc
	_ = e.EncodeArrayLen(eventFields)
	_ = e.EncodeUint(typeEvent)
	_ = e.EncodeInt(epoch)
	_ = e.EncodeUint(ev.Seq)
	_ = e.EncodeUint(uint64(ev.Kind))
	encodeAddr(e, ev.Key.Client(), &fb.addr)
	_ = e.EncodeString(ev.Key.Host())
	encodeNameOrNil(e, ev.Binding.Replica, "")
	_ = e.EncodeInt(ev.Binding.Expiry)
	_ = e.EncodeUint(uint64(ev.Binding.Generation))
	encodeNameOrNil(e, ev.Binding.Origin, node)
	_ = e.EncodeBool(ev.Binding.Deleted)
	fb.end()
}

func (fb *frameBuf) mark(at int64, reason uint8) {
	fb.begin()
	e := fb.enc
	_ = e.EncodeArrayLen(markFields)
	_ = e.EncodeUint(typeMark)
	_ = e.EncodeInt(at)
	_ = e.EncodeUint(uint64(reason))
	fb.end()
}

// encodeAddr writes 4 bytes for IPv4, 16 for IPv6. The bytes go through
// the caller's scratch array: a local one would escape to the heap through
// the encoder's writer interface, one allocation per record.
func encodeAddr(e *msgpack.Encoder, a netip.Addr, scratch *[16]byte) {
	if a.Is4() {
		b := a.As4()
		copy(scratch[:], b[:])
		_ = e.EncodeBytes(scratch[:4])
		return
	}
	*scratch = a.As16()
	_ = e.EncodeBytes(scratch[:])
}

func encodeNameOrNil(e *msgpack.Encoder, name, implied string) {
	if name == implied {
		_ = e.EncodeNil()
		return
	}
	_ = e.EncodeString(name)
}

// decodeAddr reads what encodeAddr wrote.
func decodeAddr(r *mpReader) netip.Addr {
	b := r.raw()
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b))
	case 16:
		return netip.AddrFrom16([16]byte(b))
	}
	r.fail(fmt.Sprintf("address of %d bytes", len(b)))
	return netip.Addr{}
}

// walRecord is one decoded log frame.
type walRecord struct {
	typ    uint64
	header segHeader
	epoch  int64
	event  stickydb.Event
	markAt int64
	reason uint64
}

// decodeWAL decodes a log frame body. node is the segment's node (from its
// header), which an event's nil origin stands for; "" while reading the
// header itself. Everything a DB would refuse is refused here too, so a
// record that decodes is one the DB takes.
func decodeWAL(body []byte, node string, rec *walRecord) error {
	r := mpReader{b: body}
	n := r.arrayLen()
	rec.typ = r.uint()
	if r.err != nil {
		return r.err
	}
	switch rec.typ {
	case typeSegHeader:
		if n < segHeaderFields {
			return fmt.Errorf("%w: segment header of %d fields", errCorrupt, n)
		}
		h := &rec.header
		h.Node = r.str()
		h.Index = r.uint()
		h.Epoch = r.int()
		h.Base = r.uint()
		h.Created = r.int()
		r.skipRest(n - segHeaderFields)
		if r.err == nil && (h.Node == "" || len(h.Node) > 255 || h.Epoch <= 0) {
			return fmt.Errorf("%w: segment header with node %q, epoch %d", errCorrupt, h.Node, h.Epoch)
		}
	case typeEvent:
		if n < eventFields {
			return fmt.Errorf("%w: event of %d fields", errCorrupt, n)
		}
		rec.epoch = r.int()
		if err := decodeEvent(&r, node, &rec.event); err != nil {
			return err
		}
		r.skipRest(n - eventFields)
		if r.err == nil && rec.epoch <= 0 {
			return fmt.Errorf("%w: event of epoch %d", errCorrupt, rec.epoch)
		}
	case typeMark:
		if n < markFields {
			return fmt.Errorf("%w: mark of %d fields", errCorrupt, n)
		}
		rec.markAt = r.int()
		rec.reason = r.uint()
		r.skipRest(n - markFields)
	default:
		return fmt.Errorf("%w: unknown record type %d", errCorrupt, rec.typ)
	}
	if r.err != nil {
		return r.err
	}
	if r.left() != 0 {
		return fmt.Errorf("%w: %d bytes after the record", errCorrupt, r.left())
	}
	return nil
}

// decodeEvent reads an event's fields after the epoch and checks them
// the way stickydb checks a change group.
func decodeEvent(r *mpReader, node string, ev *stickydb.Event) error {
	ev.Seq = r.uint()
	kind := r.uint()
	addr := decodeAddr(r)
	host := r.raw()
	replica := ""
	if !r.nilNext() {
		replica = r.str()
	}
	expiry := r.int()
	gen := r.uint()
	origin := node
	if !r.nilNext() {
		origin = r.str()
	}
	deleted := r.bool()
	if r.err != nil {
		return r.err
	}
	k, err := stickydb.NewKey(addr, string(host))
	switch {
	case err != nil:
		return fmt.Errorf("%w: event key %v %q: %v", errCorrupt, addr, host, err)
	case ev.Seq == 0:
		return fmt.Errorf("%w: event number 0", errCorrupt)
	case kind < uint64(stickydb.KindBind) || kind > uint64(stickydb.KindDelete):
		return fmt.Errorf("%w: event kind %d", errCorrupt, kind)
	case gen > math.MaxUint32:
		return fmt.Errorf("%w: generation %d", errCorrupt, gen)
	case deleted != (stickydb.EventKind(kind) == stickydb.KindDelete):
		return fmt.Errorf("%w: kind %d with deleted %v", errCorrupt, kind, deleted)
	case deleted != (replica == "") || len(replica) > 255:
		return fmt.Errorf("%w: replica %q with deleted %v", errCorrupt, replica, deleted)
	case origin == "" || len(origin) > 255:
		return fmt.Errorf("%w: origin %q", errCorrupt, origin)
	case origin != node && stickydb.EventKind(kind) != stickydb.KindRefresh:
		// Only a refresh may carry a binding another node made.
		return fmt.Errorf("%w: %s event with origin %q", errCorrupt, stickydb.EventKind(kind), origin)
	}
	*ev = stickydb.Event{Seq: ev.Seq, Kind: stickydb.EventKind(kind), Key: k, Binding: stickydb.Binding{
		Replica: replica, Expiry: expiry, Generation: uint32(gen), Origin: origin, Deleted: deleted,
	}}
	return nil
}
