package stickydb

import (
	"sync"
	"sync/atomic"
)

// names interns replica and node names as 16-bit ids, so that a binding
// table entry holds two small integers instead of two strings. Reading an id
// takes no lock (an atomic copy-on-write slice); adding a name, which happens
// when a new replica or node is first seen, takes a mutex.
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
	nl := make([]nameInfo, len(l)+1, len(l)+1+len(l)/2)
	copy(nl, l)
	nl[id] = nameInfo{name: name, hash: NameHash(name)}
	n.ids[name] = id
	n.list.Store(&nl)
	return id, nil
}

func (n *names) info(id uint16) nameInfo { return (*n.list.Load())[id] }
func (n *names) name(id uint16) string   { return (*n.list.Load())[id].name }
