package stickydb

import (
	"fmt"
	"time"
)

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

// Generations order births, not only causality. A binding made where the
// key has none (or only an expired one) takes the clock's generation,
// birth(now): seconds since genEpoch. A rebind or a delete takes the next
// generation after the one it replaces, or the clock's when that is later.
// So a binding made after another one died wins over it wherever the two
// meet, whatever was merged before: with plain counters a fresh bind
// (generation 1) lost to a tombstone or a higher-ranked bind that had died
// before it was made, on the nodes that had merged the two while the first
// was alive, and the fleet disagreed (make soak, seeds 224783732 and
// 2795621208).
//
// MaxGeneration bounds Binding.Generation (year 2054 in seconds). A
// received binding above the bound, or more than MaxGenerationAhead ahead
// of the receiver's clock, is refused (ErrGeneration, counted against the
// sender): a keyed peer cannot pin a binding with a far-future generation.
const MaxGeneration = 1 << 30

// genEpoch is 2020-01-01T00:00:00Z, unix ms: generation 0 of the clock.
const genEpoch = 1577836800000

// MaxGenerationAhead is how far past the receiver's clock a generation may
// be: MaxSkew's worth, and room for a key rebound many times a second for
// an hour.
const MaxGenerationAhead = 3600 + 600

// BirthGeneration is the generation of a binding made at now where its key
// had none.
func BirthGeneration(now time.Time) uint32 { return birth(now.UnixMilli()) }

// birth is the clock's generation at nowMs.
func birth(nowMs int64) uint32 {
	if nowMs <= genEpoch {
		return 1
	}
	return uint32(min((nowMs-genEpoch)/1000+1, MaxGeneration))
}

// nextGen is the generation after old at nowMs.
func nextGen(old uint32, nowMs int64) uint32 { return max(old+1, birth(nowMs)) }

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
// only the vector, if any; one sent by its origin with Stated also says
// that the origin's events up to To exist (a claim on a hole, like its
// vector's own entry), so a lost tail is asked for even when the vector is
// not sent.
// The sender is the origin, or a third node serving the origin's events
// from its change log table.
type Group struct {
	Origin string
	Epoch  int64
	From   uint64
	To     uint64
	Events []Event
	Sender string
	Vector Vector // the sender's vector; read-only once sent
	// Stated: an empty group from its origin whose To is how far the
	// origin's events were pushed to this node (a heartbeat), which counts
	// as the origin's claim on a hole. Without it an empty group says
	// nothing of the origin's position.
	Stated bool
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
