package gossip

import (
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Store is what the proxy writes bindings through: the stickydb.DB methods
// of the same names, and a kick of the push loop whenever one made an own
// event, so that the first event after a quiet spell leaves at once. Every
// method is safe for concurrent use and never blocks on the network.
type Store struct {
	db *stickydb.DB
	n  *Node
}

// Touch is the hot path (DB.Touch): it makes no event and kicks nothing.
func (s *Store) Touch(k stickydb.Key, now time.Time) (stickydb.Hit, bool) { return s.db.Touch(k, now) }

// Lookup is DB.Lookup.
func (s *Store) Lookup(k stickydb.Key) (stickydb.Binding, bool) { return s.db.Lookup(k) }

// BindIfAbsent is DB.BindIfAbsent; a created binding is pushed at once.
func (s *Store) BindIfAbsent(k stickydb.Key, replica string, now time.Time) (stickydb.Binding, bool, error) {
	b, created, err := s.db.BindIfAbsent(k, replica, now)
	if created {
		s.n.kick()
	}
	return b, created, err
}

// Rebind is DB.Rebind; a change is pushed at once.
func (s *Store) Rebind(k stickydb.Key, from, to string, now time.Time) (stickydb.Binding, bool, error) {
	b, changed, err := s.db.Rebind(k, from, to, now)
	if changed {
		s.n.kick()
	}
	return b, changed, err
}

// Refresh is DB.Refresh. It does not say whether it made an event; a
// spurious kick costs one empty look at the log.
func (s *Store) Refresh(k stickydb.Key, now time.Time) (stickydb.Binding, error) {
	b, err := s.db.Refresh(k, now)
	if err == nil {
		s.n.kick()
	}
	return b, err
}

// Delete is DB.Delete; the tombstone is pushed at once.
func (s *Store) Delete(k stickydb.Key, now time.Time) (stickydb.Binding, error) {
	b, err := s.db.Delete(k, now)
	if err == nil {
		s.n.kick()
	}
	return b, err
}
