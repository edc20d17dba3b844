package gossip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

func randKey(r *rand.Rand, origins int) TicketKey {
	var k TicketKey
	for i := range k.Secret {
		k.Secret[i] = byte(r.IntN(256))
	}
	k.Created = 1_700_000_000_000 + int64(r.IntN(20)) // few distinct times: ties on Created
	k.Origin = fmt.Sprintf("n%d", r.IntN(origins))
	return k
}

// The register settles on the newest Keep keys of everything delivered,
// whatever the order and grouping of the deliveries, and merging again
// changes nothing.
func TestTicketRingMergeOrderIndependent(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for round := range 200 {
		keep := 1 + r.IntN(5)
		keys := make([]TicketKey, 1+r.IntN(12))
		for i := range keys {
			keys[i] = randKey(r, 3)
		}
		if r.IntN(4) == 0 { // a key delivered twice
			keys = append(keys, keys[r.IntN(len(keys))])
		}
		want := append([]TicketKey(nil), keys...)
		sort.Slice(want, func(i, j int) bool { return want[i].newer(want[j]) })
		uniq := want[:0]
		for i, k := range want {
			if i == 0 || k != want[i-1] {
				uniq = append(uniq, k)
			}
		}
		if len(uniq) > keep {
			uniq = uniq[:keep]
		}
		for trial := range 5 {
			ring := ticketRing{keep: keep}
			perm := r.Perm(len(keys))
			for i := 0; i < len(perm); {
				n := 1 + r.IntN(len(perm)-i)
				batch := make([]TicketKey, 0, n)
				for _, j := range perm[i : i+n] {
					batch = append(batch, keys[j])
				}
				ring.merge(batch)
				i += n
			}
			got := ring.all()
			if fmt.Sprint(got) != fmt.Sprint(uniq) {
				t.Fatalf("seed %d round %d trial %d: got %v, want %v", seed, round, trial, got, uniq)
			}
			if ring.merge(keys) || ring.merge(got) {
				t.Fatalf("seed %d round %d: merging again changed the set", seed, round)
			}
		}
	}
}

// Rotation: a node makes its first key only after the grace, a new one when
// the newest is Rotate + its jitter old, stamped after the newest; the set
// keeps Keep keys and drops the oldest.
func TestTicketRingRotation(t *testing.T) {
	const rotate = time.Hour
	ring := ticketRing{keep: 3}
	now := int64(1_700_000_000_000)
	jitter := rotationJitter("node-a", rotate)
	if jitter < 0 || jitter >= rotate/8 {
		t.Fatalf("jitter %v outside [0, %v)", jitter, rotate/8)
	}
	if rotationJitter("node-a", rotate) != jitter {
		t.Fatal("jitter is not a function of the name")
	}
	if ring.due(now, time.Second, 2*time.Second, rotate, jitter) {
		t.Fatal("an empty set is due before the grace")
	}
	if !ring.due(now, 2*time.Second, 2*time.Second, rotate, jitter) {
		t.Fatal("an empty set is not due after the grace")
	}
	var made []TicketKey
	for i := range 5 {
		k, err := newTicketKey("node-a", now, ring.all())
		if err != nil {
			t.Fatal(err)
		}
		if !ring.merge([]TicketKey{k}) {
			t.Fatalf("key %d did not change the set", i)
		}
		made = append(made, k)
		if ring.due(now+(rotate+jitter).Milliseconds()-1, time.Hour, 0, rotate, jitter) {
			t.Fatalf("due before rotate + jitter")
		}
		now += (rotate + jitter).Milliseconds()
		if !ring.due(now, time.Hour, 0, rotate, jitter) {
			t.Fatalf("not due at rotate + jitter")
		}
	}
	got := ring.all()
	if len(got) != 3 || got[0] != made[4] || got[1] != made[3] || got[2] != made[2] {
		t.Fatalf("set after 5 rotations: %v", got)
	}
	// A key made while a newer one (a peer's clock ahead) is known is
	// stamped after it, so it becomes the newest everywhere.
	ahead := TicketKey{Created: now + 5000, Origin: "node-b", Secret: [32]byte{9}}
	ring.merge([]TicketKey{ahead})
	k, _ := newTicketKey("node-a", now, ring.all())
	if k.Created != ahead.Created+1 {
		t.Fatalf("created %d, want %d", k.Created, ahead.Created+1)
	}
	if k.Secret == ([32]byte{}) || k.Secret == made[4].Secret {
		t.Fatal("secret not random")
	}
}

