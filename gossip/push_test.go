package gossip

import (
	"math"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/time/rate"
)

// TestPushBudget: a burst of binds on one node leaves in batches, within
// the per-peer budget (PushBurst groups at once, then PushBurst per
// PushInterval), and reaches every node. A push per event, or pacing
// that ignores the budget, sends far more groups than the bound allows.
func TestPushBudget(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	src := c.nodes[0]
	cfg := src.cfg
	before := src.Stats().Pushes
	const binds = 3000
	start := time.Now()
	for i := range binds {
		if _, _, err := src.Store().BindIfAbsent(testKey(t, i), replicas[i%3], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	last := testKey(t, binds-1)
	eventually(t, 10*time.Second, func() bool {
		for _, n := range c.nodes[1:] {
			if _, ok := n.DB().Lookup(last); !ok {
				return false
			}
		}
		return true
	}, func() string { return "burst not replicated" })
	elapsed := time.Since(start)
	pushes := src.Stats().Pushes - before
	// Each push round takes a token from every peer it sends to; rounds
	// to the two peers may alternate, so the bound is per peer, twice.
	perPeer := float64(cfg.PushBurst) + elapsed.Seconds()*float64(cfg.PushBurst)/cfg.PushInterval.Seconds()
	bound := uint64(2*perPeer) + 2
	t.Logf("%d binds in %v: %d push rounds (bound %d)", binds, elapsed, pushes, bound)
	if pushes == 0 || pushes > bound {
		t.Fatalf("%d push rounds for %d binds in %v; budget allows at most %d", pushes, binds, elapsed, bound)
	}
	if pushes*4 > binds {
		t.Fatalf("%d push rounds for %d binds: not batched", pushes, binds)
	}
	c.waitConverged(10 * time.Second)
}

// The steady push rate per peer is the node's PushBudget shared by its
// live peers, never above PushBurst per PushInterval nor below two per
// HeartbeatInterval.
func TestPushRateSharesBudget(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		peers int
		want  float64
	}{
		{0, 1000}, {1, 1000}, {2, 500}, {9, 1000.0 / 9}, {49, 1000.0 / 49}, {1000, 4},
	} {
		if got := float64(c.pushRate(tc.peers)); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("pushRate(%d) = %v, want %v", tc.peers, got, tc.want)
		}
	}
}

// A node sets each live peer's push rate for the fleet's size as
// membership changes.
func TestPushRateFollowsMembership(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{node: func(_ int, c *Config) { c.PushBudget = 100 }})
	for _, n := range c.nodes {
		eventually(t, 10*time.Second, func() bool {
			for _, p := range n.peers.live() {
				if p.pushTokens.Limit() != 50 {
					return false
				}
			}
			return len(n.peers.live()) == 2
		}, func() string { return n.self + ": push rate per peer is not PushBudget / 2 peers" })
	}
}

// Peers whose budget is spent are pushed in rounds: however their buckets
// emptied (at different moments, as peers join and links free up), after
// one round they are all pushed at the same instants, once per token
// period, and never more often than their budget, also while new events
// kick a push every millisecond or so. Without the rounds each peer keeps
// its own phase (pushed at the first kick after its token refilled), and
// a new event reaches the last peer only after about a whole period.
func TestPacedPeersPushInRounds(t *testing.T) {
	// Token rates of the default budget at 8 to 100 nodes, and the
	// floor (two per HeartbeatInterval): periods that are no whole number
	// of nanoseconds test the rounding.
	for _, r := range []rate.Limit{1000.0 / 9, 1000.0 / 7, 50, 30, 1000.0 / 49, 20, 1000.0 / 99, 4} {
		n := &Node{cfg: DefaultConfig(), roundPhase: 7_777_777}
		const burst = 20
		period := time.Duration(float64(time.Second) / float64(r))
		start := time.Unix(1_800_000_000, 123_456_789)
		peers := make([]*peer, 7)
		for i := range peers {
			peers[i] = &peer{pushTokens: rate.NewLimiter(r, burst)}
			// Each bucket empties at its own moment, up to most of a
			// period apart.
			peers[i].pushTokens.ReserveN(start.Add(time.Duration(i)*period/8), burst)
		}
		now := start.Add(period)
		end := now.Add(10 * time.Second)
		want := int(10 * float64(r))
		pushes := make([][]time.Time, len(peers))
		var rounds []time.Time // instants at which some peer was pushed
		for step := 0; now.Before(end); step++ {
			var wait time.Duration
			pushed := false
			for i, p := range peers {
				d := n.busy(p, now)
				if d == 0 {
					n.took(p, now)
					pushes[i] = append(pushes[i], now)
					pushed = true
					continue
				}
				if wait == 0 || d < wait {
					wait = d
				}
			}
			if pushed {
				rounds = append(rounds, now)
			}
			// The pace timer fires at its deadline or a little late; a
			// new event kicks a push every 1.3 ms (a busy node) before
			// that.
			now = now.Add(min(wait+time.Duration(step%5)*time.Microsecond, 1300*time.Microsecond))
		}
		if len(rounds) > want+len(peers) {
			t.Fatalf("rate %v: pushes went at %d distinct instants in 10 s for %d rounds: not gathered into rounds", r, len(rounds), want)
		}
		// Once gathered, every peer is pushed in every round: one token
		// period apart, never a round skipped, never two in one.
		for i, ts := range pushes {
			if len(ts) < want-2 || len(ts) > want+2 {
				t.Errorf("rate %v: peer %d pushed %d times in 10 s, want %d", r, i, len(ts), want)
			}
			for j := 2; j < len(ts); j++ {
				if gap := ts[j].Sub(ts[j-1]); gap < period-time.Millisecond/2 || gap > period+time.Millisecond/2 {
					t.Fatalf("rate %v: peer %d pushed %v after its previous push, want one token period (%v): a round skipped or doubled", r, i, gap, period)
				}
			}
		}
	}
}

