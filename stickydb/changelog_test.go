package stickydb

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// logModel is the change log as plain slices, one per epoch: what the ring
// segments must behave like.
type logModel struct {
	segs []modelSeg
	cap  int
	pinE int64
	pinS uint64
}

type modelSeg struct {
	epoch int64
	first uint64
	seqs  []uint64
}

func (m *logModel) n() int {
	k := 0
	for _, s := range m.segs {
		k += len(s.seqs)
	}
	return k
}

func (m *logModel) seg(epoch int64) *modelSeg {
	for i := range m.segs {
		if m.segs[i].epoch == epoch {
			return &m.segs[i]
		}
	}
	return nil
}

func (m *logModel) add(epoch int64, seqs []uint64) {
	s := m.seg(epoch)
	if s == nil {
		m.segs = append(m.segs, modelSeg{epoch: epoch, first: seqs[0]})
		sort.Slice(m.segs, func(i, j int) bool { return m.segs[i].epoch < m.segs[j].epoch })
		s = m.seg(epoch)
	}
	next := s.first + uint64(len(s.seqs))
	if len(s.seqs) == 0 {
		s.first, next = seqs[0], seqs[0]
	}
	for _, q := range seqs {
		switch {
		case q < next:
			continue
		case q > next:
			s.seqs, s.first = nil, q
		}
		s.seqs = append(s.seqs, q)
		next = q + 1
	}
	m.fit()
}

func (m *logModel) fit() {
	for m.n() > m.cap {
		for len(m.segs) > 0 && len(m.segs[0].seqs) == 0 {
			m.segs = m.segs[1:]
		}
		s := &m.segs[0]
		if s.epoch == m.pinE && s.first > m.pinS {
			return
		}
		s.seqs, s.first = s.seqs[1:], s.first+1
	}
}

func (m *logModel) trimTo(epoch int64, seq uint64) {
	if s := m.seg(epoch); s != nil && seq > s.first {
		k := int(min(seq-s.first, uint64(len(s.seqs))))
		s.seqs, s.first = s.seqs[k:], s.first+uint64(k)
	}
}

