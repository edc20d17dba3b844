package stickydb

import "sync"

// shard is one part of the binding table, under its own lock.
type shard struct {
	mu    sync.Mutex
	m     map[tkey]entry
	hosts hostDict
	// recent hosts' ids, beside the lock: a lookup in the dictionary's
	// map is two cache misses (a table of 50 nodes has 12,800 of them),
	// 9 % of a 50-node fleet's CPU before this.
	recent [4]struct {
		h  string
		id uint32
	}
	next uint8    // the recent slot to replace
	_    [40]byte // keep neighbouring shard locks off one cache line
}

// tkey is a Key as a shard's map holds it: the host as the shard's id for
// it (hostDict), so that the map holds no pointers and the garbage
// collector never scans it. A slot (key and entry) is 36 bytes, where a
// Key with its host string made it 48, and at 50 in-process nodes the
// tables were a third of the heap the mark phases scanned.
type tkey struct {
	ip   [16]byte
	host uint32
}

// hostDict gives the hosts of one shard's keys ids, each counted by the
// keys that use it: the last key of a host to go frees its id (a shard
// holds only hosts it has keys of, however many hosts come and go over
// months). Ids start at 1.
type hostDict struct {
	ids   map[string]uint32
	names []string // by id; [0] and free ids ""
	refs  []uint32 // keys per id
	free  []uint32 // ids to reuse
}

// ref returns h's id for one more key, adding h when new. The shard keeps
// h itself: callers pass an interned host (internHost), not a request's
// copy.
func (d *hostDict) ref(h string) uint32 {
	if id, ok := d.ids[h]; ok {
		d.refs[id]++
		return id
	}
	if d.ids == nil {
		d.ids = map[string]uint32{}
		d.names, d.refs = []string{""}, []uint32{0}
	}
	var id uint32
	if n := len(d.free); n > 0 {
		id, d.free = d.free[n-1], d.free[:n-1]
		d.names[id], d.refs[id] = h, 1
	} else {
		id = uint32(len(d.names))
		d.names, d.refs = append(d.names, h), append(d.refs, 1)
	}
	d.ids[h] = id
	return id
}

// unref drops a key's use of id, freeing it with its last key; it
// reports whether it did.
func (d *hostDict) unref(id uint32) bool {
	if d.refs[id]--; d.refs[id] > 0 {
		return false
	}
	delete(d.ids, d.names[id])
	d.names[id] = ""
	d.free = append(d.free, id)
	return true
}

// hostID returns the id of h, 0 when the shard holds no key of h (s
// locked).
func (s *shard) hostID(h string) uint32 {
	for i := range s.recent {
		if r := &s.recent[i]; r.id != 0 && r.h == h {
			return r.id
		}
	}
	id := s.hosts.ids[h]
	if id != 0 {
		s.remember(id)
	}
	return id
}

// remember puts id among the recent hosts, in place of the oldest.
func (s *shard) remember(id uint32) {
	r := &s.recent[s.next%uint8(len(s.recent))]
	r.h, r.id = s.hosts.names[id], id
	s.next++
}

// find returns k's map key and entry (s locked); ok is false when k is
// not held. The key's host is 0 when the shard holds no key of k's host.
func (s *shard) find(k Key) (tkey, entry, bool) {
	tk := tkey{ip: k.ip, host: s.hostID(k.host)}
	if tk.host == 0 {
		return tk, entry{}, false
	}
	e, ok := s.m[tk]
	return tk, e, ok
}

// get returns k's entry (s locked).
func (s *shard) get(k Key) (entry, bool) {
	_, e, ok := s.find(k)
	return e, ok
}

// add stores e under k, which s does not hold, at tk as find gave it (s
// locked).
func (s *shard) add(k Key, tk tkey, e entry) {
	if tk.host == 0 {
		tk.host = s.hosts.ref(k.host)
		s.remember(tk.host)
	} else {
		s.hosts.refs[tk.host]++
	}
	s.m[tk] = e
}

// del removes tk (s locked) and returns its entry.
func (s *shard) del(tk tkey) entry {
	e := s.m[tk]
	delete(s.m, tk)
	if s.hosts.unref(tk.host) {
		for i := range s.recent {
			if s.recent[i].id == tk.host {
				s.recent[i].h, s.recent[i].id = "", 0
			}
		}
	}
	return e
}

// key is the Key of tk (s locked).
func (s *shard) key(tk tkey) Key { return Key{ip: tk.ip, host: s.hosts.names[tk.host]} }
