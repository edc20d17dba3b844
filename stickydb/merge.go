package stickydb

// Merge returns the join of two bindings of the same key (Fig. 9). It is
// commutative, associative and idempotent, so every order of delivery gives
// every node the same result:
//
//   - the higher generation wins whole (a rebind or a delete supersedes);
//   - in one generation the replica is the one with the higher rendezvous
//     score for the key (a tombstone beats any replica), the expiry is the
//     later of the two, and the origin is the greater name among the
//     bindings that chose the winning replica.
//
// The expiry check of the reference text (step 552) depends on the clock,
// so it is done before Merge, not inside it.
func Merge(k Key, a, b Binding) Binding {
	return merge(k.Hash(), a, b)
}

func merge(kh uint64, a, b Binding) Binding {
	if a.Generation != b.Generation {
		if a.Generation > b.Generation {
			return a
		}
		return b
	}
	out := a
	switch {
	case replicaBeats(kh, b, a):
		out.Replica, out.Deleted, out.Origin = b.Replica, b.Deleted, b.Origin
	case !replicaBeats(kh, a, b) && b.Origin > a.Origin:
		out.Origin = b.Origin // same replica: the greater origin
	}
	if b.Expiry > out.Expiry {
		out.Expiry = b.Expiry
	}
	return out
}