// A peer pushed at a round, with its bucket emptied there, is next free
// at the following round, never one later: the refill, computed in
// floating point, can end a hair after the round, and without the slack
// in the wait 75 of these 3,000 cases skipped a round (and with one peer
// left, or all alike, nothing else would arm the timer for it).
func TestPacedPeerIsFreeAtTheNextRound(t *testing.T) {
	n := &Node{cfg: DefaultConfig()}
	for k := 1; k < 3000; k++ {
		r := rate.Limit(1000.0 / float64(k%200+1))
		period := int64(float64(time.Second) / float64(r))
		r0 := time.Unix(0, (1_800_000_000_000_000_000/period+int64(k))*period)
		p := &peer{pushTokens: rate.NewLimiter(r, 20)}
		p.pushTokens.ReserveN(r0, 20) // empty at the round r0
		now := r0.Add(time.Duration(period / 3))
		d := n.busy(p, now)
		if got := now.Add(d).UnixNano(); got != r0.UnixNano()+period {
			t.Fatalf("rate %v: busy %v after a round sends the peer to %d ns after it, want the next round, %d ns after", r, d, got-r0.UnixNano(), period)
		}
		// At that round (or a little later: timers are late, never
		// early) it is free.
		if d := n.busy(p, now.Add(d+time.Duration(k%3)*time.Microsecond)); d != 0 {
			t.Fatalf("rate %v: not free at its round (busy %v)", r, d)
		}
	}
}

// roundWait lands on a multiple of the token period (plus the node's
// phase) at or after the moment the tokens needed have refilled.
func TestRoundWait(t *testing.T) {
	base0 := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		now  time.Duration
		want time.Duration
	}{
		// One token at 20/s is ready 50 ms on; with a phase of 3 ms the
		// rounds are at 3, 53, 103 ms.
		{0, 53 * time.Millisecond}, {2 * time.Millisecond, 51 * time.Millisecond}, {4 * time.Millisecond, 99 * time.Millisecond},
	} {
		if got := roundWait(base0.Add(tc.now), 1, 20, int64(3*time.Millisecond)); got != tc.want {
			t.Errorf("roundWait(+%v, phase 3 ms) = %v, want %v", tc.now, got, tc.want)
		}
	}
	base := time.Unix(1_800_000_000, 0) // a multiple of every period below
	for _, tc := range []struct {
		now  time.Duration // after base
		need float64
		r    rate.Limit
		want time.Duration
	}{
		{0, 1, 20, 50 * time.Millisecond},
		{10 * time.Millisecond, 0.5, 20, 40 * time.Millisecond},    // ready at 35 ms: round at 50
		{10 * time.Millisecond, 0.9, 20, 90 * time.Millisecond},    // ready at 55 ms: next round 100 ms
		{49 * time.Millisecond, 0.01, 20, time.Millisecond},        // ready at 49.5 ms
		{0, 1e-12, 20, time.Microsecond},                           // ready now, on a round
		{300 * time.Microsecond, 1, 1000, 1700 * time.Microsecond}, // 1 ms period
		{0, 1, rate.Limit(1e12), time.Microsecond},                 // period under 1 ns: no grid
	} {
		if got := roundWait(base.Add(tc.now), tc.need, tc.r, 0); got != tc.want {
			t.Errorf("roundWait(+%v, %v, %v) = %v, want %v", tc.now, tc.need, tc.r, got, tc.want)
		}
		// A phase of a whole period is none.
		if got := roundWait(base.Add(tc.now), tc.need, tc.r, int64(float64(time.Second)/float64(tc.r))); got != tc.want && tc.r < 1e9 {
			t.Errorf("roundWait(+%v, %v, %v, a period) = %v, want %v", tc.now, tc.need, tc.r, got, tc.want)
		}
	}
}

