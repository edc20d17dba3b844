package gossip

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/tetherproxy/tether/stickydb"
)

// Node replicates one stickydb.DB with the other nodes of the fleet. It is
// the DB's I/O shell: it owns the memberlist instance, the push loop (which
// also drives the core's Tick), a small pool of workers for heavy incoming
// work, and one sender goroutine per peer for reliable messages.
//
//	n, err := gossip.New(cfg, db)
//	err = n.Start()           // binds, starts the loops, joins in the background
//	store := n.Store()        // hand to the proxy: writes kick the push loop
//	n.Ready()                 // joined and caught up (for /readyz)
//	n.Close()                 // leave gracefully, stop everything
type Node struct {
	cfg   Config
	db    *stickydb.DB
	log   zerolog.Logger
	now   func() time.Time
	self  string
	ttlMs int64
	// watchdog: the core's Watchdog, which heartbeats must beat
	// (heartbeatEvery).
	watchdog time.Duration
	skew     int64
	store    Store

	ml *memberlist.Memberlist
	// codec and tr send our datagrams past memberlist (packet.go): tr is
	// the transport memberlist was given (wrapped, in tests).
	codec    *packetCodec
	tr       memberlist.NodeAwareTransport
	delegate *delegate
	strs     internStrings // names and hosts of received groups
	addr     string

	kickCh   chan struct{}
	memberCh chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	work     chan func()
	recvCh   chan recvItem // change groups for the receiver (receive.go)

	started     atomic.Bool
	closing     atomic.Bool
	reconciling atomic.Bool // Config.Reconcile started (ready.go)
	closeOnce   sync.Once
	closeErr    error

	memberMu sync.Mutex
	members  map[string]memberlist.Node // alive peers as memberlist reports them
	gone     map[string]goneMember      // failed peers to reconnect to (reconnect.go)

	peers   peerTable
	copies  copyTable
	copyOut copyOut             // full copies streaming out (copyflow.go)
	ready   readiness           // mirrors life for /readyz
	life    *stickydb.Lifecycle // start-up: epoch check, initial copy, readiness
	drains  stickydb.Drains     // drain registers (drain.go)
	tickets ticketRing          // TLS session ticket keys (ticketkeys.go)
	counts  countTable          // count queries in flight (count.go)
	// seedsSelf: the seed names resolved to this node only (seeds.go).
	seedsSelf atomic.Bool
	stats     counters
	senders   senderTable // per-sender error counts, peers or not
	logs      logLimits

	unsent atomic.Int64 // unix ms of the first write since the last push; 0 none

	// owned by the run loop
	startedAt    time.Time // Start's time, for TicketKeyGrace
	ticketJitter time.Duration
	lastPush     time.Time
	lastVector   time.Time
	lastSweep    time.Time
	cursorEpoch  int64
	roundPhase   int64     // the phase of push rounds (roundWait), unix ns
	behindLogged time.Time // last catching-up detail logged (ready.go)
	pushFree     []*peer   // push's scratch list of peers free to send to
	// sendAll's scratch (run loop)
	sendOK    []bool
	sendAddrs []memberlist.Address
	sendAt    []int
	sendErrs  []error
}

// New checks cfg and prepares a node for db. Nothing is bound until Start.
func New(cfg Config, db *stickydb.DB) (*Node, error) {
	if db == nil {
		return nil, cfgErr("db", "nil")
	}
	cfg = cfg.withDefaults()
	dbc := db.Config()
	if err := cfg.validate(dbc.Watchdog); err != nil {
		return nil, err
	}
	if cfg.Caps.MaxEvents > dbc.MaxGroupEvents {
		return nil, cfgErr("Caps.MaxEvents", "%d over the core's MaxGroupEvents %d", cfg.Caps.MaxEvents, dbc.MaxGroupEvents)
	}
	n := &Node{
		cfg:      cfg,
		db:       db,
		log:      zerolog.Nop(),
		now:      cfg.Now,
		self:     db.Node(),
		ttlMs:    dbc.TTL.Milliseconds(),
		watchdog: dbc.Watchdog,
		skew:     dbc.MaxSkew.Milliseconds(),
		kickCh:   make(chan struct{}, 1),
		memberCh: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		work:     make(chan func(), cfg.WorkQueue),
		recvCh:   make(chan recvItem, recvQueue),
		members:  map[string]memberlist.Node{},
		gone:     map[string]goneMember{},
	}
	n.ready.done = make(chan struct{})
	n.delegate = &delegate{n: n}
	n.life = stickydb.NewLifecycle(db, cfg.lifeConfig())
	if cfg.Logger != nil {
		// The caller's logger names the node already (cmd's root logger
		// does); a second "node" key would make the line invalid for strict
		// JSON parsers.
		n.log = cfg.Logger.With().Str("component", "gossip").Logger()
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.store = Store{db: db, n: n}
	n.tickets.keep = cfg.TicketKeyKeep
	n.ticketJitter = rotationJitter(n.self, cfg.TicketKeyRotate)
	n.roundPhase = roundPhaseOf(n.self)
	n.peers.init()
	n.copies.init()
	n.senders.init()
	n.logs.init()
	return n, nil
}

// Start binds memberlist's listeners, starts the push loop, the workers and
// the join loop, and returns. Joining goes on in the background until one
// seed answers (see Joined, Ready).
func (n *Node) Start() error {
	if n.closing.Load() {
		return ErrClosed
	}
	if !n.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	ml, err := n.createMemberlist()
	if err != nil {
		n.started.Store(false)
		return err
	}
	n.ml = ml
	n.addr = ml.LocalNode().Address()
	n.startedAt = time.Now()
	n.wg.Add(4 + n.cfg.Workers)
	go n.receiver()
	go n.run()
	go n.joinLoop()
	go n.reconnectLoop()
	for range n.cfg.Workers {
		go n.worker()
	}
	n.log.Info().Str("addr", n.addr).Int("seeds", len(n.cfg.Join)).Msg("gossip started")
	return nil
}

// Close leaves the fleet gracefully (peers see a leave, not a failure),
// stops every goroutine and closes the listeners. It is idempotent.
func (n *Node) Close() error { return n.shutdown(true) }

// shutdown stops the node; leave=false simulates a crash (tests).
func (n *Node) shutdown(leave bool) error {
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		if !n.started.Load() {
			return
		}
		if leave {
			if err := n.ml.Leave(n.cfg.LeaveTimeout); err != nil {
				n.leaveUnconfirmed(err)
			}
		}
		close(n.stop)
		n.wg.Wait()
		n.closeErr = n.ml.Shutdown()
		n.log.Info().Msg("gossip stopped")
	})
	return n.closeErr
}

