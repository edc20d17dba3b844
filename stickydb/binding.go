package stickydb

import "fmt"

// Binding is what the fleet agrees on for one key (Fig. 3).
type Binding struct {
	// Replica is the backend the key is bound to; "" when Deleted.
	Replica string
	// Expiry is the expiry announced to the fleet, unix milliseconds. A node
	// extends its own copy on use (see DB.Touch) without announcing every
	// extension.
	Expiry int64
	// Generation grows by one with every rebind or delete of the key. The
	// higher generation wins a merge.
	Generation uint32
	// Origin is the node that made this generation of the binding.
	Origin string
	// Deleted marks a tombstone: it keeps a delete from being undone by an
	// older bind that is still travelling, until it expires itself.
	Deleted bool
}

// MaxGeneration bounds Binding.Generation. Generations never wrap: a
// received binding above the bound is refused (ErrGeneration, counted
// against the sender), and a key at the bound cannot be rebound or deleted
// here until its binding is past its horizon (announced expiry +
// RefreshThreshold + MaxSkew), when the next bind starts again at
// generation 1. An honest fleet never comes near it: one rebind of the same
// key every millisecond, never letting it expire, for twelve days.
const MaxGeneration = 1 << 30

// Live reports whether the binding serves requests at nowMs.
func (b Binding) Live(nowMs int64) bool { return !b.Deleted && b.Expiry > nowMs }

// EventKind says what an event did. The merge does not look at it: the
// binding it carries says everything; the kind is for counters and people.
type EventKind uint8

// Event kinds. The values are on the wire and on disk: only append.
const (
	KindBind    EventKind = 1 // a new binding
	KindRefresh EventKind = 2 // a later expiry for the same binding
	KindRebind  EventKind = 3 // the same key to another replica, generation + 1
	KindDelete  EventKind = 4 // a tombstone, generation + 1
)

func (k EventKind) String() string {
	switch k {
	case KindBind:
		return "bind"
	case KindRefresh:
		return "refresh"
	case KindRebind:
		return "rebind"
	case KindDelete:
		return "delete"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one entry of a change log (Fig. 4): the binding a key took, and
// its sequence number in its origin's (origin, epoch) numbering.
type Event struct {
	Seq     uint64
	Kind    EventKind
	Key     Key
	Binding Binding
}

// Record is a key with its binding: one row of a snapshot or a full copy.
type Record struct {
	Key     Key
	Binding Binding
}

// Group is a change group (the reference text's "update"): the events
// From..To, contiguous, of one origin's epoch, with the sender's version
// vector. A group with no events (From == To+1) is a heartbeat: it carries
// only the vector. The sender is the origin, or a third node serving the
// origin's events from its change log table.
type Group struct {
	Origin string
	Epoch  int64
	From   uint64
	To     uint64
	Events []Event
	Sender string
	Vector Vector // the sender's vector; read-only once sent
}

// check verifies that the group's numbers add up. It does not look at the
// receiver's state.
func (g *Group) check() error {
	if !validName(g.Origin) || !validName(g.Sender) || g.Epoch <= 0 || g.From == 0 {
		return ErrMalformed
	}
	if uint64(len(g.Events)) != g.To+1-g.From || g.To+1 < g.From {
		return ErrMalformed
	}
	for i := range g.Events {
		e := &g.Events[i]
		if e.Seq != g.From+uint64(i) || !e.Key.Valid() {
			return ErrMalformed
		}
		b := &e.Binding
		if e.Kind < KindBind || e.Kind > KindDelete || !validName(b.Origin) ||
			(b.Deleted != (e.Kind == KindDelete)) || (!b.Deleted && !validName(b.Replica)) ||
			(b.Deleted && b.Replica != "") {
			return ErrMalformed
		}
		// Only a refresh may carry a binding another node made: a node
		// cannot create bindings in another node's name.
		if e.Kind != KindRefresh && b.Origin != g.Origin {
			return ErrMalformed
		}
	}
	return nil
}
