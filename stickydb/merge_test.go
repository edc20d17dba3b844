package stickydb

import (
	"testing"

	"pgregory.net/rapid"
)

func genBinding(t *rapid.T, label string) Binding {
	deleted := rapid.IntRange(0, 5).Draw(t, label+".del") == 0
	b := Binding{
		Generation: uint32(rapid.IntRange(1, 3).Draw(t, label+".gen")),
		Expiry:     int64(rapid.IntRange(1000, 1010).Draw(t, label+".exp")),
		Origin:     rapid.SampledFrom([]string{"n1", "n2", "n3"}).Draw(t, label+".origin"),
		Deleted:    deleted,
	}
	if !deleted {
		b.Replica = rapid.SampledFrom([]string{"r1", "r2", "r3", "r4"}).Draw(t, label+".replica")
	}
	return b
}

func genKey(t *rapid.T) Key {
	k, _ := NewKey(netipFrom(rapid.IntRange(0, 1<<20).Draw(t, "client")), rapid.SampledFrom([]string{"a", "b.example"}).Draw(t, "host"))
	return k
}

// agreed is what the fleet agrees on of a binding: all but Origin (see
// Merge).
func agreed(b Binding) Binding {
	b.Origin = ""
	return b
}

func TestMergeIsASemilattice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k := genKey(t)
		a, b, c := genBinding(t, "a"), genBinding(t, "b"), genBinding(t, "c")
		if got, want := agreed(Merge(k, a, b)), agreed(Merge(k, b, a)); got != want {
			t.Fatalf("not commutative: %+v vs %+v", got, want)
		}
		if got, want := agreed(Merge(k, Merge(k, a, b), c)), agreed(Merge(k, a, Merge(k, b, c))); got != want {
			t.Fatalf("not associative: %+v vs %+v", got, want)
		}
		if got := Merge(k, a, a); got != a {
			t.Fatalf("not idempotent: %+v vs %+v", got, a)
		}
		// The join is an upper bound: merging it with either input again
		// changes nothing, Origin included.
		m := Merge(k, a, b)
		if Merge(k, m, a) != m || Merge(k, m, b) != m {
			t.Fatalf("join is not an upper bound")
		}
		// Origin is one of the inputs', the first one's when they are the
		// same binding.
		if m.Origin != a.Origin && m.Origin != b.Origin || sameClass(a, b) && m.Origin != a.Origin {
			t.Fatalf("origin %q from %q and %q", m.Origin, a.Origin, b.Origin)
		}
	})
}

func TestMergeRule(t *testing.T) {
	k := mustKey(t, "192.0.2.7", "shop")
	kh := k.Hash()
	// Find which of r1/r2 has the higher score for this key.
	hi, lo := "r1", "r2"
	if Score(kh, NameHash("r2")) > Score(kh, NameHash("r1")) {
		hi, lo = "r2", "r1"
	}
	tests := []struct {
		name string
		a, b Binding
		want Binding
	}{
		{"higher generation wins, with the later expiry of the two",
			Binding{Replica: hi, Expiry: 900, Generation: 1, Origin: "n1"},
			Binding{Replica: lo, Expiry: 100, Generation: 2, Origin: "n2"},
			Binding{Replica: lo, Expiry: 900, Generation: 2, Origin: "n2"}},
		{"same replica keeps the later expiry",
			Binding{Replica: lo, Expiry: 100, Generation: 1, Origin: "n1"},
			Binding{Replica: lo, Expiry: 200, Generation: 1, Origin: "n1"},
			Binding{Replica: lo, Expiry: 200, Generation: 1, Origin: "n1"}},
		{"same replica, concurrent binds: the same binding, the first's origin kept",
			Binding{Replica: lo, Expiry: 100, Generation: 1, Origin: "n1"},
			Binding{Replica: lo, Expiry: 150, Generation: 1, Origin: "n2"},
			Binding{Replica: lo, Expiry: 150, Generation: 1, Origin: "n1"}},
		{"conflict: higher rendezvous score wins, later expiry kept",
			Binding{Replica: lo, Expiry: 300, Generation: 1, Origin: "n1"},
			Binding{Replica: hi, Expiry: 200, Generation: 1, Origin: "n2"},
			Binding{Replica: hi, Expiry: 300, Generation: 1, Origin: "n2"}},
		{"tombstone beats a bind of its generation",
			Binding{Replica: hi, Expiry: 300, Generation: 2, Origin: "n1"},
			Binding{Expiry: 200, Generation: 2, Origin: "n2", Deleted: true},
			Binding{Expiry: 300, Generation: 2, Origin: "n2", Deleted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Merge(k, tt.a, tt.b); got != tt.want {
				t.Errorf("Merge = %+v, want %+v", got, tt.want)
			}
			if got := Merge(k, tt.b, tt.a); agreed(got) != agreed(tt.want) {
				t.Errorf("Merge reversed = %+v, want %+v", got, tt.want)
			}
		})
	}
}
