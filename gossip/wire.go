package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tetherproxy/tether/stickydb"
)

// msgType is the first byte of every tether message (see doc.go, "Wire
// format").
//
// WARNING: only append. Never renumber, reuse or remove a value: nodes of
// different versions meet during a rolling upgrade and decode by these
// numbers.
type msgType uint8

const (
	msgGroup       msgType = 1 // a change group: events of one origin and/or the sender's vector
	msgRequest     msgType = 2 // a range, watchdog or full-copy request
	msgCopyChunk   msgType = 3 // records of a full copy
	msgCopyEnd     msgType = 4 // the end of a full copy: chunk count and vector
	msgState       msgType = 5 // push/pull state: the sender's vector (LocalState)
	msgDrain       msgType = 6 // the sender's drain registers (replicated drain / undrain)
	msgCountQuery  msgType = 7 // how many live bindings to a replica do you hold? (count.go)
	msgCountAnswer msgType = 8 // the answer to a count query
	msgTicketKeys  msgType = 9 // TLS session ticket keys (ticketkeys.go); only over an encrypted gossip
)

func (t msgType) String() string {
	switch t {
	case msgGroup:
		return "group"
	case msgRequest:
		return "request"
	case msgCopyChunk:
		return "chunk"
	case msgCopyEnd:
		return "copyend"
	case msgState:
		return "state"
	case msgDrain:
		return "drain"
	case msgCountQuery:
		return "countquery"
	case msgCountAnswer:
		return "countanswer"
	case msgTicketKeys:
		return "ticketkeys"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// wireVersion is the second byte of every message. A change that old nodes
// cannot decode takes a new version; decoders refuse versions they do not
// know (ErrVersion) rather than guess.
const wireVersion = 1

const headerLen = 2

// Bounds of single values; the counts are bounded by Caps.
const (
	maxNameLen = 255 // replica and node names (stickydb's limit)
	maxHostLen = 253 // a DNS name (stickydb's limit)
	// maxExpiry bounds expiries and epochs (unix ms) so that deltas never
	// overflow: the year 2^42 ms ~ 2109.
	maxExpiry = int64(1) << 42
)

// minimal encoded sizes, used to bound counts by the bytes left before
// anything is allocated: n elements cannot take fewer than n*min bytes.
const (
	minStrBytes    = 2  // fixstr header + 1 byte (names are never empty)
	minEventBytes  = 11 // kind, ip (bin8 4), host, rep, delta, gen, origin
	minRecordBytes = 10 // ip (bin8 4), host, rep, delta, gen, origin
	minOriginBytes = 4  // name index, pair count, one pair (an origin without pairs is refused)
	minPairBytes   = 2  // epoch, seq
	maxSeq         = uint64(1) << 62
)

// writer encodes one message. The zero value is not usable; get one from
// getWriter and return it with putWriter.
type writer struct {
	buf   bytes.Buffer
	enc   *msgpack.Encoder
	names table
	hosts table
	ip16  [16]byte // scratch, so that writing an address allocates nothing
}

var writerPool = sync.Pool{New: func() any {
	w := &writer{enc: msgpack.NewEncoder(nil)}
	w.enc.Reset(&w.buf)
	return w
}}

func getWriter(t msgType) *writer {
	w := writerPool.Get().(*writer)
	w.buf.Reset()
	w.names.reset()
	w.hosts.reset()
	w.buf.WriteByte(byte(t))
	w.buf.WriteByte(wireVersion)
	return w
}

func putWriter(w *writer) {
	if w.buf.Cap() > 1<<20 {
		return // do not keep a full copy's buffer alive
	}
	writerPool.Put(w)
}

// bytes returns a copy of the message the caller owns.
func (w *writer) bytes() []byte { return bytes.Clone(w.buf.Bytes()) }

// bytes.Buffer never fails a write, so the encoder's errors are ignored.
func (w *writer) uint(v uint64)  { _ = w.enc.EncodeUint(v) }
func (w *writer) int(v int64)    { _ = w.enc.EncodeInt(v) }
func (w *writer) str(s string)   { _ = w.enc.EncodeString(s) }
func (w *writer) nil()           { _ = w.enc.EncodeNil() }
func (w *writer) bin(b []byte)   { _ = w.enc.EncodeBytes(b) }
func (w *writer) boolean(b bool) { _ = w.enc.EncodeBool(b) }

// ip writes an address as 4 bytes (IPv4) or 16 (IPv6).
func (w *writer) ip(a netip.Addr) {
	if a.Is4() {
		b := a.As4()
		copy(w.ip16[:], b[:])
		w.bin(w.ip16[:4])
		return
	}
	w.ip16 = a.As16()
	w.bin(w.ip16[:])
}

// tables writes the interned names and hosts collected so far.
func (w *writer) tables() {
	w.uint(uint64(len(w.names.list)))
	for _, s := range w.names.list {
		w.str(s)
	}
	w.uint(uint64(len(w.hosts.list)))
	for _, s := range w.hosts.list {
		w.str(s)
	}
}

// table interns strings for one message: index = position of first use.
type table struct {
	ids  map[string]uint32
	list []string
}

func (t *table) reset() {
	if t.ids == nil {
		t.ids = make(map[string]uint32)
	}
	clear(t.ids)
	t.list = t.list[:0]
}

func (t *table) add(s string) uint32 {
	if id, ok := t.ids[s]; ok {
		return id
	}
	id := uint32(len(t.list))
	t.ids[s] = id
	t.list = append(t.list, s)
	return id
}

func (t *table) id(s string) uint64 { return uint64(t.ids[s]) }

// reader decodes one message. The first error sticks: later calls return
// zero values, so decoders read straight through and check r.err at the
// end (and before every allocation).
//
// It reads msgpack straight from the body, as msgpack's own Decoder does
// value for value (TestReaderMatchesMsgpack): that Decoder reads through
// an io.Reader a byte at a time, and decoding was 14 % of a 50-node
// fleet's CPU, two thirds of it in the Decoder's reads.
type reader struct {
	b    []byte // the body
	off  int    // bytes of b decoded
	caps *Caps
	err  error

	names []string
	// hosts are the hosts table's entries as keys of no client (the
	// zero Key for an entry that is not a valid host): a host is checked
	// once per message, not once per event (Key.WithClient).
	hosts []stickydb.Key

	strs *internStrings // nil: every string read is a new one
}

// internStrings hands out one string per distinct short text read (node,
// replica and host names), so that decoding a message allocates none of
// the names every message repeats: at 50 in-process nodes, the names and
// hosts tables of received groups were a tenth of the decoding time. It
// holds at most internMax strings and starts over when full, so names
// that only a peer keeps inventing cost memory only until then. Safe for
// concurrent use (memberlist's handlers decode too).
type internStrings struct {
	mu sync.Mutex
	m  map[string]string
}

const internMax = 4096

func (c *internStrings) get(b []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[string(b)]; ok {
		return s
	}
	if c.m == nil || len(c.m) >= internMax {
		c.m = make(map[string]string, 64)
	}
	s := string(b)
	c.m[s] = s
	return s
}

// readers are reused: one was allocated per message.
var readers = sync.Pool{New: func() any { return new(reader) }}

func newReader(body []byte, caps *Caps) *reader {
	r := readers.Get().(*reader)
	r.caps = caps
	r.b, r.off = body, 0
	return r
}

// release returns r for reuse: nothing read may be used after it but the
// values returned (no decoder returns the reader's own tables).
func (r *reader) release() {
	clear(r.names)
	clear(r.hosts)
	*r = reader{names: r.names[:0], hosts: r.hosts[:0]}
	readers.Put(r)
}

func (r *reader) fail(err error, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", err, fmt.Sprintf(format, args...))
	}
}

// left is the number of bytes not yet decoded.
func (r *reader) left() int { return len(r.b) - r.off }

// errShort is a value cut off by the end of the body.
var errShort = errors.New("unexpected end of message")

// code reads a value's first byte.
func (r *reader) code() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// next returns the n bytes that follow, or nil with errShort.
func (r *reader) next(n int) ([]byte, error) {
	if n > len(r.b)-r.off {
		return nil, errShort
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b, nil
}

// number reads any msgpack integer (or nil, as 0) as msgpack's Decoder
// does for DecodeUint64 and DecodeInt64: the 64 bits of an unsigned
// value, a signed one sign-extended. kind names what the caller reads it
// as, for the error.
func (r *reader) number(kind string) (uint64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c == 0xc0: // nil
		return 0, nil
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		return uint64(int64(int8(c))), nil
	}
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf: // uint8, 16, 32, 64
		return r.uintN(1 << (c - 0xcc))
	case 0xd0, 0xd1, 0xd2, 0xd3: // int8, 16, 32, 64: sign-extended
		n := 1 << (c - 0xd0)
		v, err := r.uintN(n)
		shift := 64 - 8*n
		return uint64(int64(v<<shift) >> shift), err
	}
	return 0, fmt.Errorf("invalid code %#x decoding %s", c, kind)
}

