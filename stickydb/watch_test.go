package stickydb

import (
	"testing"
	"time"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestWatchClosesOnWritesToItsKey: the channel taken before a write to
// its key is closed by it (own bind, delete, a peer's event); a write to
// another key, a read, a sweep, a duplicate group or nothing at all leave
// it open; cancel forgets the watch.
func TestWatchClosesOnWritesToItsKey(t *testing.T) {
	a := newTestDB(t, "a", t0)
	b := newTestDB(t, "b", t0)
	k := mustKey(t, "10.0.0.1", "shop.test")
	other := mustKey(t, "10.0.0.2", "shop.test")

	ch, cancel := a.Watch(k)
	defer cancel()
	a.Lookup(k)
	a.Touch(k, t0)
	if _, _, err := a.BindIfAbsent(other, "r1", t0); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("closed by reads of k or a write to another key")
	}
	if _, _, err := a.BindIfAbsent(k, "r1", t0); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("open after an own bind of k")
	}
	cancel() // after the close: harmless

	ch, cancel = a.Watch(k)
	a.Sweep(t0.Add(time.Hour), 0)
	if closed(ch) {
		t.Fatal("closed by a sweep (it removes, it does not write)")
	}
	cancel()
	cancel()
	if a.watches.n.Load() != 0 || len(a.watches.m) != 0 {
		t.Fatalf("a cancelled watch is kept: %d", len(a.watches.m))
	}

	ch, cancel = b.Watch(k)
	defer cancel()
	ch2, cancel2 := b.Watch(k) // two watchers share k's channel
	defer cancel2()
	if _, err := b.Receive(a.OwnEvents(0, 10), t0); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) || !closed(ch2) {
		t.Fatal("open after a peer's event for k was merged")
	}
	ch, cancel = b.Watch(k)
	defer cancel()
	if _, err := b.Receive(a.OwnEvents(0, 10), t0); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("closed by a duplicate group, which changes nothing")
	}
	if _, err := b.Delete(k, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("open after a delete of k")
	}
}

// TestWatchWaiterNeverMisses: a writer in another goroutine, a waiter
// that watches each key, checks, and waits: it sees every key it waits
// for, and no watch is left behind.
func TestWatchWaiterNeverMisses(t *testing.T) {
	db := newTestDB(t, "a", t0)
	const n = 2000
	go func() {
		for i := range n {
			if _, _, err := db.BindIfAbsent(mustKey(t, netipFrom(i).String(), "h"), "r", t0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range n {
		k := mustKey(t, netipFrom(i).String(), "h")
		deadline := time.After(10 * time.Second)
		for {
			ch, cancel := db.Watch(k)
			if _, ok := db.Lookup(k); ok {
				cancel()
				break
			}
			select {
			case <-ch:
				cancel()
			case <-deadline:
				t.Fatalf("key %d: no wake-up in 10 s although the writer goes on", i)
			}
		}
	}
	if db.watches.n.Load() != 0 {
		t.Fatalf("%d watches left", db.watches.n.Load())
	}
}
