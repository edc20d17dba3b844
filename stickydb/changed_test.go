package stickydb

import (
	"testing"
	"time"
)

// TestChangedClosesOnWrites: the channel taken before a write is closed by
// it (own bind, delete, a peer's event); a read, a sweep, a duplicate
// group or nothing at all leaves it open.
func TestChangedClosesOnWrites(t *testing.T) {
	a := newTestDB(t, "a", t0)
	b := newTestDB(t, "b", t0)
	k := mustKey(t, "10.0.0.1", "shop.test")
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := a.Changed()
	if closed(ch) {
		t.Fatal("closed before any write")
	}
	a.Lookup(k)
	a.Touch(k, t0)
	if closed(ch) {
		t.Fatal("closed by reads of an absent key")
	}
	if _, _, err := a.BindIfAbsent(k, "r1", t0); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("open after an own bind")
	}
	ch = a.Changed()
	if closed(ch) {
		t.Fatal("a fresh channel is closed")
	}
	a.Sweep(t0.Add(time.Hour), 0)
	if closed(ch) {
		t.Fatal("closed by a sweep (it removes, it does not write)")
	}

	ch = b.Changed()
	if _, err := b.Receive(a.OwnEvents(0, 10), t0); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("open after a peer's event was merged")
	}
	ch = b.Changed()
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
		t.Fatal("open after a delete")
	}
}

// TestChangedWaiterNeverMisses: writers in other goroutines, a waiter
// that takes Changed, checks, and waits: it sees every key it waits for.
func TestChangedWaiterNeverMisses(t *testing.T) {
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
			ch := db.Changed()
			if _, ok := db.Lookup(k); ok {
				break
			}
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("key %d: no wake-up in 10 s although the writer goes on", i)
			}
		}
	}
}
