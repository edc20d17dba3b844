package stickydb

import (
	"sync"
	"sync/atomic"
)

// Watch returns a channel that is closed at the next write to k after the
// call: a binding made, moved, extended by a write, deleted, or merged
// from a peer or a snapshot (expiry and Sweep are not writes), and a
// cancel function to call when the caller stops waiting (it may be called
// more than once, and after the channel closed).
//
// To wait until k meets a condition, Watch first, then check, and wait on
// the channel only if the condition does not hold yet: a write between the
// check and the wait has closed the channel already. The admin API's wait
// for a binding does this. A write to another key wakes nobody, so a
// waiter costs nothing while the node writes other keys.
func (db *DB) Watch(k Key) (changed <-chan struct{}, cancel func()) {
	return db.watches.watch(k)
}

// watches are Watch's channels, one per watched key, shared by its
// watchers. A write pays one atomic load while nobody watches, so store
// can fire it on every write.
type watches struct {
	n  atomic.Int32 // len(m)
	mu sync.Mutex
	m  map[Key]*watch
}

type watch struct {
	ch   chan struct{}
	refs int
}

func (ws *watches) watch(k Key) (<-chan struct{}, func()) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.m == nil {
		ws.m = map[Key]*watch{}
	}
	w := ws.m[k]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		ws.m[k] = w
		ws.n.Add(1)
	}
	w.refs++
	var once sync.Once
	return w.ch, func() {
		once.Do(func() {
			ws.mu.Lock()
			defer ws.mu.Unlock()
			if ws.m[k] != w { // fired already
				return
			}
			if w.refs--; w.refs == 0 {
				delete(ws.m, k)
				ws.n.Add(-1)
			}
		})
	}
}

// fire closes k's channel, if anyone watches k.
func (ws *watches) fire(k Key) {
	if ws.n.Load() == 0 {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.m[k]; w != nil {
		close(w.ch)
		delete(ws.m, k)
		ws.n.Add(-1)
	}
}
