package check

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexRoundTrip(t *testing.T) {
	// Every bucket's range must contain the values that map to it, the
	// buckets must tile the line with no gap, and widths must stay within
	// the promised relative error.
	for i := range histBuckets - 1 {
		lo, hi := histLowest(i), histHighest(i)
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d = [%d,%d] maps to %d,%d", i, lo, hi, histIndex(lo), histIndex(hi))
		}
		if histLowest(i+1) != hi+1 {
			t.Fatalf("gap after bucket %d: hi %d next lo %d", i, hi, histLowest(i+1))
		}
		if w := hi - lo + 1; i >= 1<<histSubBits && float64(w)/float64(lo) > 1.0/histHalf+1e-12 {
			t.Fatalf("bucket %d width %d is %.4f of %d", i, w, float64(w)/float64(lo), lo)
		}
		if i < 1<<histSubBits && hi != lo {
			t.Fatalf("small bucket %d is not exact: [%d,%d]", i, lo, hi)
		}
	}
	if got := histIndex(1 << 62); got != histIndex(histMax) {
		t.Fatalf("huge value not clamped: %d", got)
	}
	if histIndex(histMax) >= histBuckets {
		t.Fatalf("histMax index %d out of %d buckets", histIndex(histMax), histBuckets)
	}
}

func TestHistQuantiles(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) time.Duration
		n    int
	}{
		{"uniform 0-10ms", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) }, 20000},
		{"exponential mean 1ms", func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * 1e6) }, 20000},
		{"tiny values", func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(300)) }, 5000},
		{"one value", func(*rand.Rand) time.Duration { return 1234567 }, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var hs [3]histogram
			vals := make([]time.Duration, tc.n)
			for i := range vals {
				vals[i] = tc.gen(r)
				hs[i%3].record(vals[i])
			}
			slices.Sort(vals)
			s := snapshot([]*histogram{&hs[0], &hs[1], &hs[2]})
			if s.n != uint64(tc.n) {
				t.Fatalf("count %d, want %d", s.n, tc.n)
			}
			if time.Duration(s.max) != vals[len(vals)-1] {
				t.Fatalf("max %v, want %v", time.Duration(s.max), vals[len(vals)-1])
			}
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				rank := int(q*float64(tc.n)+0.999999) - 1
				want := vals[max(rank, 0)]
				got := s.quantile(q)
				if got < want || float64(got-want) > float64(want)/histHalf+1 {
					t.Errorf("q%.3f = %v, exact %v: outside [exact, exact*(1+1/%d)]", q, got, want, histHalf)
				}
			}
		})
	}
}

func TestHistEmptyAndNegative(t *testing.T) {
	var h histogram
	s := snapshot([]*histogram{&h})
	if s.quantile(0.5) != 0 || s.mean() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.record(-5)
	s = snapshot([]*histogram{&h})
	if s.n != 1 || s.quantile(1) != 0 {
		t.Fatalf("negative value: n %d q1 %v", s.n, s.quantile(1))
	}
}