// uintN reads an n-byte big-endian unsigned integer.
func (r *reader) uintN(n int) (uint64, error) {
	b, err := r.next(n)
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v, err
}

// bytesLen reads a str or bin header: its length, -1 for nil.
func (r *reader) bytesLen() (int, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c == 0xc0:
		return -1, nil
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return int(c & 0x1f), nil
	}
	var n int
	switch c {
	case 0xd9, 0xc4: // str8, bin8
		n = 1
	case 0xda, 0xc5: // str16, bin16
		n = 2
	case 0xdb, 0xc6: // str32, bin32
		n = 4
	default:
		return 0, fmt.Errorf("invalid code %#x decoding string/bytes length", c)
	}
	v, err := r.uintN(n)
	return int(v), err
}

func (r *reader) uint(max uint64, field string) uint64 {
	if r.err != nil {
		return 0
	}
	// A negative int decodes as a huge uint64, which max (always below
	// 2^63) refuses.
	v, err := r.number("uint64")
	if err != nil {
		r.fail(ErrMalformed, "%s: %v", field, err)
		return 0
	}
	if v > max {
		r.fail(ErrMalformed, "%s: %d over %d", field, v, max)
		return 0
	}
	return v
}

func (r *reader) int(lo, hi int64, field string) int64 {
	if r.err != nil {
		return 0
	}
	u, err := r.number("int64")
	if err != nil {
		r.fail(ErrMalformed, "%s: %v", field, err)
		return 0
	}
	if v := int64(u); v < lo || v > hi {
		r.fail(ErrMalformed, "%s: %d outside %d..%d", field, v, lo, hi)
		return 0
	}
	return int64(u)
}

