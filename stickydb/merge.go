package stickydb

// Merge returns the join of two bindings of the same key (Fig. 9). It is
// commutative, associative and idempotent on what the fleet agrees on (the
// replica, generation, tombstone and expiry), so every order of delivery
// gives every node the same database. A binding is an identity and an
// expiry, and the join takes each part's own join:
//
//   - the identity is the greater of the two in the order (generation,
//     replica rank): the higher generation wins (a rebind or a delete
//     supersedes); in one generation the replica with the higher rendezvous
//     score for the key (a tombstone beats any replica);
//   - the expiry is the later of the two, whichever identity won, across
//     generations too, so nothing a winner superseded outlives it.
//
// Both parts are joins of total orders, so their product is a
// join-semilattice (see doc.go, "Convergence", for the expiry horizon).
//
// Two bindings of one generation and replica (two nodes binding a new
// client at once: rendezvous hashing gives them the same replica) are the
// same binding; the result keeps a's Origin, the node that made it as this
// node first learnt it. Origin is who made a binding, for the per-origin
// cap and the admin page, not part of what the fleet agrees on: an order on
// it would not survive expiry (one node merges two such bindings while the
// first is alive and keeps the greater origin, another sees the first
// expire before the second arrives and keeps the second's; make soak found
// it in one seed in three at 1500 x 300).
func Merge(k Key, a, b Binding) Binding {
	return merge(k.Hash(), a, b)
}

func merge(kh uint64, a, b Binding) Binding {
	out := a
	if identityBeats(kh, b, a) {
		out = b
	}
	out.Expiry = max(a.Expiry, b.Expiry)
	return out
}

// identityBeats reports whether x's identity is greater than y's in the
// order (generation, replica rank); false for the same identity.
func identityBeats(kh uint64, x, y Binding) bool {
	if x.Generation != y.Generation {
		return x.Generation > y.Generation
	}
	return replicaBeats(kh, x, y)
}

// sameClass reports whether two bindings are the same binding as the
// fleet sees it: one generation, and one replica or both tombstones.
func sameClass(x, y Binding) bool {
	return x.Generation == y.Generation && x.Deleted == y.Deleted && (x.Deleted || x.Replica == y.Replica)
}

// sameIdentity reports whether two bindings differ at most in expiry.
func sameIdentity(x, y Binding) bool {
	return x.Generation == y.Generation && x.Deleted == y.Deleted && x.Replica == y.Replica && x.Origin == y.Origin
}
