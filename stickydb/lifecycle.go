package stickydb

// Lifecycle: a node's start-up as state and transitions of the core.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// LifeConfig configures a node's Lifecycle.
type LifeConfig struct {
	// InitialCopy: once joined, ask one live peer for a full copy of its
	// database and vector (Fig. 12 step 715, a start without a disk; Fig. 11
	// step 662, a long outage), then the next peer, until one is merged or
	// every live peer was asked. Readiness waits for it.
	InitialCopy bool
	// CopyWait: a peer asked for the start-up copy that has sent no chunk
	// this long after is passed over for the next one (a peer over its
	// full-copy rate limit says nothing). Default 2s.
	CopyWait time.Duration
	// CopyTimeout: once chunks arrive, the copy is given this long from the
	// request before the next peer is asked. Default 30s.
	CopyTimeout time.Duration
	// CatchUpTimeout: the node is ready this long after joining even if it
	// has not caught up. Default 60s.
	CatchUpTimeout time.Duration
	// SeedWait: while a configured seed is not a live member yet
	// (SeedsMissing), readiness waits, for this long after joining at
	// most. Default 5s.
	SeedWait time.Duration
	// Reconcile: the node recovered from its disk in a way that must be
	// reconciled with what the peers sent (a long outage: the local
	// snapshot and own log merged after the peers' copy, Fig. 11 step
	// 665). Once caught up (or CatchUpTimeout), Ready.Reconcile asks the
	// shell to do it, and the node becomes ready only once the shell says
	// Reconciled: until then its binds stay provisional, so none can beat a
	// binding the disk still holds.
	Reconcile bool
	// Provisional: the node's binds are provisional (DB.SetProvisional)
	// from NewLifecycle until it is ready: they lose every conflict with
	// the bindings the fleet already holds.
	Provisional bool
}

func (c LifeConfig) withDefaults() LifeConfig {
	if c.CopyWait <= 0 {
		c.CopyWait = 2 * time.Second
	}
	if c.CopyTimeout <= 0 {
		c.CopyTimeout = 30 * time.Second
	}
	if c.CatchUpTimeout <= 0 {
		c.CatchUpTimeout = 60 * time.Second
	}
	if c.SeedWait <= 0 {
		c.SeedWait = 5 * time.Second
	}
	return c
}

// Why a node is, or is not yet, ready (Ready.Why).
const (
	WhyJoining    = "joining"       // not part of a fleet yet
	WhyCopy       = "start-up copy" // waiting for the initial full copy
	WhyVectors    = "peer vectors"  // a live peer's vector has not arrived
	WhyCatchingUp = "catching up"   // the vector does not cover the target yet
	WhyDeferred   = "clock behind"  // received bindings wait for the clock (DB.Deferred)
	WhySeeds      = "seeds"         // a configured seed is not a live member yet (SeedWait)
	WhyReconcile  = "reconciling"   // caught up; the disk recovery is being reconciled (LifeConfig.Reconcile)
	WhyAlone      = "alone"         // ready: no peers and no seed to join
	WhyCaughtUp   = "caught up"     // ready: the target is covered
	WhyTimeout    = "timeout"       // ready: CatchUpTimeout passed
)

// Ready is what one Tick of a Lifecycle says the shell must do, the way
// etcd's raft returns its Ready: apply it in field order.
type Ready struct {
	// NewEpoch, when > 0, is an epoch of own events the shell must start,
	// and in Durable mode persist first (a peer knows an epoch of ours
	// after the current one: a clock behind or stepped back at a restart).
	// PeersEpoch is that peer's epoch, for the log. Without Durable the DB
	// has moved on by itself and NewEpoch stays 0. Level-triggered: if
	// starting it fails, the next Tick says so again.
	NewEpoch, PeersEpoch int64
	// Requests to send: the core's gap and watchdog requests (DB.Tick) and
	// the start-up copy request (Reason ReasonInitial).
	Requests []Request
	// Reconcile: reconcile the disk recovery now, then call Reconciled
	// (LifeConfig.Reconcile). Level-triggered: said on every Tick until
	// Reconciled is called.
	Reconcile bool
	// CopyGivenUp: every live peer was asked for the start-up copy and none
	// sent one; the node catches up event by event (set once, for the log).
	CopyGivenUp bool
	// Ready: the node may serve (/readyz). Once true it stays true.
	// Became is true on the Tick that turned it true.
	Ready, Became bool
	// Why says how the node became ready (WhyAlone, WhyCaughtUp,
	// WhyTimeout) or, while not ready, what it waits for.
	Why string
	// CatchUp is how long joined → ready took, once ready.
	CatchUp time.Duration
}