// What a peer can send is bounded: at most MaxTicketKeys keys, 32-byte
// secrets, no key from far in the future, none at all over a gossip
// without a key. Refused messages are dropped and counted.
func TestTicketKeysBounds(t *testing.T) {
	caps := DefaultConfig().Caps
	keys := make([]TicketKey, MaxTicketKeys+1)
	for i := range keys {
		keys[i] = TicketKey{Secret: [32]byte{byte(i)}, Created: int64(1000 + i), Origin: "p"}
	}
	ok := encodeTicketKeys("p", keys[:MaxTicketKeys])
	if m, err := decodeTicketKeys(ok[headerLen:], &caps); err != nil || len(m.Keys) != MaxTicketKeys || m.Keys[3] != keys[3] {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := decodeTicketKeys(encodeTicketKeys("p", keys)[headerLen:], &caps); !errors.Is(err, ErrOverCap) {
		t.Fatalf("%d keys: err %v", len(keys), err)
	}
	for cut := 0; cut < len(ok)-headerLen; cut++ {
		if _, err := decodeTicketKeys(ok[headerLen:headerLen+cut], &caps); err == nil {
			t.Fatalf("a message cut at %d decoded", cut)
		}
	}
	// A short secret.
	w := getWriter(msgTicketKeys)
	w.str("p")
	w.uint(1)
	w.bin(make([]byte, 16))
	w.int(1000)
	w.str("p")
	short := w.bytes()
	putWriter(w)
	if _, err := decodeTicketKeys(short[headerLen:], &caps); !errors.Is(err, ErrMalformed) {
		t.Fatalf("16-byte secret: err %v", err)
	}

	newNode := func(key []byte) *Node {
		t.Helper()
		cfg := testConfig(t)
		cfg.Key = key
		cfg.OnTicketKeys = func([][32]byte) {}
		db, err := stickydb.New(stickydb.DefaultConfig("me"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(cfg, db)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	now := time.Now()
	good := []TicketKey{{Secret: [32]byte{1}, Created: now.UnixMilli(), Origin: "p"}}
	future := []TicketKey{{Secret: [32]byte{2}, Created: now.Add(2 * time.Hour).UnixMilli(), Origin: "p"}}

	keyed := newNode(make([]byte, 32))
	d := &delegate{n: keyed}
	d.NotifyMsg(encodeTicketKeys("p", good))
	if got := keyed.TicketKeys(); len(got) != 1 || got[0] != good[0] {
		t.Fatalf("keyed node holds %v", got)
	}
	d.NotifyMsg(encodeTicketKeys("p", future))
	d.NotifyMsg(short)
	if got := keyed.TicketKeys(); len(got) != 1 {
		t.Fatalf("keyed node took a refused key: %v", got)
	}
	if e := keyed.stats.decodeErrors.Load(); e != 2 {
		t.Fatalf("decode errors %d, want 2", e)
	}

	open := newNode(nil)
	(&delegate{n: open}).NotifyMsg(encodeTicketKeys("p", good))
	if got := open.TicketKeys(); len(got) != 0 {
		t.Fatalf("a node without a gossip key took keys: %v", got)
	}
	if open.stats.decodeErrors.Load() != 1 {
		t.Fatal("ticket keys over a keyless gossip not counted")
	}
}

// Over an encrypted gossip every node ends with the same keys, rotated by
// one node at a time; a late joiner adopts the fleet's keys instead of
// making its own. Without a key, each node has its own.
func TestTicketKeysReplicated(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			var mu sync.Mutex
			applied := map[string][][32]byte{}
			o := clusterOpts{node: func(i int, cfg *Config) {
				name := nodeName(i)
				cfg.TicketKeyRotate = time.Second
				cfg.TicketKeyGrace = 300 * time.Millisecond
				cfg.OnTicketKeys = func(keys [][32]byte) {
					mu.Lock()
					defer mu.Unlock()
					applied[name] = keys
				}
			}}
			if shared {
				o.key = make([]byte, 32)
			}
			c := startCluster(t, 3, o)
			first := func(i int) ([32]byte, int) {
				mu.Lock()
				defer mu.Unlock()
				k := applied[nodeName(i)]
				if len(k) == 0 {
					return [32]byte{}, 0
				}
				return k[0], len(k)
			}
			sameEverywhere := func(nodes int) bool {
				k0, n0 := first(0)
				if n0 != 3 {
					return false
				}
				for i := 1; i < nodes; i++ {
					if k, n := first(i); n != 3 || k != k0 {
						return false
					}
				}
				return true
			}
			if !shared {
				eventually(t, 10*time.Second, func() bool {
					_, a := first(0)
					_, b := first(1)
					return a == 3 && b == 3
				}, func() string { return "keyless nodes did not rotate their own keys" })
				for _, n := range c.nodes {
					for _, k := range n.TicketKeys() {
						if k.Origin != n.Name() {
							t.Fatalf("%s holds a key of %s over a keyless gossip", n.Name(), k.Origin)
						}
					}
				}
				return
			}
			eventually(t, 10*time.Second, func() bool { return sameEverywhere(3) }, func() string { return "nodes do not share their keys" })
			// Rotations come from one node at a time: across several
			// periods the fleet makes about one key per period, not one
			// per node (3 per period). Up to 2 per period are allowed: a
			// second node may rotate before the first one's key reaches
			// it when their delays are close.
			const window = 5 * time.Second
			periods := int(window / time.Second)
			deadline := time.Now().Add(window)
			seen := map[TicketKey]bool{}
			origins := map[string]bool{}
			for time.Now().Before(deadline) {
				for _, k := range c.nodes[0].TicketKeys() {
					seen[k] = true
					origins[k.Origin] = true
				}
				time.Sleep(20 * time.Millisecond)
			}
			if limit := 3 + 2*(periods+1); len(seen) > limit {
				t.Fatalf("%d keys seen in %v (%d rotation periods, limit %d): nodes rotate together", len(seen), window, periods, limit)
			}
			late := c.add(3)
			eventually(t, 10*time.Second, func() bool { return sameEverywhere(4) }, func() string { return "a late joiner did not take the fleet's keys" })
			t.Logf("%d keys seen, origins %v; late joiner %s holds %d", len(seen), origins, late.Name(), len(late.TicketKeys()))
		})
	}
}

// A node of an encrypted fleet without a TLS listener (no OnTicketKeys)
// makes no key but holds and passes on the fleet's.
func TestTicketKeysNodeWithoutTLS(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{key: make([]byte, 32), node: func(i int, cfg *Config) {
		cfg.TicketKeyGrace = 100 * time.Millisecond
		if i == 1 {
			cfg.OnTicketKeys = func([][32]byte) {}
		}
	}})
	eventually(t, 10*time.Second, func() bool { return len(c.nodes[0].TicketKeys()) == 1 },
		func() string { return "the node without TLS does not hold the fleet's key" })
	time.Sleep(300 * time.Millisecond) // past its grace: it must still make none
	for _, k := range c.nodes[0].TicketKeys() {
		if k.Origin != c.nodes[1].Name() {
			t.Fatalf("the node without TLS made a key: %+v", k.Origin)
		}
	}
	// A node that joins later gets the key from either.
	c.add(2)
	eventually(t, 10*time.Second, func() bool { return len(c.nodes[2].TicketKeys()) == 1 },
		func() string { return "a late joiner did not receive the key" })
}
