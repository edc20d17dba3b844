package stickydb

import (
	"fmt"
	"net/netip"
	"testing"

	"pgregory.net/rapid"
)

// A shard keyed by host ids holds exactly what a map keyed by Key would,
// and its host dictionary holds exactly the hosts of the keys held, each
// counted once per key: ids are freed with the last key of a host and
// reused, so hosts that come and go do not pile up.
func TestShardHostIdsFollowKeys(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &shard{m: map[tkey]entry{}}
		model := map[Key]entry{}
		hosts := rapid.IntRange(1, 40).Draw(t, "hosts")
		steps := rapid.IntRange(1, 2000).Draw(t, "steps")
		maxIds := 0
		for range steps {
			h := rapid.IntRange(0, hosts-1).Draw(t, "host")
			k, _ := NewKey(netip.AddrFrom4([4]byte{10, 0, 0, byte(rapid.IntRange(0, 7).Draw(t, "ip"))}), fmt.Sprintf("h%d.example", h))
			k.host = internHost(k.host)
			e := entry{gen: uint32(rapid.IntRange(1, 1000).Draw(t, "gen"))}
			tk, _, had := s.find(k)
			if _, want := model[k]; had != want {
				t.Fatalf("%v: held %v, want %v", k, had, want)
			}
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0, 1: // store
				if had {
					s.m[tk] = e
				} else {
					s.add(k, tk, e)
				}
				model[k] = e
			case 2: // remove
				if tk, _, ok := s.find(k); ok {
					s.del(tk)
				}
				delete(model, k)
			}
			maxIds = max(maxIds, len(s.hosts.names))
			// The same contents.
			if len(s.m) != len(model) {
				t.Fatalf("%d keys held, want %d", len(s.m), len(model))
			}
			for tk, got := range s.m {
				k := s.key(tk)
				if want, ok := model[k]; !ok || got != want {
					t.Fatalf("%v: %+v held, want %+v (held in the model: %v)", k, got, want, ok)
				}
				if g, ok := s.get(k); !ok || g != got {
					t.Fatalf("%v: get gives %+v %v", k, g, ok)
				}
			}
			// The dictionary: exactly the hosts held, counted per key.
			uses := map[string]uint32{}
			for k := range model {
				uses[k.host]++
			}
			if len(s.hosts.ids) != len(uses) {
				t.Fatalf("%d hosts in the dictionary, %d in use", len(s.hosts.ids), len(uses))
			}
			for h, n := range uses {
				id, ok := s.hosts.ids[h]
				if !ok || s.hosts.names[id] != h || s.hosts.refs[id] != n {
					t.Fatalf("host %q: id %d (%v), name %q, refs %d, want %d", h, id, ok, s.hosts.names[id], s.hosts.refs[id], n)
				}
			}
			for _, r := range s.recent {
				if r.id != 0 && (r.h == "" || s.hosts.names[r.id] != r.h) {
					t.Fatalf("recent host %q as id %d, which is %q", r.h, r.id, s.hosts.names[r.id])
				}
			}
			if free := max(len(s.hosts.names)-1, 0) - len(s.hosts.ids); free != len(s.hosts.free) {
				t.Fatalf("%d ids free, %d on the free list", free, len(s.hosts.free))
			}
		}
		// Ids are reused: never more than the hosts there are.
		if maxIds-1 > hosts {
			t.Fatalf("%d ids for %d hosts", maxIds-1, hosts)
		}
	})
}