// Lifecycle holds a node's start-up state: joining, the epoch check
// against what peers know, the initial full copy (which peer to ask, when
// to ask the next) and readiness (catching up with what every live peer
// knew when the node first saw its vector). It is pure like the DB: the
// shell reports what happened (Joined, CopyChunk, CopyMerged; peers and
// their vectors reach the DB through SetPeers, Receive and ObserveVector)
// and calls Tick with its clock; Tick returns one Ready value. It is safe
// for concurrent use; Tick is meant for one loop.
type Lifecycle struct {
	db  *DB
	cfg LifeConfig

	mu       sync.Mutex
	joined   bool
	joinedAt int64 // unix ms
	seedless bool  // no seed to join but the node itself
	missing  int   // configured seeds not live members yet (SeedsMissing)

	reconciled bool // the shell reconciled the disk recovery (Reconciled)

	copyDone bool
	askedAt  int64 // last start-up copy request, unix ms; 0 none
	asked    int   // peers asked so far
	spread   int64 // the first ask's time: where in the peer list asking starts
	chunks   uint64
	chunksAt uint64 // chunks when last asked
	copies   uint64 // full copies merged (any reason)

	ready   bool
	why     string // how it became ready, or what the last Tick waited for
	readyAt int64
	// What the live peers knew when first seen: every pair of every origin
	// but this node, and every older epoch of this node's own.
	target Vector
	seen   map[string]bool
	behind Behind // the last uncovered pair of target (catchingUp)
}

// NewLifecycle returns the lifecycle of db's node, not yet joined.
func NewLifecycle(db *DB, cfg LifeConfig) *Lifecycle {
	if cfg.Provisional {
		db.SetProvisional(true)
	}
	return &Lifecycle{db: db, cfg: cfg.withDefaults(), target: Vector{}, seen: map[string]bool{}}
}

// Config returns the lifecycle's configuration, defaults applied.
func (l *Lifecycle) Config() LifeConfig { return l.cfg }

// Joined records that the node is part of a fleet (a seed answered,
// another node joined it, or there is nothing to join). seedless says the
// node has no seed but itself: with no live peer either it is a fleet of
// one and ready at once. Only the first call counts.
func (l *Lifecycle) Joined(now time.Time, seedless bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.joined {
		return
	}
	l.joined, l.joinedAt, l.seedless = true, now.UnixMilli(), seedless
}

// SeedsMissing records how many configured seeds (other than the node
// itself) are not live members yet. While one is missing, readiness waits,
// SeedWait at most after joining: when a whole fleet restarts, its first
// node would otherwise catch up with the peers already up and say ready
// before the last one is, then bind for good the clients whose bindings
// only that one holds (bound anew with a later generation, they move).
// Until ready, its binds stay provisional and lose to those.
func (l *Lifecycle) SeedsMissing(n int) {
	l.mu.Lock()
	l.missing = n
	l.mu.Unlock()
}

// Reconciled records that the shell has reconciled the disk recovery
// (Ready.Reconcile).
func (l *Lifecycle) Reconciled() {
	l.mu.Lock()
	l.reconciled = true
	l.mu.Unlock()
}

// CopyChunk records a chunk of a full copy arriving: the start-up copy is
// on its way, so the peer asked gets CopyTimeout, not CopyWait.
func (l *Lifecycle) CopyChunk() {
	l.mu.Lock()
	l.chunks++
	l.mu.Unlock()
}

// CopyMerged records a full copy merged completely (records and vector).
func (l *Lifecycle) CopyMerged() {
	l.mu.Lock()
	l.copies++
	l.mu.Unlock()
}