func (r *reader) boolean(field string) bool {
	if r.err != nil {
		return false
	}
	c, err := r.code()
	switch {
	case err != nil:
	case c == 0xc3:
		return true
	case c == 0xc2 || c == 0xc0: // false, nil
		return false
	default:
		err = fmt.Errorf("invalid code %#x decoding bool", c)
	}
	r.fail(ErrMalformed, "%s: %v", field, err)
	return false
}

// count reads a count and bounds it by cap and by the bytes left, given the
// least bytes one element takes. Only then may the caller allocate.
func (r *reader) count(limit, minBytes int, field string) int {
	n := r.uint(1<<32, field)
	if r.err != nil {
		return 0
	}
	if n > uint64(limit) {
		r.fail(ErrOverCap, "%s: %d over cap %d", field, n, limit)
		return 0
	}
	if n*uint64(minBytes) > uint64(r.left()) {
		r.fail(ErrMalformed, "%s: %d elements cannot fit in %d bytes", field, n, r.left())
		return 0
	}
	return int(n)
}

// isNil consumes a nil if one is next.
func (r *reader) isNil() bool {
	if r.err != nil {
		return false
	}
	if r.off >= len(r.b) {
		r.fail(ErrMalformed, "%v", errShort)
		return false
	}
	if r.b[r.off] != 0xc0 {
		return false
	}
	r.off++
	return true
}

// raw reads a str or bin of 1..maxLen bytes into a new slice.
func (r *reader) raw(maxLen int, field string) []byte { return r.rawInto(nil, maxLen, field) }

