package gossip

import (
	"slices"

	"github.com/tetherproxy/tether/stickydb"
)

// collectVector interns the origins of v.
func (w *writer) collectVector(v stickydb.Vector) {
	for o, ps := range v {
		if len(ps) > 0 {
			w.names.add(o)
		}
	}
}

// vector writes v: nil, or a count of origins, then per origin its name
// index, its pair count and the (epoch, seq) pairs. Origins go in name
// order, so equal vectors encode alike.
func (w *writer) vector(v stickydb.Vector) {
	if v == nil {
		w.nil()
		return
	}
	origins := make([]string, 0, len(v))
	for o, ps := range v {
		if len(ps) > 0 {
			origins = append(origins, o)
		}
	}
	slices.Sort(origins)
	w.uint(uint64(len(origins)))
	for _, o := range origins {
		ps := v[o]
		w.uint(w.names.id(o))
		w.uint(uint64(len(ps)))
		for _, p := range ps {
			w.int(p.Epoch)
			w.uint(p.Seq)
		}
	}
}

// vector reads what writer.vector wrote. nil stays nil.
func (r *reader) vector(field string) stickydb.Vector {
	if r.isNil() || r.err != nil {
		return nil
	}
	m := r.count(r.caps.MaxOrigins, minOriginBytes, field)
	if r.err != nil {
		return nil
	}
	v := make(stickydb.Vector, m)
	// The fields' names, for errors, made once: per origin they were four
	// string concatenations, most of a 50-node vector's allocations.
	fOrigin, fPairs, fEpoch, fSeq := field+" origin", field+" pairs", field+" epoch", field+" seq"
	// Most origins hold one pair: one array for all of them.
	slab := make([]stickydb.EpochSeq, 0, m)
	for range m {
		o := r.name(fOrigin)
		p := r.count(r.caps.MaxPairs, minPairBytes, fPairs)
		if r.err != nil {
			return nil
		}
		if p == 0 {
			r.fail(ErrMalformed, "%s: origin %q without pairs", field, o)
			return nil
		}
		if _, dup := v[o]; dup {
			r.fail(ErrMalformed, "%s: origin %q twice", field, o)
			return nil
		}
		var ps []stickydb.EpochSeq
		if n := len(slab); n+p <= cap(slab) {
			ps, slab = slab[n:n+p:n+p], slab[:n+p]
		} else {
			ps = make([]stickydb.EpochSeq, p)
		}
		for i := range ps {
			ps[i].Epoch = r.int(1, maxExpiry, fEpoch)
			ps[i].Seq = r.uint(maxSeq, fSeq)
		}
		if r.err != nil {
			return nil
		}
		v[o] = ps
	}
	return v
}
