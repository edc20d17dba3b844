package gossip

import (
	"math"

	"github.com/tetherproxy/tether/stickydb"
)

// chunkMsg is a decoded msgCopyChunk: records of one full copy.
type chunkMsg struct {
	Sender  string
	Copy    uint64 // the sender's id of this copy
	Index   uint64 // chunk number, from 0
	Hint    uint64 // the sender's binding count when the copy began (to size the table)
	Records []stickydb.Record
}

// copyEndMsg is a decoded msgCopyEnd: the copy is complete once Chunks
// chunks have been merged; then Vector is merged.
type copyEndMsg struct {
	Sender  string
	Copy    uint64
	Chunks  uint64
	Records uint64
	Vector  stickydb.Vector
}

const maxChunks = 1 << 32

func encodeChunk(m *chunkMsg) []byte {
	w := getWriter(msgCopyChunk)
	defer putWriter(w)
	recs := m.Records
	w.str(m.Sender)
	w.uint(m.Copy)
	w.uint(m.Index)
	w.uint(m.Hint)
	for i := range recs {
		b := &recs[i].Binding
		w.hosts.add(recs[i].Key.Host())
		if b.Replica != "" && !b.Deleted {
			w.names.add(b.Replica)
		}
		w.names.add(b.Origin)
	}
	w.tables()
	w.uint(uint64(len(recs)))
	if len(recs) == 0 {
		return w.bytes()
	}
	prev := recs[0].Binding.Expiry
	w.int(prev)
	for i := range recs {
		k, b := &recs[i].Key, &recs[i].Binding
		w.ip(k.Client())
		w.uint(w.hosts.id(k.Host()))
		if b.Deleted {
			w.uint(0)
		} else {
			w.rep(b.Replica)
		}
		w.int(b.Expiry - prev)
		prev = b.Expiry
		w.uint(uint64(b.Generation))
		w.uint(w.names.id(b.Origin))
	}
	return w.bytes()
}

func decodeChunk(body []byte, caps *Caps) (chunkMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	var m chunkMsg
	m.Sender = r.str(maxNameLen, "sender")
	m.Copy = r.uint(math.MaxUint64>>1, "copy")
	m.Index = r.uint(maxChunks, "index")
	m.Hint = r.uint(maxSeq, "hint")
	r.tables()
	n := r.count(caps.MaxRecords, minRecordBytes, "records")
	if r.err != nil {
		return chunkMsg{}, r.err
	}
	if n == 0 {
		r.end()
		return m, r.err
	}
	exp := r.int(0, maxExpiry, "expiry base")
	m.Records = make([]stickydb.Record, n)
	for i := range m.Records {
		rec := &m.Records[i]
		ip := r.ip("ip")
		hk := r.hostKey("host")
		rec.Binding.Replica = r.replica("replica")
		exp += r.int(-maxExpiry, maxExpiry, "expiry delta")
		rec.Binding.Expiry = exp
		rec.Binding.Generation = uint32(r.uint(math.MaxUint32, "generation"))
		rec.Binding.Origin = r.name("record origin")
		rec.Binding.Deleted = rec.Binding.Replica == ""
		if r.err != nil {
			return chunkMsg{}, r.err
		}
		if exp < 0 || exp > maxExpiry {
			return chunkMsg{}, wireErr(ErrMalformed, "expiry %d out of range", exp)
		}
		k, err := hk.WithClient(ip)
		if err != nil {
			return chunkMsg{}, wireErr(ErrMalformed, "record %d key: %v", i, err)
		}
		rec.Key = k
	}
	r.end()
	if r.err != nil {
		return chunkMsg{}, r.err
	}
	return m, nil
}

func encodeCopyEnd(sender string, copyID, chunks, records uint64, v stickydb.Vector) []byte {
	w := getWriter(msgCopyEnd)
	defer putWriter(w)
	w.str(sender)
	w.uint(copyID)
	w.uint(chunks)
	w.uint(records)
	w.collectVector(v)
	w.tables()
	w.vector(v)
	return w.bytes()
}

