package stickydb

import "sort"

// eventLog holds one origin's events, in sequence order per epoch: this
// node's own change log (Fig. 4), or one row of the change log table kept of
// another origin (Fig. 10). It is bounded: past cap events the oldest go.
// Within an epoch the events it holds are contiguous, so "events a..b" is
// either fully there or reported as truncated.
type eventLog struct {
	segs []segment // ascending epoch
	n    int       // events held, all segments
	cap  int
	// The cap never drops an event of pinEpoch after pinSeq: own events
	// not yet persisted (Durable), which the log must still hand to the
	// write-ahead log. pinEpoch 0 pins nothing.
	pinEpoch int64
	pinSeq   uint64

	names *names      // the DB's: the ids of logEvent's replica and origin
	ic    internCache // the last names added
}

// logEvent is an Event as a log's ring holds it: 88 bytes without a
// pointer (names as the DB's ids, the host inline), so the garbage
// collector never scans the rings. At 50 in-process nodes the rings of
// Event (three strings each) were half the live heap, and the mark phases
// that scanned them set the convergence tail (bench/SCALE.md). A host
// longer than hostInline is kept in its segment's long map, by sequence.
type logEvent struct {
	seq     uint64
	expiry  int64
	ip      [16]byte
	gen     uint32
	replica uint16
	origin  uint16
	kind    EventKind
	deleted bool
	hostLen uint8 // bytes of host used; hostLong: the host is in segment.long
	host    [hostInline]byte
}

const (
	hostInline = 45
	hostLong   = 0xff
)

// pin protects the events of epoch after seq from the cap.
func (l *eventLog) pin(epoch int64, seq uint64) { l.pinEpoch, l.pinSeq = epoch, seq }

// fit drops the oldest events while the log is over its cap, never a
// pinned one.
func (l *eventLog) fit() {
	for l.n > l.cap && l.dropOldest() {
	}
}

// segment holds an epoch's events in a ring: appended at the back, dropped
// at the front (the cap, truncation), without moving the events held. A
// slice trimmed at the front loses its room at the back, so it had to be
// copied whole every cap events per origin, and at 50 origins those copies
// (of events that hold pointers, with the GC's write barriers) were a
// tenth of a busy node's CPU.
type segment struct {
	epoch int64
	first uint64     // sequence of the oldest event held; next expected is first+n
	ring  []logEvent // len 0 or a power of two; event first+i is at (head+i) mod len
	head  int
	n     int
	long  map[uint64]string // hosts over hostInline bytes, by sequence
}

// at returns the i-th event held (0: the oldest).
func (s *segment) at(i int) *logEvent { return &s.ring[(s.head+i)&(len(s.ring)-1)] }

// push appends e (whose Seq is first+n) to a log of capacity limit, its
// names as ids replica and origin.
func (s *segment) push(e *Event, replica, origin uint16, limit int) {
	if s.n == len(s.ring) {
		s.resize(growTo(len(s.ring), limit))
	}
	le := &s.ring[(s.head+s.n)&(len(s.ring)-1)]
	*le = logEvent{seq: e.Seq, expiry: e.Binding.Expiry, ip: e.Key.ip, gen: e.Binding.Generation,
		replica: replica, origin: origin, kind: e.Kind, deleted: e.Binding.Deleted}
	if h := e.Key.host; len(h) <= hostInline {
		le.hostLen = uint8(copy(le.host[:], h))
	} else {
		le.hostLen = hostLong
		if s.long == nil {
			s.long = map[uint64]string{}
		}
		s.long[e.Seq] = h
	}
	s.n++
}

// growTo is the next size of a full ring of size n in a log of capacity
// limit: eight times as large up to 1,024 slots (or the capacity's power
// of two, if less), then twice. A busy origin's log fills to its cap
// (1,000 events of another origin's) within seconds, and doubling from 16
// left as much garbage as the final ring, copied once more: a third of
// what 50 in-process nodes allocated while their logs filled. Past 1,024
// slots (the own log, when peers lag) a ring is grown by doubling, so it
// is never more than twice what it holds.
func growTo(n, limit int) int {
	size := max(2*n, 16)
	if big := min(8*n, ceilPow2(limit), 1024); big > size {
		size = big
	}
	return size
}

// ceilPow2 is the least power of two >= n (1 for n <= 1).
func ceilPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// resize moves the events to a ring of size (a power of two, >= n).
func (s *segment) resize(size int) {
	r := make([]logEvent, size)
	a := s.head
	for i := range s.n {
		r[i] = s.ring[a]
		a = (a + 1) & (len(s.ring) - 1)
	}
	s.ring, s.head = r, 0
}

// appendTo appends the events i..j-1 held (0: the oldest) to dst, their
// names from nm.
func (s *segment) appendTo(dst []Event, i, j int, nm *names) []Event {
	var host string // the previous event's: a run of one host shares one string
	for ; i < j; i++ {
		le := s.at(i)
		e := Event{Seq: le.seq, Kind: le.kind, Key: Key{ip: le.ip},
			Binding: Binding{Replica: nm.name(le.replica), Expiry: le.expiry, Generation: le.gen, Origin: nm.name(le.origin), Deleted: le.deleted}}
		switch {
		case le.hostLen == hostLong:
			e.Key.host = s.long[le.seq]
		case string(le.host[:le.hostLen]) == host:
			e.Key.host = host
		default:
			host = string(le.host[:le.hostLen])
			e.Key.host = host
		}
		dst = append(dst, e)
	}
	return dst
}

