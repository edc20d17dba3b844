package gossip

import (
	"bytes"
	"crypto/rand"
	"hash/fnv"
	"sort"
	"sync"
	"time"
)

// TLS session ticket keys are fleet-wide, so that a client resumes its TLS
// session on whichever node it reaches next. The fleet's keys are one
// small replicated register: a set of at most TicketKeyKeep keys, each
// named by its creation time (the maker's clock, unix ms) and its maker,
// ordered newest first. A merge is the union cut to the newest Keep, so
// every node settles on the same set whatever the order of delivery. The
// newest key encrypts new tickets; every key of the set decrypts.
//
// A node makes a key when the newest is TicketKeyRotate old (plus a delay
// of its own, up to an eighth of the period, drawn from its name, so that
// one node rotates and the others receive its key instead of rotating too),
// or when it has none TicketKeyGrace after its start (a node joining a
// fleet receives the fleet's keys from its first peer before). A new key
// goes reliably to every live peer at once, the whole set to a peer that
// comes up and to every peer every drainResend.
//
// Keys are secrets: they go only over an encrypted gossip (Config.Key).
// Without a key the node keeps and rotates its keys alone, sends none, and
// drops (and counts) ticket keys a peer sends. A node without a TLS
// listener (OnTicketKeys nil) makes no keys but, in an encrypted fleet,
// keeps and resends the fleet's.

// TicketKey is one session ticket key of the fleet.
type TicketKey struct {
	Secret  [32]byte
	Created int64  // unix ms of the maker's clock
	Origin  string // the node that made it
}

// newer orders keys: later creation first, then the larger origin, then the
// larger secret (two keys with one name only come from a faulty peer; the
// order must still be total for every node to agree).
func (a TicketKey) newer(b TicketKey) bool {
	if a.Created != b.Created {
		return a.Created > b.Created
	}
	if a.Origin != b.Origin {
		return a.Origin > b.Origin
	}
	return bytes.Compare(a.Secret[:], b.Secret[:]) > 0
}

// MaxTicketKeys bounds TicketKeyKeep and the keys accepted per message.
const MaxTicketKeys = 16

// ticketRing is the register: the newest keep keys, newest first.
type ticketRing struct {
	mu       sync.Mutex
	keep     int
	keys     []TicketKey
	lastSent time.Time // run loop only
}

// merge takes keys in and reports whether the set changed.
func (r *ticketRing) merge(in []TicketKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := append(append([]TicketKey(nil), r.keys...), in...)
	sort.Slice(all, func(i, j int) bool { return all[i].newer(all[j]) })
	out := all[:0]
	for i, k := range all {
		if i > 0 && k == all[i-1] {
			continue
		}
		if len(out) == r.keep {
			break
		}
		out = append(out, k)
	}
	changed := len(out) != len(r.keys)
	for i := 0; !changed && i < len(out); i++ {
		changed = out[i] != r.keys[i]
	}
	r.keys = append(r.keys[:0:0], out...)
	return changed
}

func (r *ticketRing) all() []TicketKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TicketKey(nil), r.keys...)
}

// due reports whether a node should make a key at now (unix ms): it has
// none and may (sinceStart >= grace), or the newest is rotate + jitter old.
func (r *ticketRing) due(now int64, sinceStart, grace, rotate, jitter time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.keys) == 0 {
		return sinceStart >= grace
	}
	return now-r.keys[0].Created >= (rotate + jitter).Milliseconds()
}

// rotationJitter is this node's delay past the rotation period: up to an
// eighth of it, from the node's name.
func rotationJitter(self string, rotate time.Duration) time.Duration {
	span := rotate / 8
	if span <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(self))
	return time.Duration(h.Sum64() % uint64(span))
}

