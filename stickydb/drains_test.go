package stickydb

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Every order of delivery, duplicates included, leaves the same registers.
func TestDrainsMergeOrderIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		gen := rapid.Custom(func(t *rapid.T) DrainEntry {
			return DrainEntry{
				Pool:   rapid.SampledFrom([]string{"p", "q"}).Draw(t, "pool"),
				Name:   rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "name"),
				On:     rapid.Bool().Draw(t, "on"),
				Stamp:  rapid.Int64Range(1, 5).Draw(t, "stamp"),
				Origin: rapid.SampledFrom([]string{"n1", "n2"}).Draw(t, "origin"),
			}
		})
		es := rapid.SliceOfN(gen, 1, 20).Draw(t, "entries")
		var a, b Drains
		for _, e := range es {
			a.Merge([]DrainEntry{e})
		}
		perm := rapid.Permutation(es).Draw(t, "perm")
		b.Merge(perm)
		b.Merge(perm[:len(perm)/2])
		if !slices.Equal(a.All(), b.All()) {
			t.Fatalf("%v != %v", a.All(), b.All())
		}
	})
}

// A node whose clock is behind the register's stamp still writes a later
// one, so its change is not lost; Set reports whether the state changed.
func TestDrainsSetStampsLater(t *testing.T) {
	var d Drains
	d.Merge([]DrainEntry{{Pool: "p", Name: "a", On: true, Stamp: t0.Add(time.Minute).UnixMilli(), Origin: "n2"}})
	e, changed := d.Set("p", "a", false, "n1", t0)
	if !changed || e.Stamp != t0.Add(time.Minute).UnixMilli()+1 {
		t.Fatalf("%+v changed %v", e, changed)
	}
	if got := d.All(); len(got) != 1 || got[0].On {
		t.Fatalf("%+v", got)
	}
	if _, changed := d.Set("p", "a", false, "n1", t0); changed {
		t.Fatal("an unchanged state reported as changed")
	}
	for i := range MaxDrains + 10 {
		d.Merge([]DrainEntry{{Pool: "p", Name: fmt.Sprint(i), Stamp: 1, Origin: "n1"}})
	}
	if n := len(d.All()); n != MaxDrains {
		t.Fatalf("%d registers, cap %d", n, MaxDrains)
	}
}

func TestDrainsResendDue(t *testing.T) {
	var d Drains
	p := 10 * time.Second
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Second, false}, {9999 * time.Millisecond, false}, {10 * time.Second, true}, {15 * time.Second, false}, {-time.Second, true}} {
		if got := d.ResendDue(t0.Add(c.at), p); got != c.want {
			t.Fatalf("at %v: %v, want %v", c.at, got, c.want)
		}
	}
}
