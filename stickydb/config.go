package stickydb

import (
	"fmt"
	"time"
)

// Config holds the core's settings. Every duration is wall-clock time as the
// caller's `now` measures it.
type Config struct {
	// Node is this node's unique, stable name. It is the origin of every
	// event this node makes. Required.
	Node string

	// TTL is how long a binding lives after its last use. Default 30m.
	TTL time.Duration

	// RefreshThreshold: a hit extends the binding locally; a refresh event
	// is due once the local expiry runs this far ahead of the expiry last
	// announced to the fleet. Smaller means more events, larger means a
	// binding idle on every node may expire up to this much early elsewhere.
	// Default TTL/4.
	RefreshThreshold time.Duration

	// MaxSkew is the largest clock difference assumed between nodes (the
	// reference text's epsilon). Expired entries are dropped only this long
	// after their expiry; old epochs are pruned TTL + MaxSkew after the next
	// one started. Default 2s.
	MaxSkew time.Duration

	// Shards splits the binding table so that concurrent requests rarely
	// meet on one lock. Rounded up to a power of two. Default 256.
	Shards int

	// OwnLogCap bounds this node's own change log, in events. Older events
	// are dropped past it; a peer that needs them gets a full copy. With
	// Durable, events not yet persisted are never dropped: the log runs
	// over the cap until the shell calls MarkPersisted. Default 200,000.
	OwnLogCap int

	// ChangeLogTableCap bounds the cache of each other origin's events kept
	// to answer third-party range requests (Fig. 10). Default 1,000.
	ChangeLogTableCap int

	// ReorderGroups bounds the change groups buffered per (origin, epoch)
	// while waiting for a hole to fill. Default 64.
	ReorderGroups int

	// GapWait is how long a hole may stay open before the buffered groups
	// are discarded and the range is requested. Groups leave a busy node
	// about a millisecond apart (gossip's push budget), and memberlist
	// reorders only what arrives within a few of them, so a hole still
	// open after 10 ms is a lost message: asking sooner recovers sooner
	// (BenchmarkConvergence with 1% loss: p99 28 ms at 10 ms, 507 ms at
	// 40 ms, as a lost ask then waits out RangeTimeout). It is checked
	// on each Tick. Default 10ms.
	GapWait time.Duration

	// VectorGapWait is how long a hole that only a peer's vector shows (no
	// group of the origin buffered past it) may stay open before it is
	// asked (never sooner than GapWait). Such a hole is usually not a
	// loss: the peer's vector runs ahead of the origin's pushes still in
	// flight to us, and a large fleet paces those tens of milliseconds
	// apart per peer (gossip's PushBudget: ~49 ms at 50 nodes). A lost
	// push shows as a buffered group (GapWait) as soon as the origin's
	// next push arrives; only a lost tail waits this long. Measured at 50
	// in-process nodes, asking after GapWait instead made thousands of range
	// requests a second (bench/SCALE.md). Default 250ms.
	VectorGapWait time.Duration

	// RangeTimeout is how long a range request may go unanswered before it
	// is sent to the next candidate (origin, then a peer that has the range,
	// then a full copy). Default 500ms.
	RangeTimeout time.Duration

	// FullCopyAfter: a gap is asked as a full copy only once its first
	// range request is this old; until then a request that timed out goes
	// to the origin, then a third node, again. A full copy of the table is
	// the costliest answer there is, and on a busy or CPU-starved fleet a
	// range answer is more often late than lost (measured at 25-50
	// in-process nodes on two shared cores: full copies after 1 s fed the
	// starvation that delayed the answers). A peer that no longer holds the
	// range answers with a full copy itself. Default 3s.
	FullCopyAfter time.Duration

	// FullCopyTimeout is how long a full-copy request may go unanswered
	// before the gap handling starts over (at the origin again: cheap if
	// the copy is still arriving). Default 3s.
	FullCopyTimeout time.Duration

	// Watchdog: a live peer from whom nothing was received for this long is
	// asked for its events after what we know (para. 18). Default 5s.
	Watchdog time.Duration

	// MaxBindings caps the bindings this node holds; past it the binding
	// closest to expiry in the same shard is evicted (and counted).
	// 0 means no cap. Default 4,000,000.
	MaxBindings int

	// Caps against a peer that holds the gossip key but misbehaves.
	MaxGroupEvents       int           // events per change group; default 10,000
	MaxBindingsPerOrigin int           // live bindings one origin may create; default 4,000,000
	MaxSeqJump           uint64        // sequence numbers any epoch may reach at once; default 1<<24
	MaxEventRate         uint64        // events per second an origin may number on top of MaxSeqJump; default 1,000,000
	MaxFutureEpoch       time.Duration // how far in the future an epoch may be; default 1m
	MaxEpochs            int           // epoch pairs kept per origin in a vector; default 48

	// Durable says that own events are written to a log before they leave
	// the node. Then OwnEvents for sending, answers to peers and the vector
	// this node advertises stop at the last MarkPersisted sequence.
	Durable bool
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig(node string) Config {
	return Config{
		Node:                 node,
		TTL:                  30 * time.Minute,
		MaxSkew:              2 * time.Second,
		Shards:               256,
		OwnLogCap:            200_000,
		ChangeLogTableCap:    1000,
		ReorderGroups:        64,
		GapWait:              10 * time.Millisecond,
		VectorGapWait:        250 * time.Millisecond,
		RangeTimeout:         500 * time.Millisecond,
		FullCopyAfter:        3 * time.Second,
		FullCopyTimeout:      3 * time.Second,
		Watchdog:             5 * time.Second,
		MaxBindings:          4_000_000,
		MaxGroupEvents:       10_000,
		MaxBindingsPerOrigin: 4_000_000,
		MaxSeqJump:           1 << 24,
		MaxEventRate:         1_000_000,
		MaxFutureEpoch:       time.Minute,
		MaxEpochs:            48,
	}
}

// withDefaults fills zero fields with defaults so that a partly filled
// Config works.
func (c Config) withDefaults() Config {
	d := DefaultConfig(c.Node)
	if c.TTL == 0 {
		c.TTL = d.TTL
	}
	if c.RefreshThreshold == 0 {
		c.RefreshThreshold = c.TTL / 4
	}
	if c.Shards == 0 {
		c.Shards = d.Shards
	}
	if c.OwnLogCap == 0 {
		c.OwnLogCap = d.OwnLogCap
	}
	if c.ChangeLogTableCap == 0 {
		c.ChangeLogTableCap = d.ChangeLogTableCap
	}
	if c.ReorderGroups == 0 {
		c.ReorderGroups = d.ReorderGroups
	}
	if c.GapWait == 0 {
		c.GapWait = d.GapWait
	}
	if c.VectorGapWait == 0 {
		c.VectorGapWait = d.VectorGapWait
	}
	if c.RangeTimeout == 0 {
		c.RangeTimeout = d.RangeTimeout
	}
	if c.FullCopyAfter == 0 {
		c.FullCopyAfter = d.FullCopyAfter
	}
	if c.FullCopyTimeout == 0 {
		c.FullCopyTimeout = d.FullCopyTimeout
	}
	if c.Watchdog == 0 {
		c.Watchdog = d.Watchdog
	}
	if c.MaxGroupEvents == 0 {
		c.MaxGroupEvents = d.MaxGroupEvents
	}
	if c.MaxBindingsPerOrigin == 0 {
		c.MaxBindingsPerOrigin = d.MaxBindingsPerOrigin
	}
	if c.MaxSeqJump == 0 {
		c.MaxSeqJump = d.MaxSeqJump
	}
	if c.MaxEventRate == 0 {
		c.MaxEventRate = d.MaxEventRate
	}
	if c.MaxFutureEpoch == 0 {
		c.MaxFutureEpoch = d.MaxFutureEpoch
	}
	if c.MaxEpochs == 0 {
		c.MaxEpochs = d.MaxEpochs
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Node == "" || len(c.Node) > maxNameLen:
		return fmt.Errorf("stickydb: Node must be 1..%d bytes, got %q", maxNameLen, c.Node)
	case c.TTL <= 0:
		return fmt.Errorf("stickydb: TTL must be > 0, got %v", c.TTL)
	case c.RefreshThreshold <= 0 || c.RefreshThreshold > c.TTL:
		return fmt.Errorf("stickydb: RefreshThreshold must be in (0, TTL], got %v", c.RefreshThreshold)
	case c.MaxSkew < 0:
		return fmt.Errorf("stickydb: MaxSkew must be >= 0, got %v", c.MaxSkew)
	case c.Shards < 1 || c.Shards > 1<<16:
		return fmt.Errorf("stickydb: Shards must be in 1..65536, got %d", c.Shards)
	case c.OwnLogCap < 1 || c.ChangeLogTableCap < 1 || c.ReorderGroups < 1:
		return fmt.Errorf("stickydb: log caps must be >= 1")
	case c.MaxBindings < 0 || c.MaxBindingsPerOrigin < 1 || c.MaxGroupEvents < 1:
		return fmt.Errorf("stickydb: binding and group caps must be positive")
	case c.GapWait < 0 || c.VectorGapWait < 0 || c.FullCopyAfter < 0 || c.RangeTimeout <= 0 || c.FullCopyTimeout <= 0 || c.Watchdog <= 0:
		return fmt.Errorf("stickydb: timeouts must be positive")
	}
	return nil
}
