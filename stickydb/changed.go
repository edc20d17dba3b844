package stickydb

import "sync/atomic"

// Changed returns a channel that is closed at the next write to the table
// after the call: a binding made, moved, extended by a write, deleted, or
// merged from a peer or a snapshot. Expiry and Sweep are not writes.
//
// To wait until the table meets a condition, take Changed first, then
// check the condition, and wait on the channel only if it does not hold
// yet: a write between the check and the wait has closed the channel
// already. The admin API's wait for a binding does this.
func (db *DB) Changed() <-chan struct{} { return db.changed.wait() }

// changeSignal is Changed's channel. A write pays one atomic load while
// nobody waits, so store can fire it on every write.
type changeSignal struct{ ch atomic.Pointer[chan struct{}] }

func (s *changeSignal) wait() <-chan struct{} {
	for {
		if p := s.ch.Load(); p != nil {
			return *p
		}
		c := make(chan struct{})
		if s.ch.CompareAndSwap(nil, &c) {
			return c
		}
	}
}

func (s *changeSignal) fire() {
	if s.ch.Load() == nil {
		return
	}
	if p := s.ch.Swap(nil); p != nil {
		close(*p)
	}
}