// dropFront removes the k oldest events (and their long hosts).
func (s *segment) dropFront(k int) {
	for range k {
		if s.ring[s.head].hostLen == hostLong {
			delete(s.long, s.ring[s.head].seq)
		}
		s.head = (s.head + 1) & (len(s.ring) - 1)
	}
	s.n -= k
	s.first += uint64(k)
}

// newEventLog returns an empty log of capacity events whose names are
// kept as ids of nm.
func newEventLog(capacity int, nm *names) *eventLog {
	return &eventLog{cap: capacity, names: nm}
}

// seg returns the segment of epoch, or nil.
func (l *eventLog) seg(epoch int64) *segment {
	for i := range l.segs {
		if l.segs[i].epoch == epoch {
			return &l.segs[i]
		}
	}
	return nil
}

// bounds returns the first and last sequence held for epoch; ok is false
// when none is held.
func (l *eventLog) bounds(epoch int64) (first, last uint64, ok bool) {
	s := l.seg(epoch)
	if s == nil || s.n == 0 {
		return 0, 0, false
	}
	return s.first, s.first + uint64(s.n) - 1, true
}

// add appends events (contiguous, ascending) of epoch. Events at or below
// what is held are skipped; a gap between what is held and the first new
// event restarts the segment at the new events (the older part cannot serve
// a contiguous range across the gap anyway).
func (l *eventLog) add(epoch int64, evs []Event) {
	if len(evs) == 0 {
		return
	}
	s := l.seg(epoch)
	if s == nil {
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].epoch > epoch })
		l.segs = append(l.segs, segment{})
		copy(l.segs[i+1:], l.segs[i:])
		l.segs[i] = segment{epoch: epoch, first: evs[0].Seq}
		s = &l.segs[i]
	}
	next := s.first + uint64(s.n)
	if s.n == 0 {
		s.first, next = evs[0].Seq, evs[0].Seq
	}
	for i := range evs {
		e := &evs[i]
		switch {
		case e.Seq < next:
			continue
		case e.Seq > next:
			l.n -= s.n
			s.dropFront(s.n)
			s.first = e.Seq
		}
		replica, err1 := l.ic.id(l.names, e.Binding.Replica)
		origin, err2 := l.ic.id(l.names, e.Binding.Origin)
		if err1 != nil || err2 != nil {
			// No id left for a name (ErrTooManyNames; the merge refused
			// the event too): the log cannot hold it, and restarts after
			// it, as after a gap.
			l.n -= s.n
			s.dropFront(s.n)
			s.first, next = e.Seq+1, e.Seq+1
			continue
		}
		s.push(e, replica, origin, l.cap)
		next = e.Seq + 1
		l.n++
	}
	l.fit()
}

// dropOldest removes the oldest event of the oldest epoch, unless it is
// pinned; it reports whether it removed one.
func (l *eventLog) dropOldest() bool {
	for len(l.segs) > 0 && l.segs[0].n == 0 {
		l.dropFirstSeg()
	}
	if len(l.segs) == 0 {
		return false
	}
	s := &l.segs[0]
	if s.epoch == l.pinEpoch && s.first > l.pinSeq {
		return false
	}
	s.trimTo(s.first + 1)
	l.n--
	return true
}

// trimTo drops the events below seq from the front of the segment and
// returns how many. A ring past 1,024 events that is less than a quarter
// full is given back for one of twice what it holds.
func (s *segment) trimTo(seq uint64) int {
	if seq <= s.first {
		return 0
	}
	k := int(min(seq-s.first, uint64(s.n)))
	s.dropFront(k)
	if len(s.ring) > 1024 && s.n < len(s.ring)/4 {
		size := 16
		for size < 2*s.n {
			size *= 2
		}
		s.resize(size)
	}
	return k
}

// appendRange appends the events from..to of epoch to dst, and reports
// false (dst unchanged) when any of them is not held (truncated or never
// seen).
func (l *eventLog) appendRange(dst []Event, epoch int64, from, to uint64) ([]Event, bool) {
	if from > to {
		return dst, true
	}
	s := l.seg(epoch)
	if s == nil || from < s.first || to >= s.first+uint64(s.n) {
		return dst, false
	}
	return s.appendTo(dst, int(from-s.first), int(to-s.first)+1, l.names), true
}

// dropEpochsBefore removes the segments of epochs older than epoch.
func (l *eventLog) dropEpochsBefore(epoch int64) {
	for len(l.segs) > 0 && l.segs[0].epoch < epoch {
		l.n -= l.segs[0].n
		l.dropFirstSeg()
	}
}

// dropFirstSeg removes the oldest segment, clearing its slot so that the
// array behind segs does not keep its ring.
func (l *eventLog) dropFirstSeg() {
	l.segs[0] = segment{}
	l.segs = l.segs[1:]
}

func (l *eventLog) len() int { return l.n }

// first returns the first event number held of epoch (the truncation
// point), or 0 when the epoch has no segment.
func (l *eventLog) first(epoch int64) uint64 {
	if s := l.seg(epoch); s != nil {
		return s.first
	}
	return 0
}