// The ring segments hold, drop and hand out exactly the events a log of
// plain slices would, through appends with overlaps and gaps, the cap,
// pins, truncation at the front and whole epochs dropped; ranges that wrap
// the ring come out in order.
func TestEventLogMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.IntRange(1, 300).Draw(t, "cap")
		l := newEventLog(capacity, newNames())
		m := &logModel{cap: capacity}
		epochs := []int64{10, 20, 30}
		next := map[int64]uint64{10: 1, 20: 1, 30: 1}
		steps := rapid.IntRange(1, 400).Draw(t, "steps")
		for range steps {
			epoch := rapid.SampledFrom(epochs).Draw(t, "epoch")
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0, 1, 2, 3, 4, 5: // add, overlapping, contiguous or past a gap
				from := max(1, int64(next[epoch])+int64(rapid.IntRange(-5, 3).Draw(t, "shift")))
				k := rapid.IntRange(1, 70).Draw(t, "k")
				evs := make([]Event, k)
				seqs := make([]uint64, k)
				for i := range evs {
					evs[i] = logTestEvent(epoch, uint64(from)+uint64(i))
					seqs[i] = evs[i].Seq
				}
				l.add(epoch, evs)
				m.add(epoch, seqs)
				next[epoch] = max(next[epoch], seqs[k-1]+1)
			case 6: // truncation at the front
				first, last, ok := l.bounds(epoch)
				if ok {
					to := first + uint64(rapid.IntRange(0, int(last-first)+2).Draw(t, "trim"))
					s := l.seg(epoch)
					l.n -= s.trimTo(to)
					m.trimTo(epoch, to)
				}
			case 7:
				l.dropEpochsBefore(epoch)
				for len(m.segs) > 0 && m.segs[0].epoch < epoch {
					m.segs = m.segs[1:]
				}
			case 8:
				s := rapid.Uint64Range(0, next[epoch]).Draw(t, "pin")
				l.pin(epoch, s)
				m.pinE, m.pinS = epoch, s
			case 9:
				l.pin(0, 0)
				m.pinE, m.pinS = 0, 0
			}
			if l.len() != m.n() {
				t.Fatalf("log holds %d events, model %d", l.len(), m.n())
			}
			for _, e := range epochs {
				ms := m.seg(e)
				first, last, ok := l.bounds(e)
				if ms == nil || len(ms.seqs) == 0 {
					if ok {
						t.Fatalf("epoch %d: log holds %d..%d, model nothing", e, first, last)
					}
					continue
				}
				if !ok || first != ms.seqs[0] || last != ms.seqs[len(ms.seqs)-1] {
					t.Fatalf("epoch %d: log holds %d..%d (%v), model %d..%d", e, first, last, ok, ms.seqs[0], ms.seqs[len(ms.seqs)-1])
				}
				// A range inside, and one reaching past either end.
				a := first + uint64(rapid.IntRange(0, int(last-first)).Draw(t, "a"))
				b := a + uint64(rapid.IntRange(0, int(last-a)).Draw(t, "b"))
				got, ok := l.appendRange([]Event{{Seq: 999}}, e, a, b)
				if !ok || len(got) != int(b-a)+2 || got[0].Seq != 999 {
					t.Fatalf("epoch %d: range %d..%d: %d events, ok %v", e, a, b, len(got), ok)
				}
				for i, ev := range got[1:] {
					if want := logTestEvent(e, a+uint64(i)); ev != want {
						t.Fatalf("epoch %d: range %d..%d: event %d is %+v, want %+v", e, a, b, i, ev, want)
					}
				}
				if _, ok := l.appendRange(nil, e, first-1, last); ok && first > 1 {
					t.Fatalf("epoch %d: range from %d before the first held %d reported whole", e, first-1, first)
				}
				if _, ok := l.appendRange(nil, e, first, last+1); ok {
					t.Fatalf("epoch %d: range to %d past the last held %d reported whole", e, last+1, last)
				}
			}
		}
		// The long hosts kept are those of the events held, no more.
		for i := range l.segs {
			s := &l.segs[i]
			long := 0
			for j := range s.n {
				if s.at(j).hostLen == hostLong {
					long++
				}
			}
			for q := range s.long {
				if q < s.first || q >= s.first+uint64(s.n) {
					t.Fatalf("epoch %d: long host of %d kept, holding %d..%d", s.epoch, q, s.first, s.first+uint64(s.n)-1)
				}
			}
			if len(s.long) != long {
				t.Fatalf("epoch %d: %d long hosts kept for %d events with one", s.epoch, len(s.long), long)
			}
			if len(s.ring) > 0 && len(s.ring)&(len(s.ring)-1) != 0 {
				t.Fatalf("epoch %d: ring of %d slots, not a power of two", s.epoch, len(s.ring))
			}
		}
	})
}

// logTestEvent is the event seq of epoch in the log tests: every field
// set and varied, hosts from short to maxHostLen (past hostInline: the
// segment's long map), tombstones without a replica.
func logTestEvent(epoch int64, seq uint64) Event {
	host := fmt.Sprintf("h%d.example", seq%7)
	switch seq % 5 {
	case 0:
		host = strings.Repeat("x", hostInline+1+int(seq%200)) + ".example"
		host = host[len(host)-min(len(host), maxHostLen):]
	case 1:
		host = strings.Repeat("y", hostInline)
	}
	ev := Event{Seq: seq, Kind: KindBind, Binding: Binding{Replica: fmt.Sprintf("r%d", seq%3), Expiry: int64(seq) * 1000,
		Generation: uint32(seq % 11), Origin: fmt.Sprintf("o%d", epoch)}}
	ev.Key, _ = NewKey(netip.AddrFrom4([4]byte{10, 0, byte(seq >> 8), byte(seq)}), host)
	if seq%4 == 3 {
		ev.Kind, ev.Binding.Replica, ev.Binding.Deleted = KindDelete, "", true
	}
	return ev
}

