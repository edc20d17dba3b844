package stickydb

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EpochSeq is one pair of a version-vector entry (Fig. 12): in the epoch that
// began at Epoch (unix ms of the origin's clock), the events 1..Seq are known.
type EpochSeq struct {
	Epoch int64
	Seq   uint64
}

// Vector is a version vector (Fig. 5 with the epochs of Fig. 12): per origin
// node, its epochs in ascending order, each with the last event number known.
// An entry usually holds one pair; it holds more for TTL + skew after an
// origin started a new epoch, since the older epoch may still hold live
// bindings.
//
// A Vector is a plain value: the DB hands out copies and never keeps one it
// was given.
type Vector map[string][]EpochSeq

// Get returns the last known sequence of origin in epoch, 0 if none.
func (v Vector) Get(origin string, epoch int64) uint64 {
	for _, p := range v[origin] {
		if p.Epoch == epoch {
			return p.Seq
		}
	}
	return 0
}

// Latest returns the pair of origin's newest epoch.
func (v Vector) Latest(origin string) (EpochSeq, bool) {
	ps := v[origin]
	if len(ps) == 0 {
		return EpochSeq{}, false
	}
	return ps[len(ps)-1], true
}

// Advance raises origin's seq in epoch to seq (adding the epoch in order if
// new). It never lowers a number.
func (v Vector) Advance(origin string, epoch int64, seq uint64) {
	ps := v[origin]
	i := sort.Search(len(ps), func(i int) bool { return ps[i].Epoch >= epoch })
	if i < len(ps) && ps[i].Epoch == epoch {
		if seq > ps[i].Seq {
			ps[i].Seq = seq
		}
		return
	}
	v[origin] = slices.Insert(ps, i, EpochSeq{epoch, seq})
}

// Covers reports whether v knows origin's events of epoch up to seq.
func (v Vector) Covers(origin string, epoch int64, seq uint64) bool {
	return v.Get(origin, epoch) >= seq
}

// Merge folds o into v as the reference text's para. 96 says: a pair from
// an epoch present in only one vector is kept, and for an epoch in both the
// larger event number is kept.
func (v Vector) Merge(o Vector) {
	for origin, ps := range o {
		for _, p := range ps {
			v.Advance(origin, p.Epoch, p.Seq)
		}
	}
}

// Prune removes the pairs whose epoch is over: those followed by an epoch
// that began before cutoff (now - TTL - hold - skew), whose events are all
// expired, and those that counted no event, began after cutoff and are
// followed by a later epoch (a node restarted before it made anything:
// nothing of that epoch can exist). The newest pair of each origin is
// always kept, and so is the newest that began before cutoff, even empty:
// it is what shows every older epoch over (epochOver), so that a peer's
// older vector cannot bring one of those back. So a node restarted many
// times within a TTL keeps a short entry as long as its incarnations make
// few events.
func (v Vector) Prune(cutoff int64) {
	empty := func(p EpochSeq) bool { return emptySince(p, cutoff) }
	for origin, ps := range v {
		keep := 0
		for keep < len(ps)-1 && ps[keep+1].Epoch <= cutoff {
			keep++
		}
		out := ps[keep:]
		if slices.ContainsFunc(out[:len(out)-1], empty) {
			out = slices.DeleteFunc(slices.Clone(out[:len(out)-1]), empty)
			out = append(out, ps[len(ps)-1])
		} else if keep > 0 {
			out = slices.Clone(out)
		} else {
			continue
		}
		v[origin] = out
	}
}

// emptySince reports whether p counted no event and began after cutoff:
// such a pair followed by a later one is dropped by Prune and not taken
// from a peer's vector (observe).
func emptySince(p EpochSeq, cutoff int64) bool { return p.Seq == 0 && p.Epoch > cutoff }

// Trim keeps at most max pairs per origin, the newest: a bound on what a
// misbehaving origin that starts epoch after epoch can make every vector
// carry. Events of a trimmed epoch can then only arrive in a full copy.
func (v Vector) Trim(max int) {
	for origin, ps := range v {
		if len(ps) > max {
			v[origin] = slices.Clone(ps[len(ps)-max:])
		}
	}
}

// Clone returns a deep copy; nil stays nil (a peer whose vector has not
// arrived yet).
func (v Vector) Clone() Vector {
	if v == nil {
		return nil
	}
	out := make(Vector, len(v))
	for o, ps := range v {
		out[o] = slices.Clone(ps)
	}
	return out
}

// Equal reports whether two vectors hold the same pairs.
func (v Vector) Equal(o Vector) bool {
	if len(v) != len(o) {
		return false
	}
	for origin, ps := range v {
		if !slices.Equal(ps, o[origin]) {
			return false
		}
	}
	return true
}

// Origins returns the origin names in sorted order.
func (v Vector) Origins() []string {
	out := make([]string, 0, len(v))
	for o := range v {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

// String renders the vector as the reference text writes it, origins in
// name order: <[<epoch, seq>],[<epoch, seq> <epoch, seq>]>, epochs as
// RFC 3339 times.
func (v Vector) String() string {
	var b strings.Builder
	b.WriteString("<")
	for i, o := range v.Origins() {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(o)
		b.WriteString("[")
		for j, p := range v[o] {
			if j > 0 {
				b.WriteString(" ")
			}
			b.WriteString("<")
			b.WriteString(time.UnixMilli(p.Epoch).UTC().Format(time.RFC3339))
			b.WriteString(",")
			b.WriteString(strconv.FormatUint(p.Seq, 10))
			b.WriteString(">")
		}
		b.WriteString("]")
	}
	b.WriteString(">")
	return b.String()
}