// newTicketKey makes a key stamped strictly after the newest known one.
func newTicketKey(self string, now int64, newest []TicketKey) (TicketKey, error) {
	k := TicketKey{Created: now, Origin: self}
	if len(newest) > 0 && newest[0].Created >= now {
		k.Created = newest[0].Created + 1
	}
	_, err := rand.Read(k.Secret[:])
	return k, err
}

// TicketKeys returns the fleet's ticket keys this node holds, newest
// (the one that encrypts) first.
func (n *Node) TicketKeys() []TicketKey { return n.tickets.all() }

// ticketsOn reports whether this node uses ticket keys (it has a TLS
// listener): it makes keys when they are due.
func (n *Node) ticketsOn() bool { return n.cfg.OnTicketKeys != nil }

// ticketsShared reports whether ticket keys go over the gossip: only when
// it is encrypted. A node of an encrypted fleet without a TLS listener
// keeps and passes on the fleet's keys but makes none.
func (n *Node) ticketsShared() bool { return n.cfg.Key != nil }

// checkTicketKeys refuses a peer's keys that this node must not take: any
// at all over a gossip without a key, and keys made further in the future
// than one rotation period (a clock far ahead would stop the fleet's
// rotation).
func (n *Node) checkTicketKeys(m ticketMsg) error {
	if !n.ticketsShared() {
		return wireErr(ErrType, "ticket keys over a gossip without a key (never taken: keys must not travel in the clear)")
	}
	limit := n.now().Add(n.cfg.TicketKeyRotate).UnixMilli()
	for _, k := range m.Keys {
		if k.Created > limit {
			return wireErr(ErrMalformed, "ticket key of %s made at %d, over one rotation period ahead of this node's clock", k.Origin, k.Created)
		}
	}
	return nil
}

func (n *Node) onTicketKeys(m ticketMsg) {
	if m.Sender == n.self {
		return
	}
	if n.tickets.merge(m.Keys) {
		n.applyTicketKeys("received", m.Sender)
	}
}

func (n *Node) applyTicketKeys(how, from string) {
	keys := n.tickets.all()
	if len(keys) == 0 {
		return
	}
	n.log.Info().Str("how", how).Str("from", from).Int("keys", len(keys)).
		Int64("newest_created_ms", keys[0].Created).Str("newest_origin", keys[0].Origin).Msg("TLS ticket keys")
	secrets := make([][32]byte, len(keys))
	for i, k := range keys {
		secrets[i] = k.Secret
	}
	if n.cfg.OnTicketKeys != nil {
		n.cfg.OnTicketKeys(secrets)
	}
}

// ticketTick (run loop) makes a key when one is due, and resends the set
// every drainResend.
func (n *Node) ticketTick() {
	now := n.now()
	if n.ticketsOn() && n.tickets.due(now.UnixMilli(), time.Since(n.startedAt), n.cfg.TicketKeyGrace, n.cfg.TicketKeyRotate, n.ticketJitter) {
		k, err := newTicketKey(n.self, now.UnixMilli(), n.tickets.all())
		if err != nil {
			n.log.Error().Err(err).Msg("TLS ticket key: no randomness; the keys in force stay")
			return
		}
		n.tickets.merge([]TicketKey{k})
		n.applyTicketKeys("made", n.self)
		if n.ticketsShared() {
			msg := encodeTicketKeys(n.self, []TicketKey{k})
			for _, p := range n.peers.live() {
				n.sendReliable(p, msg)
			}
		}
	}
	if n.ticketsShared() && time.Since(n.tickets.lastSent) >= drainResend {
		n.tickets.lastSent = time.Now()
		n.resendTicketKeys(n.peers.live())
	}
}

// resendTicketKeys sends the whole set to the given peers (anti-entropy,
// and a peer that just came up).
func (n *Node) resendTicketKeys(to []*peer) {
	if !n.ticketsShared() {
		return
	}
	keys := n.tickets.all()
	if len(keys) == 0 {
		return
	}
	msg := encodeTicketKeys(n.self, keys)
	for _, p := range to {
		n.sendReliable(p, msg)
	}
}
