package check

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear, as in HdrHistogram: values below
// 2^histSubBits nanoseconds have a bucket each; above, every power of two
// is split into 2^(histSubBits-1) equal buckets, so a bucket's width is at
// most 1/128 (0.8%) of its values. Values clamp at 2^histMaxBits ns
// (about 18 minutes, beyond MaxTimeout). The whole table is 4,352 counters,
// whatever the number of samples.
const (
	histSubBits = 8
	histHalf    = 1 << (histSubBits - 1)
	histMaxBits = 40
	histBuckets = (histMaxBits - histSubBits + 2) * histHalf
	histMax     = 1<<histMaxBits - 1
)

// histIndex returns the bucket of v nanoseconds.
func histIndex(v uint64) int {
	if v > histMax {
		v = histMax
	}
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	return shift*histHalf + int(v>>shift)
}

// histLowest returns the smallest value of bucket i.
func histLowest(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	shift := i/histHalf - 1
	return uint64(i-shift*histHalf) << shift
}

// histHighest returns the largest value of bucket i.
func histHighest(i int) uint64 { return histLowest(i+1) - 1 }

// histogram is safe for concurrent Record: counters are atomic. The load
// engine keeps a few of them (shards) so that clients on different cores
// rarely write the same cache line.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

// record adds one value; negative durations count as 0.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)].Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// histSnapshot is a plain copy of one or more histograms, for reading.
type histSnapshot struct {
	counts []uint64
	n, sum uint64
	max    uint64
}

// snapshot merges hs into one copy. Concurrent records may or may not be
// in it; its count is the sum of its buckets either way.
func snapshot(hs []*histogram) histSnapshot {
	s := histSnapshot{counts: make([]uint64, histBuckets)}
	for _, h := range hs {
		for i := range h.counts {
			c := h.counts[i].Load()
			s.counts[i] += c
			s.n += c
		}
		s.sum += h.sum.Load()
		s.max = max(s.max, h.max.Load())
	}
	return s
}

// quantile returns the value at quantile q (0..1): the highest value of
// the bucket that holds the sample of rank ceil(q*n), clamped to the
// largest value recorded, like HdrHistogram's valueAtPercentile.
func (s *histSnapshot) quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := uint64(q * float64(s.n))
	if float64(rank) < q*float64(s.n) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histHighest(i), s.max))
		}
	}
	return time.Duration(s.max)
}

// mean returns the average value.
func (s *histSnapshot) mean() time.Duration {
	if s.n == 0 {
		return 0
	}
	return time.Duration(s.sum / s.n)
}