// leaveUnconfirmed reports a Leave that timed out. memberlist waits until
// its leave broadcast has gone out a few times; when the peers stop at the
// same moment (a whole fleet stopped, the demo's Ctrl-C) nobody is left to
// send it to and the wait always times out: nothing is wrong then. With
// peers still alive they learn of the departure by probe within seconds.
func (n *Node) leaveUnconfirmed(err error) {
	n.memberMu.Lock()
	alive := len(n.members) // never Members: memberlist's nodes race with its handler
	n.memberMu.Unlock()
	if alive == 0 {
		n.log.Debug().Err(err).Msg("leave: no peer left to tell")
		return
	}
	n.log.Info().Int("peers_alive", alive).Int64("leave_timeout_ms", n.cfg.LeaveTimeout.Milliseconds()).
		Msg("leave broadcast not confirmed; the peers will see the node gone by probe")
}

// Store returns the binding store the proxy writes through.
func (n *Node) Store() *Store { return &n.store }

// DB returns the database the node replicates.
func (n *Node) DB() *stickydb.DB { return n.db }

// Addr returns the address peers reach this node at ("ip:port"), once
// started.
func (n *Node) Addr() string { return n.addr }

// Name returns the node name (the DB's).
func (n *Node) Name() string { return n.self }

// Joined reports whether the node is part of a fleet: a seed answered,
// another node joined it, or there were no seeds to join.
func (n *Node) Joined() bool { return n.ready.joined.Load() }

// Ready reports whether the node has joined and caught up with what its
// peers knew when it joined (or CatchUpTimeout passed): the /readyz answer.
func (n *Node) Ready() bool { return n.ready.ready.Load() }

// WaitReady blocks until Ready or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.ready.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stop:
		return ErrClosed
	}
}

// Member is one node of the fleet as memberlist sees it.
type Member struct {
	Name string
	Addr string // ip:port
	Self bool
	Meta []byte // the member's Config.Meta; the caller must not change it
}

// Members returns the live members, this node included, in name order.
func (n *Node) Members() []Member {
	out := []Member{{Name: n.self, Addr: n.addr, Self: true, Meta: n.cfg.Meta}}
	n.memberMu.Lock()
	for name, m := range n.members {
		out = append(out, Member{Name: name, Addr: m.Address(), Meta: m.Meta})
	}
	n.memberMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// kick wakes the push loop: an own event is waiting. It never blocks.
// It also notes when the oldest unpushed event was made, for the lag
// the receivers measure.
func (n *Node) kick() {
	n.unsent.CompareAndSwap(0, n.now().UnixMilli())
	select {
	case n.kickCh <- struct{}{}:
	default:
	}
}

// wake wakes the push loop without noting a new event. It never blocks.
func (n *Node) wake() {
	select {
	case n.kickCh <- struct{}{}:
	default:
	}
}

// enqueue hands heavy work to the workers; when the queue is full the job
// is dropped and counted, since the delegate must never block memberlist.
func (n *Node) enqueue(job func()) bool {
	if n.closing.Load() {
		return false
	}
	select {
	case n.work <- job:
		return true
	default:
		n.stats.workDropped.Add(1)
		return false
	}
}

func (n *Node) worker() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case job := <-n.work:
			job()
		}
	}
}