// IsReady reports whether a Tick has said ready.
func (l *Lifecycle) IsReady() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// Status returns what the last Tick said: ready, and Ready.Why.
func (l *Lifecycle) Status() (ready bool, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready, l.why
}

// Tick advances the lifecycle to now and says what to do.
func (l *Lifecycle) Tick(now time.Time) Ready {
	rd := Ready{Requests: l.db.Tick(now)}
	l.mu.Lock()
	defer l.mu.Unlock()
	nowMs := now.UnixMilli()
	if !l.joined {
		rd.Why, l.why = WhyJoining, WhyJoining
		return rd
	}
	if hi := l.db.EpochAhead(); hi != 0 {
		rd.NewEpoch, rd.PeersEpoch = max(nowMs, hi+1), hi
	}
	var table []PeerInfo
	if !l.copyDone || !l.ready {
		// Readiness takes each live peer's vector once (seen); the
		// start-up copy reads the whole table when it asks.
		table = l.db.table(func(name string) bool { return !l.seen[name] })
	}
	if req, ok := l.startupCopy(table, nowMs, &rd); ok {
		rd.Requests = append(rd.Requests, req)
	}
	l.readiness(table, nowMs, &rd)
	return rd
}

// startupCopy decides the start-up copy request, if one is due.
func (l *Lifecycle) startupCopy(table []PeerInfo, nowMs int64, rd *Ready) (Request, bool) {
	if l.copyDone {
		return Request{}, false
	}
	if !l.cfg.InitialCopy || l.copies > 0 {
		l.copyDone = true
		return Request{}, false
	}
	if l.askedAt != 0 {
		wait := l.cfg.CopyWait
		if l.chunks != l.chunksAt {
			wait = l.cfg.CopyTimeout // a copy is arriving: let it finish
		}
		if nowMs-l.askedAt < wait.Milliseconds() {
			return Request{}, false
		}
	}
	var live []string
	for _, row := range table {
		if row.Live {
			live = append(live, row.Name)
		}
	}
	if len(live) == 0 {
		return Request{}, false
	}
	if l.asked >= len(live) {
		// Every live peer was asked once: catch up event by event through
		// the gap handling instead (readiness still waits for the peers'
		// vectors to be covered).
		l.copyDone = true
		rd.CopyGivenUp = true
		return Request{}, false
	}
	// Peers that hold about what the fleet holds come first: another
	// joiner, still copying itself, would send a part of the table (eight
	// joiners at once asked each other).
	full, rest := splitByHolding(l.db.Table(), live)
	// Start at a peer that depends on the time, so that nodes restarting
	// together, or one node restarting often, spread their copies; then go
	// round from there (an offset from the current time could land on the
	// peer just passed over).
	if l.asked == 0 {
		l.spread = nowMs
	}
	var to string
	if i := int64(l.asked); i < int64(len(full)) {
		to = full[(l.spread+i)%int64(len(full))]
	} else {
		to = rest[(l.spread+i-int64(len(full)))%int64(len(rest))]
	}
	l.asked++
	l.askedAt, l.chunksAt = nowMs, l.chunks
	return Request{To: to, Full: true, Reason: ReasonInitial}, true
}

// splitByHolding splits the live peers (names) into those whose last
// vector counts at least 9/10 of the events the fullest one counts, and
// the others, each in name order. A peer not heard from yet counts none.
func splitByHolding(table []PeerInfo, live []string) (full, rest []string) {
	held := make(map[string]uint64, len(table))
	var most uint64
	for _, row := range table {
		var n uint64
		for _, ps := range row.Vector {
			for _, p := range ps {
				n = max(n, n+p.Seq) // saturating: a vector is the sender's word
			}
		}
		held[row.Name] = n
		most = max(most, n)
	}
	for _, name := range live {
		if held[name] >= most-most/10 {
			full = append(full, name)
		} else {
			rest = append(rest, name)
		}
	}
	slices.Sort(full)
	slices.Sort(rest)
	return full, rest
}

