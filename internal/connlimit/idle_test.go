package connlimit

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// SetState keeps no order in l.idle; oldestIdleLocked must still find the
// connection idle the longest, and every idle connection. A model keeps
// each connection's state and idle time; random runs of SetState (the
// clock stepping between calls) and of taking the oldest out (as admit
// and the sweep do) must agree with it. Up to 40 connections: within
// placeWalk, where the order is exact.
func TestOldestIdleFollowsSetState(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := time.Unix(1_000_000, 0)
		l := &Listener{cfg: Config{Now: func() time.Time { return now }}}
		n := rapid.IntRange(1, 40).Draw(t, "conns")
		conns := make([]*Conn, n)
		idleAt := map[*Conn]time.Time{} // the model: idle connections and since when
		for i := range conns {
			conns[i] = &Conn{l: l}
		}
		check := func(step int) {
			l.mu.Lock()
			c := l.oldestIdleLocked()
			if c != nil {
				l.releaseLocked(c)
			}
			l.mu.Unlock()
			var want *Conn
			for m, at := range idleAt {
				if want == nil || at.Before(idleAt[want]) {
					want = m
				}
			}
			if c == nil || want == nil {
				if c != want {
					t.Fatalf("step %d: oldest idle %p, want %p", step, c, want)
				}
				return
			}
			if !idleAt[c].Equal(idleAt[want]) {
				t.Fatalf("step %d: took a connection idle since %v, the oldest is idle since %v", step, idleAt[c], idleAt[want])
			}
			delete(idleAt, c)
			c.gone = true
		}
		steps := rapid.IntRange(1, 400).Draw(t, "steps")
		for step := range steps {
			now = now.Add(time.Duration(rapid.IntRange(1, 3).Draw(t, "tick")) * time.Millisecond)
			if rapid.IntRange(0, 9).Draw(t, "op") == 0 {
				check(step)
				continue
			}
			c := conns[rapid.IntRange(0, n-1).Draw(t, "conn")]
			if c.gone {
				continue
			}
			if rapid.Bool().Draw(t, "idle") {
				if _, ok := idleAt[c]; !ok {
					idleAt[c] = now
				}
				SetState(c, http.StateIdle)
			} else {
				delete(idleAt, c)
				SetState(c, http.StateActive)
			}
		}
		for len(idleAt) > 0 {
			check(steps)
		}
		check(steps) // and then none
	})
}

// A connection that goes idle while the sweep or admit takes busy ones
// out of l.idle is never lost: after a storm of state changes from many
// goroutines, every connection left idle is found.
func TestOldestIdleLosesNoneUnderRace(t *testing.T) {
	l := &Listener{cfg: Config{Now: time.Now}}
	const n, rounds = 32, 2000
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = &Conn{l: l}
	}
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(c *Conn) {
			defer wg.Done()
			for r := range rounds {
				if r%2 == 0 {
					SetState(c, http.StateIdle)
				} else {
					SetState(c, http.StateActive)
				}
			}
			SetState(c, http.StateIdle) // each ends idle
		}(conns[i])
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // tidies as admit and the sweep do, without taking any
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			l.mu.Lock()
			l.oldestIdleLocked()
			l.mu.Unlock()
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	found := map[*Conn]bool{}
	l.mu.Lock()
	for c := l.oldestIdleLocked(); c != nil; c = l.oldestIdleLocked() {
		found[c] = true
		l.releaseLocked(c)
	}
	l.mu.Unlock()
	if len(found) != n {
		t.Fatalf("found %d of %d idle connections", len(found), n)
	}
}
