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
}

// pin protects the events of epoch after seq from the cap.
func (l *eventLog) pin(epoch int64, seq uint64) { l.pinEpoch, l.pinSeq = epoch, seq }

// fit drops the oldest events while the log is over its cap, never a
// pinned one.
func (l *eventLog) fit() {
	for l.n > l.cap && l.dropOldest() {
	}
}

type segment struct {
	epoch  int64
	first  uint64  // sequence of events[0]; next expected is first+len
	events []Event // events[i].Seq == first+i
}

func newEventLog(capacity int) *eventLog { return &eventLog{cap: capacity} }

// seg returns the segment of epoch, or nil.
func (l *eventLog) seg(epoch int64) *segment {
	for i := range l.segs {
		if l.segs[i].epoch == epoch {
			return &l.segs[i]
		}
	}
	return nil
}

// last returns the last sequence held for epoch (0 if none) and the first.
func (l *eventLog) bounds(epoch int64) (first, last uint64, ok bool) {
	s := l.seg(epoch)
	if s == nil || len(s.events) == 0 {
		return 0, 0, false
	}
	return s.first, s.first + uint64(len(s.events)) - 1, true
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
	next := s.first + uint64(len(s.events))
	if len(s.events) == 0 {
		s.first, next = evs[0].Seq, evs[0].Seq
	}
	for _, e := range evs {
		switch {
		case e.Seq < next:
			continue
		case e.Seq > next:
			l.n -= len(s.events)
			s.events, s.first = s.events[:0], e.Seq
		}
		if len(s.events) == cap(s.events) {
			s.grow()
		}
		s.events = append(s.events, e)
		next = e.Seq + 1
		l.n++
	}
	l.fit()
}

// dropOldest removes the oldest event of the oldest epoch, unless it is
// pinned; it reports whether it removed one.
func (l *eventLog) dropOldest() bool {
	for len(l.segs) > 0 && len(l.segs[0].events) == 0 {
		l.segs = l.segs[1:]
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

// grow gives the segment a new array of twice its events. A segment is
// trimmed at the front and appended at the back, so its array runs out
// every few events; append's growth for long slices (1.25x) would copy
// the whole segment every quarter of its length (four copies of an event
// per event added, and as many allocations for the GC); twice the length
// makes that one. trimTo gives memory back past 4x.
func (s *segment) grow() {
	s.events = append(make([]Event, 0, max(2*len(s.events), 16)), s.events...)
}

// trimTo drops the events below seq from the front of the segment. It
// copies the rest once the dropped part is most of the array, so memory is
// given back.
func (s *segment) trimTo(seq uint64) int {
	if seq <= s.first {
		return 0
	}
	k := int(min(seq-s.first, uint64(len(s.events))))
	s.events = s.events[k:]
	s.first += uint64(k)
	if cap(s.events) > 1024 && len(s.events) < cap(s.events)/4 {
		s.events = append(make([]Event, 0, 2*len(s.events)), s.events...)
	}
	return k
}

// rangeOf returns the events from..to of epoch, and false when any of them is
// not held (truncated or never seen). The slice aliases the log: copy it
// before the log changes.
func (l *eventLog) rangeOf(epoch int64, from, to uint64) ([]Event, bool) {
	if from > to {
		return nil, true
	}
	s := l.seg(epoch)
	if s == nil || from < s.first || to >= s.first+uint64(len(s.events)) {
		return nil, false
	}
	return s.events[from-s.first : to-s.first+1], true
}

// dropEpochsBefore removes the segments of epochs older than epoch.
func (l *eventLog) dropEpochsBefore(epoch int64) {
	for len(l.segs) > 0 && l.segs[0].epoch < epoch {
		l.n -= len(l.segs[0].events)
		l.segs = l.segs[1:]
	}
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
