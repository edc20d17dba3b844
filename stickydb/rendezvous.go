package stickydb

import "math"

// Rendezvous (highest-random-weight) hashing. One function serves two
// purposes, so that they agree:
//
//   - the proxy picks a replica for a new client with Pick: every node
//     picks the same replica for the same key and the same pool, so two nodes
//     that bind a new client at once almost never conflict;
//   - the merge rule settles a conflict between two bindings of one
//     generation with Score: the replica with the higher score wins
//     (the reference text's "deterministic function of the request
//     identifier", step 585).

// NameHash hashes a replica name. Callers that pick often keep it with the
// replica (Candidate.Hash) so that picking hashes nothing but the key.
func NameHash(name string) uint64 { return mix64(fnv1a(name)) }

// Score is the unweighted rendezvous score of a replica for a key: a
// deterministic pseudo-random draw, the same on every node.
func Score(keyHash, nameHash uint64) uint64 { return mix64(keyHash ^ nameHash) }

// WeightedScore turns Score into weighted rendezvous hashing
// (w / -ln(u), u uniform in (0,1)): a replica of weight 2 wins twice as many
// keys as one of weight 1, and removing a replica moves only its own keys.
func WeightedScore(score uint64, weight float64) float64 {
	u := (float64(score>>11) + 0.5) / (1 << 53)
	return weight / -math.Log(u)
}

// Candidate is one replica a key may be bound to.
type Candidate struct {
	Name   string
	Hash   uint64  // NameHash(Name)
	Weight float64 // > 0; 1 when the pool does not weight its replicas
}

// Pick returns the index of the candidate with the highest weighted score for
// the key, or -1 when cands is empty. Ties (equal weighted scores) go to the
// greater name, so the result never depends on the order of cands.
func Pick(k Key, cands []Candidate) int {
	kh := k.Hash()
	best, bestScore := -1, -1.0
	for i := range cands {
		c := &cands[i]
		if c.Weight <= 0 {
			continue
		}
		s := WeightedScore(Score(kh, c.Hash), c.Weight)
		if best < 0 || s > bestScore || (s == bestScore && c.Name > cands[best].Name) {
			best, bestScore = i, s
		}
	}
	return best
}

// replicaBeats reports whether replica x wins a same-generation conflict
// against replica y for the key whose hash is kh. A tombstone (deleted)
// beats every replica: an operator's delete is not undone by a concurrent
// bind of the same generation.
func replicaBeats(kh uint64, x, y Binding) bool {
	if x.Deleted != y.Deleted {
		return x.Deleted
	}
	if x.Deleted || x.Replica == y.Replica {
		return false
	}
	sx, sy := Score(kh, NameHash(x.Replica)), Score(kh, NameHash(y.Replica))
	if sx != sy {
		return sx > sy
	}
	return x.Replica > y.Replica
}
