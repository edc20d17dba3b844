package gossip

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// Config holds the gossip shell's settings. Only cmd/ maps environment
// variables and flags onto it (TETHER_GOSSIP_BIND -> BindAddr,
// TETHER_GOSSIP_ADVERTISE -> AdvertiseAddr, TETHER_JOIN -> Join,
// TETHER_GOSSIP_KEY -> Key, TETHER_PUSH_INTERVAL -> PushInterval).
// Zero fields take the defaults of DefaultConfig (see withDefaults).
type Config struct {
	// BindAddr is the host:port memberlist listens on, TCP and UDP.
	// Port 0 picks a free port (tests). Default "0.0.0.0:7946".
	BindAddr string

	// AdvertiseAddr is the host:port peers use to reach this node. "" means
	// the bound address (or, when bound to 0.0.0.0, a private IP of the
	// host, as memberlist picks it). A port of 0 means the bound port.
	AdvertiseAddr string

	// Join lists seeds ("host:port"). The node retries them, backing off
	// from JoinRetryMin to JoinRetryMax, until one answers or another
	// node joins it. Its own address may be among them (one list for the
	// whole fleet). Empty: a fleet of one until someone joins.
	Join []string
	// Resolver looks up seeds given as names (seeds.go); nil means
	// net.DefaultResolver.
	Resolver     *net.Resolver
	JoinRetryMin time.Duration // first retry delay; default 200ms
	JoinRetryMax time.Duration // longest retry delay; default 5s

	// Key is the AES key for memberlist's keyring: 16, 24 or 32 bytes
	// (AES-128/192/256-GCM). nil means gossip in the clear. A node without
	// the key can neither join nor inject a message.
	Key []byte

	// Label scopes gossip to one fleet: memberlist prefixes every packet and
	// stream with it and binds it into the encryption. Nodes with another
	// label are refused. At most 255 bytes. Default "tether".
	Label string

	// PushInterval is the window of the per-peer push budget: at most
	// PushBurst change groups go to one peer per PushInterval while events
	// keep coming (a token bucket per peer). An event made while a peer's
	// link is idle (a token left, no reliable message queued to it) leaves
	// at once; events made while the link is busy leave together once it
	// is free. It is also the period of the core's Tick. Default 20ms.
	PushInterval time.Duration

	// PushBurst is the per-peer token bucket's size and its refill per
	// PushInterval: a quiet peer may be sent PushBurst groups back to back,
	// a busy one one group per PushInterval/PushBurst (1 ms by default),
	// each carrying every event made since the last. Fewer means larger,
	// cheaper groups under load and a longer wait for each. Default 20.
	PushBurst int

	// PushBudget bounds the change groups this node pushes per second to
	// all its peers together while events keep coming: each peer's refill
	// is min(PushBurst per PushInterval, PushBudget / live peers), but
	// never below two per HeartbeatInterval. The burst (PushBurst) stays,
	// so an event made while a link is idle still leaves at once; under
	// load a large fleet sends fewer, larger groups (at 50 nodes and the
	// default, one group per peer every ~49 ms) instead of one message per
	// event per peer, whose send and receive cost grows as N². Default
	// 1,000.
	PushBudget int

	// HeartbeatInterval: a peer that was sent no change group for this long
	// gets an empty one (with our vector when it changed), so that a lost
	// tail is noticed and the core's watchdog stays quiet. Past 25 live
	// peers the spacing grows in proportion (peers/25 x this, at most a
	// quarter of the core's Watchdog), so a node sends at most 25 heartbeats per
	// interval. Must be below the core's Watchdog. Default 500ms.
	HeartbeatInterval time.Duration

	// VectorInterval: pushed groups carry our version vector at most this
	// often (heartbeats and answers always carry it). The vector costs ~15
	// bytes per origin; peers need it for the version vector table and for
	// truncating logs. Default 100ms.
	VectorInterval time.Duration

	// MaxUDPBytes: an encoded message up to this size goes best-effort
	// (UDP); a larger one goes reliably (TCP). memberlist adds up to ~50
	// bytes (type, CRC, encryption, label) and does not enforce its
	// 1,400-byte packet limit. Default 1,300.
	MaxUDPBytes int

	// MaxPushEvents bounds the events sent to one peer in one push; a
	// backlog beyond it leaves at the next interval. Default 16,384.
	MaxPushEvents int

	// ChunkRecords is the number of records per message of a full copy.
	// Default 8,192 (~160 KB: memberlist opens a TCP connection per reliable
	// message, so fewer, larger chunks copy a large table faster).
	ChunkRecords int

	// InitialCopy: once joined, ask one live peer for a full copy of its
	// database and vector (Fig. 12 step 715, a start without a disk; Fig. 11
	// step 662, a long outage), and again of another peer every CopyTimeout
	// until one is merged or the node is ready. The gap handling would get
	// there too, origin by origin; one copy is faster. Default false.
	InitialCopy bool

	// Provisional: the binds made through the DB before the node is ready
	// are provisional (generation 0, stickydb.DB.SetProvisional): they
	// lose every conflict with the bindings the fleet already holds. Set
	// from New until Ready. Default false.
	Provisional bool

	// NewEpoch starts a new epoch of own events. Once joined, when a live
	// peer's vector shows an epoch of this node after its current one
	// (a restart with a clock behind), the node moves to max(now, that + 1)
	// through it, so that no two epochs of a node share a number. In disk
	// mode it must go through the log (recovery.Store.NewEpoch).
	// Default: the DB's NewEpoch.
	NewEpoch func(epoch int64) error

	// Reconcile, when set, completes a disk recovery once the node has
	// caught up with its peers (stickydb.LifeConfig.Reconcile): the node
	// is ready only after it returns nil. It runs once, off the run loop.
	// An error is logged and the node stays not ready.
	Reconcile func() error

	// OnDrain applies a replica's drain state, set here or on any node
	// (SetDrain), to this node's proxy. Called on the goroutine that
	// received the change, never with a gossip lock held; it must not block
	// for long. nil ignores drains.
	OnDrain func(pool, name string, on bool)

	// OnTicketKeys, when not nil, turns on the fleet's TLS session ticket
	// keys (ticketkeys.go): it receives the keys, newest (the one that
	// encrypts) first, each time the set changes (for
	// tls.Config.SetSessionTicketKeys). Called on the run loop or the
	// goroutine that received the keys, never with a gossip lock held.
	// The keys go over the gossip only when Key is set; without it the node
	// keeps its own keys.
	OnTicketKeys func(keys [][32]byte)
	// TicketKeyRotate is the age of the newest key at which a node makes a
	// new one; TicketKeyKeep how many keys the set keeps (1..16): a ticket
	// resumes for about Keep x Rotate. TicketKeyGrace is how long a node
	// waits after its start for the fleet's keys before it makes its own.
	// Defaults 1h, 3, 2s.
	TicketKeyRotate time.Duration
	TicketKeyKeep   int
	TicketKeyGrace  time.Duration

	// Caps bound what this node accepts from a peer holding the key, on top
	// of the core's caps.
	Caps Caps

	// RequestRate and RequestBurst bound the range requests answered per
	// peer (per second, token bucket); more are refused and counted.
	// Defaults 50/s, burst 100.
	RequestRate  float64
	RequestBurst int

	// FullCopyInterval and FullCopyBurst bound the full copies streamed to
	// one peer: at most FullCopyBurst at once, then one per interval, so a
	// peer asking in a loop cannot make us stream our database in a loop.
	// Defaults 5s, 2.
	FullCopyInterval time.Duration
	FullCopyBurst    int

	// CopyTimeout: an incoming full copy must be complete this long after
	// we asked for it, else its vector is not merged (its records are, as
	// they come) and the core asks again. Chunks from a peer we did not ask
	// are dropped. Default 30s.
	CopyTimeout time.Duration

	// Workers and WorkQueue: heavy incoming work (answering requests,
	// merging full-copy chunks) runs on this many goroutines, fed by a queue
	// of this many jobs; when it is full, new work is dropped and counted
	// (the requester asks again). Defaults 2 and 1,024.
	Workers   int
	WorkQueue int

	// OutboxDepth bounds the reliable (TCP) messages waiting per peer; past
	// it they are dropped and counted (the peer's gap handling recovers).
	// Default 256.
	OutboxDepth int

	// CatchUpTimeout: Ready turns true once the node has caught up with the
	// vectors its peers showed when it joined, or after this long anyway
	// (logged and counted). Default 60s.
	CatchUpTimeout time.Duration

	// SweepInterval: every interval, one shard of the binding table is
	// swept of expired entries (DB.Sweep). Expired entries serve nobody
	// (lookups check expiry); sweeping only frees their memory, so it is
	// spread thin: with 256 shards a full pass takes 256 intervals (~26s
	// at the default 100ms; ~16k entries per step at 4M bindings).
	// Negative disables sweeping (the caller sweeps).
	SweepInterval time.Duration

	// LeaveTimeout bounds the graceful leave broadcast on Close.
	// Default 1s.
	LeaveTimeout time.Duration

	// ReconnectInterval and ReconnectTimeout: a member that failed (not
	// one that left) is joined again at its last address every interval,
	// for up to the timeout, so that a partition longer than memberlist's
	// gossip to the dead (5 s) heals (reconnect.go). Defaults 2s and 1h.
	ReconnectInterval time.Duration
	ReconnectTimeout  time.Duration

	// Memberlist tunes failure detection and anti-entropy.
	Memberlist MemberlistConfig

	// Persister, when set (durable mode), is flushed before every push:
	// persist, then send. nil in epoch mode.
	Persister Persister

	// Meta is this node's member metadata, opaque to gossip, at most
	// memberlist.MetaMaxSize (512) bytes: every member sees it in
	// Member.Meta (tether puts its admin address there). Default nil.
	Meta []byte

	// Logger; nil means zerolog.Nop(). memberlist's own log lines go to it
	// too, with component=memberlist.
	Logger *zerolog.Logger

	// Now is the clock handed to the core; nil means time.Now. Timers
	// (push interval, heartbeats) use real time.
	Now func() time.Time

	// WrapTransport, when set, wraps memberlist's network transport (tests:
	// internal/faultnet). Production leaves it nil.
	WrapTransport func(memberlist.NodeAwareTransport) (memberlist.NodeAwareTransport, error)
}