// readiness turns the node ready once it has joined and its vector covers
// what each live peer's vector showed when the node first saw it (so a new
// node serves with the fleet's bindings, not an empty table): every epoch
// of every other origin (an older one too: a peer still holds the
// bindings of an origin restarted without a disk), and every older epoch
// of our own (a node restarted without a disk gets its old bindings back);
// an epoch that is over, and an origin forgotten since, count as covered.
// Every live peer's vector counts, including one that shows up while the
// node is catching up: when a whole fleet restarts, the first peer heard
// from knows only its own bindings, and the others' arrive from the
// others. Bindings that wait for the clock (DB.Deferred) hold it back too.
// Or once CatchUpTimeout has passed since joining.
func (l *Lifecycle) readiness(table []PeerInfo, nowMs int64, rd *Ready) {
	defer func() {
		rd.Ready = l.ready
		if !l.ready {
			l.why = rd.Why
			return
		}
		rd.CatchUp = time.Duration(l.readyAt-l.joinedAt) * time.Millisecond
		rd.Why = l.why
	}()
	if l.ready {
		return
	}
	self := l.db.Node()
	current, _ := l.db.Position()
	live, unknown := 0, 0
	for _, row := range table {
		if !row.Live {
			continue
		}
		live++
		if row.Vector == nil {
			unknown++
			continue
		}
		if l.seen[row.Name] {
			continue
		}
		l.seen[row.Name] = true
		for o, ps := range row.Vector {
			for _, p := range ps {
				// Every epoch of the others, older ones included (an origin
				// restarted without a disk: the peer still holds its old
				// epoch's bindings), and our own older epochs (a restart
				// without a disk: clients come back to us for them).
				if o != self || p.Epoch < current {
					l.target.Advance(o, p.Epoch, p.Seq)
				}
			}
		}
	}
	switch {
	case live == 0 && len(l.seen) == 0 && l.seedless:
		l.become(WhyAlone, nowMs, rd)
		return
	case l.cfg.InitialCopy && !l.copyDone:
		rd.Why = WhyCopy
	case len(l.seen) == 0 || unknown > 0:
		rd.Why = WhyVectors // heartbeats carry them
	case l.catchingUp(nowMs):
		rd.Why = WhyCatchingUp
	case l.db.Deferred() > 0:
		// Covered by the vector, not yet in the table: bindings ahead of
		// this node's clock (a fleet whose clocks stepped back) wait for it.
		rd.Why = WhyDeferred
	case l.missing > 0 && nowMs-l.joinedAt < l.cfg.SeedWait.Milliseconds():
		rd.Why = WhySeeds
	default:
		l.become(WhyCaughtUp, nowMs, rd)
		return
	}
	if nowMs-l.joinedAt >= l.cfg.CatchUpTimeout.Milliseconds() {
		l.become(WhyTimeout, nowMs, rd)
	}
}

// catchingUp reports whether the node's vector does not cover the target
// yet, and keeps what it lacks for Behind.
func (l *Lifecycle) catchingUp(nowMs int64) bool {
	b, ok := l.db.uncovered(l.target, nowMs)
	l.behind = b
	return ok
}

// Behind returns what the node lacked of its target on the last Tick that
// said WhyCatchingUp (false once it no longer did).
func (l *Lifecycle) Behind() (Behind, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.behind, !l.ready && l.why == WhyCatchingUp
}

func (l *Lifecycle) become(why string, nowMs int64, rd *Ready) {
	if l.cfg.Reconcile && !l.reconciled {
		// Caught up (or given up waiting): now the disk's share, then
		// ready.
		rd.Reconcile, rd.Why = true, WhyReconcile
		return
	}
	l.ready, l.why, l.readyAt = true, why, nowMs
	rd.Became, rd.Why = true, why
	if l.cfg.Provisional {
		l.db.SetProvisional(false)
	}
}