// Pushed groups carry the vector every VectorInterval up to vectorPeers
// peers, then less often in proportion, never rarer than a heartbeat.
func TestVectorEveryScalesWithPeers(t *testing.T) {
	n := &Node{cfg: DefaultConfig(), watchdog: 5 * time.Second}
	for _, tc := range []struct {
		peers int
		want  time.Duration
	}{
		{0, 100 * time.Millisecond}, {3, 100 * time.Millisecond}, {10, 100 * time.Millisecond},
		{20, 200 * time.Millisecond}, {49, 490 * time.Millisecond}, {99, 990 * time.Millisecond},
		{1000, 1250 * time.Millisecond},
	} {
		if got := n.vectorEvery(tc.peers); got != tc.want {
			t.Errorf("vectorEvery(%d) = %v, want %v", tc.peers, got, tc.want)
		}
	}
}

// Heartbeats go every HeartbeatInterval up to heartbeatPeers peers, then
// less often in proportion (a node sends at most heartbeatPeers per
// HeartbeatInterval), never rarer than a quarter of the core's Watchdog.
func TestHeartbeatEveryScalesWithPeers(t *testing.T) {
	n := &Node{cfg: DefaultConfig(), watchdog: 5 * time.Second}
	for _, tc := range []struct {
		peers int
		want  time.Duration
	}{
		{0, 500 * time.Millisecond}, {2, 500 * time.Millisecond}, {25, 500 * time.Millisecond},
		{49, 980 * time.Millisecond}, {60, 1200 * time.Millisecond}, {99, 1250 * time.Millisecond}, {1000, 1250 * time.Millisecond},
	} {
		if got := n.heartbeatEvery(tc.peers); got != tc.want {
			t.Errorf("heartbeatEvery(%d) = %v, want %v", tc.peers, got, tc.want)
		}
	}
	// A HeartbeatInterval near the Watchdog is never lengthened past it.
	n.cfg.HeartbeatInterval, n.watchdog = 4*time.Second, 5*time.Second
	if got := n.heartbeatEvery(99); got != 4*time.Second {
		t.Errorf("heartbeatEvery(99) with HeartbeatInterval 4s, Watchdog 5s = %v, want 4s", got)
	}
}

// live() is cached until a peer goes up or down, and a slice handed out
// earlier is never changed under its holder.
func TestPeerTableLiveCache(t *testing.T) {
	var tb peerTable
	tb.init()
	cfg := DefaultConfig()
	members := map[string]memberlist.Node{}
	for _, name := range []string{"c", "a", "b"} {
		members[name] = memberlist.Node{Name: name}
		tb.up(name, members[name], cfg)
	}
	l1 := tb.live()
	if len(l1) != 3 || l1[0].name != "a" || l1[2].name != "c" {
		t.Fatalf("live = %v", names(l1))
	}
	if l2 := tb.live(); &l2[0] != &l1[0] {
		t.Fatal("live() rebuilt without a change")
	}
	delete(members, "b")
	if down := tb.downExcept(members); len(down) != 1 || down[0].name != "b" {
		t.Fatalf("down = %v", names(down))
	}
	if l := tb.live(); len(l) != 2 || l[0].name != "a" || l[1].name != "c" {
		t.Fatalf("after b went down: live = %v", names(l))
	}
	if len(l1) != 3 || l1[1].name != "b" {
		t.Fatalf("an earlier answer changed: %v", names(l1))
	}
	tb.up("b", memberlist.Node{Name: "b"}, cfg)
	if l := tb.live(); len(l) != 3 || l[1].name != "b" {
		t.Fatalf("after b came back: live = %v", names(l))
	}
}

func names(ps []*peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name
	}
	return out
}
