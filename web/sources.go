package web

import (
	"net/netip"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Core is what the admin reads and changes in the sticky database.
// *stickydb.DB satisfies it as it is. The lead wraps it (embed *stickydb.DB,
// override Delete and Rebind) so that an operator's change also kicks the
// push to peers at once instead of waiting for the next push tick.
//
// Contract: every method is called from HTTP handler goroutines, several at
// once; none may block on the network (the core never does). Slices and
// vectors returned are copies the caller owns and may keep. Find with a
// filter that matches few rows walks the whole table (tens of ms at 1M
// bindings); the other reads take one lock briefly.
type Core interface {
	// Node is this node's name (the origin of its own events).
	Node() string
	// Position is this node's epoch (unix ms) and last own event number.
	Position() (epoch int64, seq uint64)
	// Len counts the entries held (tombstones and unswept entries included).
	Len() int

	Find(q stickydb.Query, now time.Time) (stickydb.Page, error)
	Lookup(k stickydb.Key) (stickydb.Binding, bool)
	LocalExpiry(k stickydb.Key) (int64, bool)
	// Snapshot walks every live record; the admin uses it, cached, to count
	// bindings per replica. fn must not keep the slice.
	Snapshot(now time.Time, fn func([]stickydb.Record) error) (stickydb.SnapshotMeta, error)

	// Delete and Rebind are the operator's mutations. Both make an own event
	// with generation + 1 that the shell must persist and push; the wrapper
	// the lead passes here is the place to kick that.
	Delete(k stickydb.Key, now time.Time) (stickydb.Binding, error)
	Rebind(k stickydb.Key, from, to string, now time.Time) (b stickydb.Binding, changed bool, err error)

	Vector() stickydb.Vector
	Table() []stickydb.PeerInfo
	Logs() []stickydb.LogInfo
	RecentGaps() []stickydb.GapRecord
	Stats() stickydb.Stats
	Digest(now time.Time, margin time.Duration) (count int, sum uint64)
	// Watch returns a channel closed at the next write to k
	// (stickydb.DB.Watch): watch, check, then wait on it; cancel after.
	Watch(k stickydb.Key) (changed <-chan struct{}, cancel func())
}

var _ Core = (*stickydb.DB)(nil)

// Member is one node of the fleet as membership (gossip) sees it.
type Member struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`  // host:port of its gossip endpoint
	State string `json:"state"` // "alive", "suspect", "dead" or "left"
	// Admin is the member's admin URL when it advertises one ("" if not);
	// the overview links to it.
	Admin string `json:"admin,omitempty"`
}

// Members is the membership view.
//
// Contract: Members is called from handler goroutines (and at /metrics
// scrape time), several at once; it must not block on the network. The
// slice is the caller's. This node itself is included.
type Members interface {
	Members() []Member
}

// BackendStatus is one replica of one pool as the proxy sees it.
type BackendStatus struct {
	// Pool names the pool; Hosts are the request Hosts it serves. The pool
	// of TETHER_BACKENDS has no Hosts: it serves every other Host.
	Pool  string   `json:"pool"`
	Hosts []string `json:"hosts,omitempty"`

	Name     string  `json:"name"`
	URL      string  `json:"url"`
	Weight   float64 `json:"weight"`
	Healthy  bool    `json:"healthy"`
	Draining bool    `json:"draining"`
	// LastCheck is the time of the last health check; zero if none yet.
	LastCheck time.Time `json:"last_check,omitzero"`
	// LastError is why the replica was last marked down; "" when healthy.
	LastError string `json:"last_error,omitempty"`
	// LastCheckError is why the last active check failed; "" when it
	// passed (or none ran yet: see LastCheck).
	LastCheckError string `json:"last_check_error,omitempty"`
}

// Backends is the proxy's view of its pools, and the operator's controls.
//
// Contract: all methods are called from handler goroutines, several at
// once. Backends must not block (it reads runtime state) and the slice is
// the caller's. SetDrain and Reload may block briefly (Reload reads the
// routes file); the handler waits for them under the request's deadline.
// SetDrain on a backend that does not exist returns an error; the admin
// checks existence through Backends first, so that is a race, not a 404.
type Backends interface {
	Backends() []BackendStatus
	// SetDrain drains (on) or undrains a replica: a drained replica takes no
	// new bindings; the clients bound to it stay (until their binding
	// expires, is deleted or rebound, or the replica goes down). The lead
	// replicates it to the fleet.
	SetDrain(pool, name string, on bool) error
	// Reload rereads the routes file; an error leaves the old routes in force.
	Reload() error
}

// PeerStats are the transport's per-peer counters (gossip), all
// monotonic. The core counts what it applied; only the transport knows
// what it sent, received and failed to decode.
type PeerStats struct {
	Peer           string `json:"peer"`
	GroupsSent     uint64 `json:"groups_sent"`
	GroupsReceived uint64 `json:"groups_received"`
	DecodeErrors   uint64 `json:"decode_errors"`
	// CapBreaches counts groups from this peer the core refused with a cap
	// or format error (ErrMalformed, ErrSeqJump, ErrFutureEpoch, ...).
	CapBreaches uint64 `json:"cap_breaches"`
	// LagLastMs is the replication lag of the last group pushed by this
	// peer: from when its oldest event was made there to its arrival here
	// (the two clocks compared), ms. LagMaxMs is the largest seen.
	LagLastMs int64 `json:"lag_last_ms"`
	LagMaxMs  int64 `json:"lag_max_ms"`
}

// Transport reports the per-peer counters.
//
// Contract: called from handler goroutines and at scrape time; must not
// block; the slice is the caller's.
type Transport interface {
	PeerStats() []PeerStats
}

// BackendTraffic is one replica's cumulative traffic (the proxy's
// counters): the admin turns readings a second apart into rates, and
// readings a minute apart into latency percentiles.
type BackendTraffic struct {
	Pool, Name string
	// Classes counts responses by status class: [0] other, [1] 1xx ...
	// [5] 5xx.
	Classes [6]uint64
	// Bounds are the latency histogram's bucket upper bounds (seconds),
	// Cumulative[i] the requests that took at most Bounds[i], Count all.
	Bounds     []float64
	Cumulative []uint64
	Count      uint64
}

// TrafficSource reports the proxy's per-replica traffic.
//
// Contract: called once a second from the admin's sampler goroutine (and
// from tests); must not block; the slices are the caller's.
type TrafficSource interface {
	Traffic() []BackendTraffic
}

// NodeInfo describes this process.
type NodeInfo struct {
	Version string
	Started time.Time
	// Ready reports whether the node has joined and caught up (/readyz).
	// Called from handler goroutines; must not block. nil means always ready.
	Ready func() bool
	// ReadyWhy says what a node that is not ready waits for, or how it
	// became ready (/readyz's "why"). Must not block; nil: not shown.
	ReadyWhy func() string
	// ReadyBehind says, while the node is catching up, which pair of its
	// target it lacks and what is done about it (/api/v1/node's "behind";
	// not on the open /readyz: it names peers). Must not block; nil or "":
	// not shown.
	ReadyBehind func() string
}

// Sources are the parts the admin shows and drives. Core is required;
// a nil Members, Backends or Transport hides its sections and answers
// its API with 501.
type Sources struct {
	Core      Core
	Members   Members
	Backends  Backends
	Transport Transport
	Node      NodeInfo
	// ClientKey maps a client address to the address its binding is keyed
	// by (the proxy's client prefix, e.g. an IPv6 address to its /64), so
	// that a search by any address inside the prefix finds the binding.
	// nil keys by the whole address. Must not block.
	ClientKey func(netip.Addr) netip.Addr
	// Certs lists the TLS listener's certificates; nil without one.
	Certs Certificates
	// Traffic, when set, feeds the overview's traffic table and graphs.
	Traffic TrafficSource
}

// poolFor returns the pool that serves host: the one listing it, else the
// default pool (no Hosts). ok is false when neither exists.
func poolFor(bs []BackendStatus, host string) (pool string, ok bool) {
	def, hasDef := "", false
	for _, b := range bs {
		if len(b.Hosts) == 0 {
			def, hasDef = b.Pool, true
			continue
		}
		for _, h := range b.Hosts {
			if h == host {
				return b.Pool, true
			}
		}
	}
	return def, hasDef
}