// rawInto is raw reading into dst when it is large enough.
func (r *reader) rawInto(dst []byte, maxLen int, field string) []byte {
	src := r.view(maxLen, field)
	if src == nil {
		return nil
	}
	b := dst[:0]
	if cap(b) < len(src) {
		b = make([]byte, len(src))
	}
	b = b[:len(src)]
	copy(b, src)
	return b
}

// view reads a str or bin of 1..maxLen bytes, returning them in place
// (the body's bytes: copy what is kept).
func (r *reader) view(maxLen int, field string) []byte {
	if r.err != nil {
		return nil
	}
	n, err := r.bytesLen()
	if err != nil {
		r.fail(ErrMalformed, "%s: %v", field, err)
		return nil
	}
	if n <= 0 || n > maxLen {
		r.fail(ErrMalformed, "%s: length %d outside 1..%d", field, n, maxLen)
		return nil
	}
	if n > r.left() {
		r.fail(ErrMalformed, "%s: length %d beyond the %d bytes left", field, n, r.left())
		return nil
	}
	b, _ := r.next(n)
	return b
}

func (r *reader) str(maxLen int, field string) string {
	b := r.view(maxLen, field)
	if r.strs == nil || b == nil {
		return string(b)
	}
	return r.strs.get(b)
}

// ip reads a 4- or 16-byte address.
func (r *reader) ip(field string) netip.Addr {
	if r.err != nil {
		return netip.Addr{}
	}
	n, err := r.bytesLen()
	if err != nil {
		r.fail(ErrMalformed, "%s: %v", field, err)
		return netip.Addr{}
	}
	switch {
	case n != 4 && n != 16:
		r.fail(ErrMalformed, "%s: %d bytes, want 4 or 16", field, n)
		return netip.Addr{}
	case n > r.left():
		r.fail(ErrMalformed, "%s: truncated", field)
		return netip.Addr{}
	}
	b, _ := r.next(n)
	if n == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.AddrFrom16([16]byte(b))
}

// noClient is the address of the hosts table's keys.
var noClient = netip.IPv4Unspecified()

// tables reads the names and hosts tables.
func (r *reader) tables() {
	n := r.count(r.caps.MaxNames, minStrBytes, "names")
	if r.err != nil {
		return
	}
	r.names = slices.Grow(r.names[:0], n)[:n]
	for i := range r.names {
		r.names[i] = r.str(maxNameLen, "name")
	}
	h := r.count(r.caps.MaxHosts, minStrBytes, "hosts")
	if r.err != nil {
		return
	}
	r.hosts = slices.Grow(r.hosts[:0], h)[:h]
	for i := range r.hosts {
		r.hosts[i], _ = stickydb.NewKey(noClient, r.str(maxHostLen, "host"))
	}
}

// name reads an index into the names table.
func (r *reader) name(field string) string {
	i := r.uint(uint64(len(r.names)), field)
	if r.err != nil {
		return ""
	}
	if i >= uint64(len(r.names)) {
		r.fail(ErrMalformed, "%s: index %d outside %d names", field, i, len(r.names))
		return ""
	}
	return r.names[i]
}

// replica reads the rep field: 0 for none, else names[rep-1].
func (r *reader) replica(field string) string {
	i := r.uint(uint64(len(r.names)), field)
	if r.err != nil || i == 0 {
		return ""
	}
	return r.names[i-1]
}

// hostKey reads a host index: the table's key of that host, which the
// caller gives its client (Key.WithClient).
func (r *reader) hostKey(field string) stickydb.Key {
	i := r.uint(uint64(len(r.hosts)), field)
	if r.err != nil {
		return stickydb.Key{}
	}
	if i >= uint64(len(r.hosts)) {
		r.fail(ErrMalformed, "%s: index %d outside %d hosts", field, i, len(r.hosts))
		return stickydb.Key{}
	}
	return r.hosts[i]
}

// end checks that the whole body was read.
func (r *reader) end() {
	if r.err == nil && r.left() != 0 {
		r.fail(ErrMalformed, "%d trailing bytes", r.left())
	}
}