// Behind describes the first pair of a Lifecycle's target that the node's
// vector does not cover (WhyCatchingUp): what it waits for and what is
// being done about it, for the logs and the admin (Lifecycle.Behind).
type Behind struct {
	Origin string
	Epoch  int64
	Target uint64 // the event number the target asks for
	Have   uint64 // what the node's vector knows of the epoch
	// Departed: the node has forgotten the origin (departed.go); Floor is
	// its floor.
	Departed bool
	Floor    EpochSeq
	// Claim is the most any live peer's last vector claims of the epoch,
	// and Claimant the first peer that claims it.
	Claim    uint64
	Claimant string
	// The gap the node has open for the epoch, if any: its stage ("wait",
	// "origin", "third", "full"), the peer asked and when (unix ms), and the
	// highest event number it waits for.
	Gap                  bool
	GapStage, GapAsked   string
	GapAskedAt, GapSince int64
	GapWant              uint64
}

var stageNames = [...]string{"wait", "origin", "third", "full"}

// String is b for an operator: "node3 epoch 1796393645405: 0 of 127
// events; live peers claim 0; gap: third, asked node4".
func (b Behind) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s epoch %d: %d of %d events; live peers claim %d", b.Origin, b.Epoch, b.Have, b.Target, b.Claim)
	if b.Claimant != "" {
		fmt.Fprintf(&s, " (%s)", b.Claimant)
	}
	if b.Departed {
		fmt.Fprintf(&s, "; departed at %d/%d", b.Floor.Epoch, b.Floor.Seq)
	}
	if b.Gap {
		fmt.Fprintf(&s, "; gap: %s", b.GapStage)
		if b.GapAsked != "" {
			fmt.Fprintf(&s, ", asked %s", b.GapAsked)
		}
	}
	return s.String()
}

// uncovered returns the first pair of target (in origin order) that the
// node's vector does not cover, counting as covered an epoch that is over
// (it holds no live event any more, and its gaps are given up) and every
// pair of an origin the node has forgotten (departed.go).
//
// Forgotten means not a live peer, and its entry in our vector has not
// moved for TTL + hold + skew: for a node catching up, at least that long
// since it first saw the origin in a peer's vector, so the bindings of the
// target's events are past their horizon, and the peers, which forget on
// about the same schedule, serve its events no more. Comparing with the
// floor is not enough: the floor is what this node held when it forgot,
// not what the target asks (a node that joined just after the origin left
// had a floor of 0 under a target of 127 and waited out CatchUpTimeout),
// and it is dropped later, leaving the origin absent from our vector. An
// origin of the target entered the vector when its pair was observed and
// only forgetting takes it out, so absent means forgotten. A peer that
// still lists the origin past the floor takes it back (departedCovers),
// and its pairs count again.
func (db *DB) uncovered(target Vector, nowMs int64) (Behind, bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	rs := &db.rs
	cutoff := rs.cutoff(nowMs)
	for _, o := range target.Origins() {
		d, gone := rs.departed[o]
		_, held := rs.vv[o]
		for _, p := range target[o] {
			switch {
			case rs.vv.Covers(o, p.Epoch, p.Seq):
			case rs.epochOver(o, p.Epoch, cutoff):
			case gone || !held:
			default:
				return db.behindOn(o, p, d, gone), true
			}
		}
	}
	return Behind{}, false
}

// behindOn fills a Behind for origin o's pair p. Under db.mu.
func (db *DB) behindOn(o string, p EpochSeq, d departure, gone bool) Behind {
	rs := &db.rs
	b := Behind{Origin: o, Epoch: p.Epoch, Target: p.Seq, Have: rs.vv.Get(o, p.Epoch), Departed: gone, Floor: d.floor}
	for _, name := range slices.Sorted(mapsKeys(rs.peers)) {
		if pr := rs.peers[name]; pr.live {
			if c := pr.vector.Get(o, p.Epoch); c > b.Claim {
				b.Claim, b.Claimant = c, name
			}
		}
	}
	if gp := rs.gaps[originEpoch{o, p.Epoch}]; gp != nil {
		b.Gap, b.GapStage, b.GapAsked = true, stageNames[gp.stage], gp.asked
		b.GapAskedAt, b.GapSince, b.GapWant = gp.askedAt, gp.since, gp.want
	}
	return b
}