// Caps bound counts and lengths in messages from peers. Every decoder
// checks them before allocating.
type Caps struct {
	MaxMessageBytes int // largest message accepted, bytes; default 8 MiB
	MaxStateBytes   int // largest push/pull state accepted, bytes; default 1 MiB
	MaxEvents       int // events per change-group message; default 4,096 (bigger groups are split)
	MaxRecords      int // records per full-copy chunk; default 16,384
	MaxNames        int // distinct replica/node names per message; default 4,096
	MaxHosts        int // distinct hosts per message; default 8,192
	MaxOrigins      int // origins in a vector or request; default 1,024
	MaxPairs        int // epochs per origin in a vector; default 64 (the core keeps at most 48)
	MaxCopies       int // full copies being received at once; default 4
}

// MemberlistConfig tunes memberlist for a LAN or loopback fleet: failures
// are detected in about ProbeInterval * SuspicionMult * log(N) instead of
// memberlist's LAN default of several seconds.
type MemberlistConfig struct {
	ProbeInterval    time.Duration // default 500ms
	ProbeTimeout     time.Duration // default 250ms
	SuspicionMult    int           // default 3
	GossipInterval   time.Duration // memberlist's own state gossip; default 100ms
	PushPullInterval time.Duration // anti-entropy: full state + our vector; default 10s
	TCPTimeout       time.Duration // reliable sends and push/pull; default 2s
	// DeadNodeReclaimTime: a node that died may come back under the same
	// name from another address after this long (a restarted node on a new
	// port or IP). Default 2s.
	DeadNodeReclaimTime time.Duration
	// HandoffQueueDepth: UDP messages waiting for memberlist's handler
	// (LIFO, dropped when full). Default 4,096.
	HandoffQueueDepth int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		BindAddr:          "0.0.0.0:7946",
		JoinRetryMin:      200 * time.Millisecond,
		JoinRetryMax:      5 * time.Second,
		Label:             "tether",
		PushInterval:      20 * time.Millisecond,
		PushBurst:         20,
		PushBudget:        1000,
		HeartbeatInterval: 500 * time.Millisecond,
		VectorInterval:    100 * time.Millisecond,
		MaxUDPBytes:       1300,
		MaxPushEvents:     16384,
		ChunkRecords:      8192,
		Caps: Caps{
			MaxMessageBytes: 8 << 20,
			MaxStateBytes:   1 << 20,
			MaxEvents:       4096,
			MaxRecords:      16384,
			MaxNames:        4096,
			MaxHosts:        8192,
			MaxOrigins:      1024,
			MaxPairs:        64,
			MaxCopies:       4,
		},
		RequestRate:       50,
		RequestBurst:      100,
		FullCopyInterval:  5 * time.Second,
		FullCopyBurst:     2,
		CopyTimeout:       30 * time.Second,
		TicketKeyRotate:   time.Hour,
		TicketKeyKeep:     3,
		TicketKeyGrace:    2 * time.Second,
		Workers:           2,
		WorkQueue:         1024,
		OutboxDepth:       256,
		CatchUpTimeout:    60 * time.Second,
		SweepInterval:     100 * time.Millisecond,
		LeaveTimeout:      time.Second,
		ReconnectInterval: 2 * time.Second,
		ReconnectTimeout:  time.Hour,
		Memberlist: MemberlistConfig{
			ProbeInterval:       500 * time.Millisecond,
			ProbeTimeout:        250 * time.Millisecond,
			SuspicionMult:       3,
			GossipInterval:      100 * time.Millisecond,
			PushPullInterval:    10 * time.Second,
			TCPTimeout:          2 * time.Second,
			DeadNodeReclaimTime: 2 * time.Second,
			HandoffQueueDepth:   4096,
		},
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setS := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setI := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setS(&c.BindAddr, d.BindAddr)
	setS(&c.Label, d.Label)
	setD(&c.JoinRetryMin, d.JoinRetryMin)
	setD(&c.JoinRetryMax, d.JoinRetryMax)
	setD(&c.PushInterval, d.PushInterval)
	setI(&c.PushBurst, d.PushBurst)
	setI(&c.PushBudget, d.PushBudget)
	setD(&c.HeartbeatInterval, d.HeartbeatInterval)
	setD(&c.VectorInterval, d.VectorInterval)
	setI(&c.MaxUDPBytes, d.MaxUDPBytes)
	setI(&c.MaxPushEvents, d.MaxPushEvents)
	setI(&c.ChunkRecords, d.ChunkRecords)
	setI(&c.Caps.MaxMessageBytes, d.Caps.MaxMessageBytes)
	setI(&c.Caps.MaxStateBytes, d.Caps.MaxStateBytes)
	setI(&c.Caps.MaxEvents, d.Caps.MaxEvents)
	setI(&c.Caps.MaxRecords, d.Caps.MaxRecords)
	setI(&c.Caps.MaxNames, d.Caps.MaxNames)
	setI(&c.Caps.MaxHosts, d.Caps.MaxHosts)
	setI(&c.Caps.MaxOrigins, d.Caps.MaxOrigins)
	setI(&c.Caps.MaxPairs, d.Caps.MaxPairs)
	setI(&c.Caps.MaxCopies, d.Caps.MaxCopies)
	if c.RequestRate == 0 {
		c.RequestRate = d.RequestRate
	}
	setI(&c.RequestBurst, d.RequestBurst)
	setD(&c.FullCopyInterval, d.FullCopyInterval)
	setI(&c.FullCopyBurst, d.FullCopyBurst)
	setD(&c.CopyTimeout, d.CopyTimeout)
	setD(&c.TicketKeyRotate, d.TicketKeyRotate)
	setI(&c.TicketKeyKeep, d.TicketKeyKeep)
	setD(&c.TicketKeyGrace, d.TicketKeyGrace)
	setI(&c.Workers, d.Workers)
	setI(&c.WorkQueue, d.WorkQueue)
	setI(&c.OutboxDepth, d.OutboxDepth)
	setD(&c.CatchUpTimeout, d.CatchUpTimeout)
	setD(&c.SweepInterval, d.SweepInterval)
	setD(&c.LeaveTimeout, d.LeaveTimeout)
	setD(&c.ReconnectInterval, d.ReconnectInterval)
	setD(&c.ReconnectTimeout, d.ReconnectTimeout)
	m, dm := &c.Memberlist, d.Memberlist
	setD(&m.ProbeInterval, dm.ProbeInterval)
	setD(&m.ProbeTimeout, dm.ProbeTimeout)
	setI(&m.SuspicionMult, dm.SuspicionMult)
	setD(&m.GossipInterval, dm.GossipInterval)
	setD(&m.PushPullInterval, dm.PushPullInterval)
	setD(&m.TCPTimeout, dm.TCPTimeout)
	setD(&m.DeadNodeReclaimTime, dm.DeadNodeReclaimTime)
	setI(&m.HandoffQueueDepth, dm.HandoffQueueDepth)
	return c
}

func cfgErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// validate checks a Config with defaults filled in. watchdog is the core's
// Watchdog, which heartbeats must beat.
func (c Config) validate(watchdog time.Duration) error {
	if h, _, err := splitHostPort(c.BindAddr); err != nil {
		return cfgErr("BindAddr", "%v", err)
	} else if h != "" && net.ParseIP(h) == nil {
		return cfgErr("BindAddr", "host %q is not an IP address", h)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return cfgErr("AdvertiseAddr", "%v", err)
		}
	}
	for _, s := range c.Join {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return cfgErr("Join", "seed %q: %v", s, err)
		}
	}
	switch {
	case c.Key != nil && len(c.Key) != 16 && len(c.Key) != 24 && len(c.Key) != 32:
		return cfgErr("Key", "must be 16, 24 or 32 bytes, got %d", len(c.Key))
	case len(c.Label) > memberlist.LabelMaxSize:
		return cfgErr("Label", "at most %d bytes, got %d", memberlist.LabelMaxSize, len(c.Label))
	case c.JoinRetryMin <= 0 || c.JoinRetryMax < c.JoinRetryMin:
		return cfgErr("JoinRetryMin/JoinRetryMax", "need 0 < min <= max, got %v, %v", c.JoinRetryMin, c.JoinRetryMax)
	case c.PushInterval <= 0:
		return cfgErr("PushInterval", "must be > 0, got %v", c.PushInterval)
	case c.PushBurst < 1 || time.Duration(c.PushBurst) > c.PushInterval:
		return cfgErr("PushBurst", "must be in 1..PushInterval in ns (%d), got %d", c.PushInterval.Nanoseconds(), c.PushBurst)
	case c.PushBudget < 1:
		return cfgErr("PushBudget", "must be >= 1, got %d", c.PushBudget)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= watchdog:
		return cfgErr("HeartbeatInterval", "must be in (0, core Watchdog %v), got %v", watchdog, c.HeartbeatInterval)
	case c.VectorInterval <= 0:
		return cfgErr("VectorInterval", "must be > 0, got %v", c.VectorInterval)
	case c.MaxUDPBytes < 256 || c.MaxUDPBytes > 65000:
		return cfgErr("MaxUDPBytes", "must be in 256..65000, got %d", c.MaxUDPBytes)
	case c.MaxPushEvents < 1:
		return cfgErr("MaxPushEvents", "must be >= 1, got %d", c.MaxPushEvents)
	case c.ChunkRecords < 1 || c.ChunkRecords > c.Caps.MaxRecords:
		return cfgErr("ChunkRecords", "must be in 1..Caps.MaxRecords (%d), got %d", c.Caps.MaxRecords, c.ChunkRecords)
	case c.Caps.MaxMessageBytes < 4096 || c.Caps.MaxStateBytes < 1024:
		return cfgErr("Caps.MaxMessageBytes/MaxStateBytes", "too small: %d, %d", c.Caps.MaxMessageBytes, c.Caps.MaxStateBytes)
	case c.Caps.MaxEvents < 1 || c.Caps.MaxRecords < 1 || c.Caps.MaxNames < 2 || c.Caps.MaxHosts < 1 ||
		c.Caps.MaxOrigins < 1 || c.Caps.MaxPairs < 1 || c.Caps.MaxCopies < 1:
		return cfgErr("Caps", "every cap must be positive: %+v", c.Caps)
	case c.RequestRate <= 0 || c.RequestBurst < 1:
		return cfgErr("RequestRate/RequestBurst", "must be > 0, got %v, %d", c.RequestRate, c.RequestBurst)
	case c.FullCopyInterval <= 0 || c.FullCopyBurst < 1:
		return cfgErr("FullCopyInterval/FullCopyBurst", "must be > 0, got %v, %d", c.FullCopyInterval, c.FullCopyBurst)
	case c.CopyTimeout <= 0:
		return cfgErr("CopyTimeout", "must be > 0, got %v", c.CopyTimeout)
	case c.TicketKeyRotate < 100*time.Millisecond:
		return cfgErr("TicketKeyRotate", "must be >= 100ms, got %v", c.TicketKeyRotate)
	case c.TicketKeyKeep < 1 || c.TicketKeyKeep > MaxTicketKeys:
		return cfgErr("TicketKeyKeep", "must be in 1..%d, got %d", MaxTicketKeys, c.TicketKeyKeep)
	case c.TicketKeyGrace < 0:
		return cfgErr("TicketKeyGrace", "must be >= 0, got %v", c.TicketKeyGrace)
	case c.Workers < 1 || c.WorkQueue < 1 || c.OutboxDepth < 1:
		return cfgErr("Workers/WorkQueue/OutboxDepth", "must be >= 1, got %d, %d, %d", c.Workers, c.WorkQueue, c.OutboxDepth)
	case c.CatchUpTimeout <= 0:
		return cfgErr("CatchUpTimeout", "must be > 0, got %v", c.CatchUpTimeout)
	case c.LeaveTimeout <= 0:
		return cfgErr("LeaveTimeout", "must be > 0, got %v", c.LeaveTimeout)
	case len(c.Meta) > memberlist.MetaMaxSize:
		return cfgErr("Meta", "%d bytes, at most %d", len(c.Meta), memberlist.MetaMaxSize)
	case c.ReconnectInterval <= 0 || c.ReconnectTimeout <= 0:
		return cfgErr("ReconnectInterval/ReconnectTimeout", "must be > 0, got %v, %v", c.ReconnectInterval, c.ReconnectTimeout)
	}
	m := c.Memberlist
	switch {
	case m.ProbeInterval <= 0 || m.ProbeTimeout <= 0 || m.ProbeTimeout >= m.ProbeInterval:
		return cfgErr("Memberlist.ProbeInterval/ProbeTimeout", "need 0 < timeout < interval, got %v, %v", m.ProbeTimeout, m.ProbeInterval)
	case m.SuspicionMult < 1 || m.GossipInterval <= 0 || m.PushPullInterval <= 0 || m.TCPTimeout <= 0:
		return cfgErr("Memberlist", "SuspicionMult, GossipInterval, PushPullInterval, TCPTimeout must be positive")
	case m.DeadNodeReclaimTime <= 0 || m.HandoffQueueDepth < 1:
		return cfgErr("Memberlist", "DeadNodeReclaimTime and HandoffQueueDepth must be positive")
	}
	return nil
}

// pushRate is the steady rate of change groups to one peer while events
// keep coming, with peers live peers (PushBudget).
func (c Config) pushRate(peers int) rate.Limit {
	r := float64(c.PushBurst) / c.PushInterval.Seconds()
	if peers > 0 {
		r = min(r, float64(c.PushBudget)/float64(peers))
	}
	return rate.Limit(max(r, 2/c.HeartbeatInterval.Seconds()))
}

// splitHostPort parses host:port with a numeric port in 0..65535.
func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}
