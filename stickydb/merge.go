package stickydb

// Merge returns the join of two bindings of the same key (Fig. 9). It is
// commutative, associative and idempotent, so every order of delivery gives
// every node the same result. A binding is an identity and an expiry, and
// the join takes each part's own join:
//
//   - the identity is the greatest of the two in the order (generation,
//     replica rank, origin): the higher generation wins (a rebind or a delete
//     supersedes); in one generation the replica with the higher rendezvous
//     score for the key (a tombstone beats any replica); for one replica the
//     greater origin name;
//   - the expiry is the later of the two, whichever identity won, across
//     generations too, so nothing a winner superseded outlives it.
//
// Both parts are joins of total orders, so their product is a
// join-semilattice (see doc.go, "Convergence", for the expiry horizon).
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
// order (generation, replica rank, origin).
func identityBeats(kh uint64, x, y Binding) bool {
	switch {
	case x.Generation != y.Generation:
		return x.Generation > y.Generation
	case replicaBeats(kh, x, y):
		return true
	case replicaBeats(kh, y, x):
		return false
	}
	return x.Origin > y.Origin
}

// sameIdentity reports whether two bindings differ at most in expiry.
func sameIdentity(x, y Binding) bool {
	return x.Generation == y.Generation && x.Deleted == y.Deleted && x.Replica == y.Replica && x.Origin == y.Origin
}