func decodeCopyEnd(body []byte, caps *Caps) (copyEndMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	var m copyEndMsg
	m.Sender = r.str(maxNameLen, "sender")
	m.Copy = r.uint(math.MaxUint64>>1, "copy")
	m.Chunks = r.uint(maxChunks, "chunks")
	m.Records = r.uint(maxSeq, "records")
	r.tables()
	m.Vector = r.vector("vector")
	r.end()
	if r.err == nil && m.Vector == nil {
		r.fail(ErrMalformed, "copy end without a vector")
	}
	if r.err != nil {
		return copyEndMsg{}, r.err
	}
	return m, nil
}

// stateMsg is the push/pull state (msgState): who we are and our vector.
type stateMsg struct {
	Sender string
	Vector stickydb.Vector
}

func encodeState(sender string, v stickydb.Vector) []byte {
	w := getWriter(msgState)
	defer putWriter(w)
	w.str(sender)
	w.collectVector(v)
	w.tables()
	w.vector(v)
	return w.bytes()
}

func decodeState(body []byte, caps *Caps) (stateMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	var m stateMsg
	m.Sender = r.str(maxNameLen, "sender")
	r.tables()
	m.Vector = r.vector("vector")
	r.end()
	if r.err != nil {
		return stateMsg{}, r.err
	}
	return m, nil
}

// drainMsg is the body of msgDrain: [sender, count, (pool, name, on, stamp, origin)*].
type drainMsg struct {
	Sender  string
	Entries []DrainEntry
}

func encodeDrains(sender string, es []DrainEntry) []byte {
	w := getWriter(msgDrain)
	defer putWriter(w)
	w.str(sender)
	w.uint(uint64(len(es)))
	for _, e := range es {
		w.str(e.Pool)
		w.str(e.Name)
		w.boolean(e.On)
		w.int(e.Stamp)
		w.str(e.Origin)
	}
	return w.bytes()
}

func decodeDrains(body []byte, caps *Caps) (drainMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	var m drainMsg
	m.Sender = r.str(maxNameLen, "sender")
	n := r.count(maxDrains, 5, "drains")
	for i := 0; i < n && r.err == nil; i++ {
		e := DrainEntry{Pool: r.str(maxNameLen, "pool"), Name: r.str(maxNameLen, "name"), On: r.boolean("on")}
		e.Stamp = r.int(0, 1<<62, "stamp")
		e.Origin = r.str(maxNameLen, "origin")
		if e.Pool == "" || e.Name == "" || e.Origin == "" {
			r.fail(ErrMalformed, "drain entry with an empty name")
		}
		m.Entries = append(m.Entries, e)
	}
	r.end()
	if r.err != nil {
		return drainMsg{}, r.err
	}
	return m, nil
}

// ticketMsg is the body of msgTicketKeys: [sender, count, (secret, created, origin)*].
type ticketMsg struct {
	Sender string
	Keys   []TicketKey
}

func encodeTicketKeys(sender string, ks []TicketKey) []byte {
	w := getWriter(msgTicketKeys)
	defer putWriter(w)
	w.str(sender)
	w.uint(uint64(len(ks)))
	for _, k := range ks {
		w.bin(k.Secret[:])
		w.int(k.Created)
		w.str(k.Origin)
	}
	return w.bytes()
}

// minTicketKeyBytes: bin8 header + 32, a fixint, a 1-byte fixstr.
const minTicketKeyBytes = 2 + 32 + 1 + minStrBytes

func decodeTicketKeys(body []byte, caps *Caps) (ticketMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	var m ticketMsg
	m.Sender = r.str(maxNameLen, "sender")
	n := r.count(MaxTicketKeys, minTicketKeyBytes, "ticket keys")
	for i := 0; i < n && r.err == nil; i++ {
		var k TicketKey
		secret := r.raw(len(k.Secret), "secret")
		if r.err == nil && len(secret) != len(k.Secret) {
			r.fail(ErrMalformed, "secret: %d bytes, want %d", len(secret), len(k.Secret))
		}
		copy(k.Secret[:], secret)
		k.Created = r.int(1, maxExpiry, "created")
		k.Origin = r.str(maxNameLen, "origin")
		m.Keys = append(m.Keys, k)
	}
	r.end()
	if r.err != nil {
		return ticketMsg{}, r.err
	}
	return m, nil
}
