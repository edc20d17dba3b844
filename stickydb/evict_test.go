package stickydb

import (
	"fmt"
	"testing"
	"time"
)

// TestFloodKeepsClientsInUse is issue 17's finding 2 in the core: 100
// clients bound and in use, then one address floods 3,000 Hosts under a
// cap of 1,000. Every client in use keeps its binding, and so does every
// client moved to another replica (a rebind) just before the flood.
func TestFloodKeepsClientsInUse(t *testing.T) {
	for _, shards := range []int{1, 256} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			db := newTestDB(t, "n1", t0, func(c *Config) { c.MaxBindings = 1000; c.Shards = shards })
			var victims, moved []Key
			for i := 0; i < 100; i++ {
				k := mustKey(t, netipFrom(i).String(), "app.example")
				if _, _, err := db.BindIfAbsent(k, "a", t0); err != nil {
					t.Fatal(err)
				}
				victims = append(victims, k)
			}
			for i, k := range victims {
				now := t0.Add(5 * time.Minute)
				if i%3 == 0 { // a third was moved, the rest used
					if _, _, err := db.Rebind(k, "a", "b", now); err != nil {
						t.Fatal(err)
					}
					moved = append(moved, k)
				} else if _, ok := db.Touch(k, now); !ok {
					t.Fatal("lost before the flood")
				}
			}
			flood := t0.Add(5*time.Minute + 10*time.Second)
			for i := 0; i < 3000; i++ {
				k := mustKey(t, "203.0.113.9", fmt.Sprintf("h%d.attacker.test", i))
				if _, _, err := db.BindIfAbsent(k, "a", flood.Add(time.Duration(i)*100*time.Microsecond)); err != nil {
					t.Fatal(err)
				}
			}
			if db.Len() > 1000 {
				t.Fatalf("len %d over the cap", db.Len())
			}
			kept := 0
			for _, k := range victims {
				if _, ok := db.Lookup(k); ok {
					kept++
				}
			}
			if kept != len(victims) {
				t.Fatalf("%d of %d clients in use kept their binding", kept, len(victims))
			}
			for _, k := range moved {
				if b, _ := db.Lookup(k); b.Replica != "b" {
					t.Fatalf("moved client %v now %+v", k, b)
				}
			}
		})
	}
}

// TestEvictionOrder: expired, then cold, then the newest young, then the
// established one closest to expiry.
func TestEvictionOrder(t *testing.T) {
	db := newTestDB(t, "n1", t0, func(c *Config) { c.TTL = 30 * time.Minute })
	now := t0.Add(time.Hour).UnixMilli()
	ttl := (30 * time.Minute).Milliseconds()
	mk := func(expMs, annMs int64) entry { return newEntry(expMs, annMs, 0, 1, 1) }
	cases := []struct {
		name string
		e    entry
		want int
	}{
		{"expired", mk(now-1000, now-1000), 0},
		{"tombstone", newEntry(now+ttl, now+ttl, 1, 0, 1), 0},
		{"cold", mk(now+ttl/4, now+ttl/4), 1},
		{"new", mk(now+ttl+ttl/4, now+ttl), 2},
		{"in use", mk(now+ttl, now+ttl-5*60_000), 3},
	}
	for _, tc := range cases {
		if c, _ := db.evictRank(tc.e, now); c != tc.want {
			t.Errorf("%s: class %d, want %d", tc.name, c, tc.want)
		}
	}
	_, older := db.evictRank(mk(now+ttl+ttl/4, now+ttl-10_000), now)
	_, newer := db.evictRank(mk(now+ttl+ttl/4, now+ttl), now)
	if newer >= older {
		t.Error("among young entries the newest does not go first")
	}
}
