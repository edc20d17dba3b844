package stickydb

import (
	"sync"
	"sync/atomic"
)

// names interns replica and node names as 16-bit ids, so that a binding
// table entry holds two small integers instead of two strings. Reading an id
// takes no lock (an atomic slice, grown by doubling, entries never changed
// once published); adding a name, which happens when a new replica or node
// is first seen, takes a mutex.
type names struct {
	mu   sync.Mutex
	ids  map[string]uint16
	list atomic.Pointer[[]nameInfo] // index = id; id 0 is "" (none)
}

type nameInfo struct {
	name string
	hash uint64 // NameHash(name)
}

func newNames() *names {
	n := &names{ids: map[string]uint16{"": 0}}
	l := []nameInfo{{}}
	n.list.Store(&l)
	return n
}

// id returns the id of name, adding it when new.
func (n *names) id(name string) (uint16, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if id, ok := n.ids[name]; ok {
		return id, nil
	}
	l := *n.list.Load()
	if len(l) > 0xffff {
		return 0, ErrTooManyNames
	}
	id := uint16(len(l))
	// Readers hold the old slice and never index past its length, so the
	// new entry can go into spare capacity in place; the slice is copied
	// only when full (doubling), so filling the table costs O(n), not the
	// O(n²) a copy per name cost (finding 7: 38 s under the lock).
	var nl []nameInfo
	if len(l) < cap(l) {
		nl = l[:len(l)+1]
	} else {
		nl = make([]nameInfo, len(l)+1, 2*len(l)+1)
		copy(nl, l)
	}
	nl[id] = nameInfo{name: name, hash: NameHash(name)}
	n.ids[name] = id
	n.list.Store(&nl)
	return id, nil
}

func (n *names) info(id uint16) nameInfo { return (*n.list.Load())[id] }
func (n *names) name(id uint16) string   { return (*n.list.Load())[id].name }

// internCache remembers the last few names and hosts one batch of merges
// met (a group, a chunk of a full copy), so that merging a batch takes the
// names mutex and the host intern table once per distinct value, not once
// per record. A batch has few distinct replicas, origins and hosts.
type internCache struct {
	names [8]struct {
		s  string
		id uint16
	}
	hosts [8]string
	nn    int
	hn    int
}

func (c *internCache) id(n *names, s string) (uint16, error) {
	for i := range min(c.nn, len(c.names)) {
		if c.names[i].s == s {
			return c.names[i].id, nil
		}
	}
	id, err := n.id(s)
	if err == nil {
		c.names[c.nn%len(c.names)] = struct {
			s  string
			id uint16
		}{s, id}
		c.nn++
	}
	return id, err
}

func (c *internCache) host(h string) string {
	for i := range min(c.hn, len(c.hosts)) {
		if c.hosts[i] == h {
			return c.hosts[i]
		}
	}
	h = internHost(h)
	c.hosts[c.hn%len(c.hosts)] = h
	c.hn++
	return h
}