// A ring past 1,024 slots that is less than a quarter full is given back
// for a smaller one, also when its events wrap around the end, and keeps
// them in order.
func TestEventLogRingShrinksAcrossTheWrap(t *testing.T) {
	l := newEventLog(1<<20, newNames())
	add := func(from, to uint64) {
		evs := make([]Event, 0, to-from+1)
		for q := from; q <= to; q++ {
			evs = append(evs, Event{Seq: q, Binding: Binding{Replica: "r"}})
		}
		l.add(7, evs)
	}
	add(1, 4096) // a ring of 4,096, full
	s := l.seg(7)
	l.n -= s.trimTo(3001)
	add(4097, 6000) // wraps: slots 0..1903 hold 4097..6000
	if len(s.ring) != 4096 || s.head == 0 || s.head+s.n <= len(s.ring) {
		t.Fatalf("setup: ring %d, head %d, n %d: not wrapped", len(s.ring), s.head, s.n)
	}
	l.n -= s.trimTo(5950) // 51 left: under a quarter
	if len(s.ring) != 128 || s.n != 51 || s.first != 5950 {
		t.Fatalf("after the trim: ring %d slots, %d events from %d; want 128, 51 from 5950", len(s.ring), s.n, s.first)
	}
	got, ok := l.appendRange(nil, 7, 5950, 6000)
	if !ok || len(got) != 51 {
		t.Fatalf("range: %d events, %v", len(got), ok)
	}
	for i, ev := range got {
		if ev.Seq != 5950+uint64(i) || ev.Binding.Replica != "r" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	// Shrunk while its live part wraps around the end.
	l = newEventLog(1<<20, newNames())
	add(1, 4096)
	s = l.seg(7)
	l.n -= s.trimTo(3001) // 1,096 held at slots 3000..4095: over a quarter, kept
	add(4097, 5000)       // 904 more at slots 0..903
	if len(s.ring) != 4096 || s.head != 3000 {
		t.Fatalf("setup: ring %d slots, head %d", len(s.ring), s.head)
	}
	l.n -= s.trimTo(4001) // 1,000 held at 4000..4095 and 0..903: shrink
	if len(s.ring) != 2048 || s.head != 0 || s.n != 1000 {
		t.Fatalf("after the trim: ring %d slots, head %d, %d events; want 2048, 0, 1000", len(s.ring), s.head, s.n)
	}
	got, ok = l.appendRange(nil, 7, 4001, 5000)
	if !ok || len(got) != 1000 {
		t.Fatalf("range after the shrink: %d events, %v", len(got), ok)
	}
	for i, ev := range got {
		if ev.Seq != 4001+uint64(i) || ev.Binding.Replica != "r" {
			t.Fatalf("after the shrink, event %d: %+v", i, ev)
		}
	}
}

// A ring grows eightfold up to 1,024 slots or its log's capacity, then
// doubles: a log of another origin (cap 1,000) is copied twice on its way
// to full, not six times.
func TestEventLogRingGrowth(t *testing.T) {
	for _, c := range []struct {
		limit int
		want  []int
	}{
		{1000, []int{16, 128, 1024, 2048}},
		{20, []int{16, 32, 64}},
		{200_000, []int{16, 128, 1024, 2048, 4096}},
		{1, []int{16, 32}},
	} {
		n := 0
		for _, w := range c.want {
			if n = growTo(n, c.limit); n != w {
				t.Errorf("limit %d: grew to %d, want %d (steps %v)", c.limit, n, w, c.want)
				break
			}
		}
	}
	l := newEventLog(1000, newNames())
	for q := uint64(1); q <= 1000; q++ {
		l.add(1, []Event{{Seq: q, Binding: Binding{Replica: "r"}}})
	}
	if s := l.seg(1); len(s.ring) != 1024 || s.n != 1000 {
		t.Fatalf("a full log of cap 1,000: ring %d, %d events", len(s.ring), s.n)
	}
}
