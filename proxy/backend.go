package proxy

import (
	"context"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// backend is one replica at run time: configuration that does not change
// (name, URL) apart from state that does (health, drain, counters), as
// atomics so the request path reads them without a lock. A backend object
// survives a reload that keeps its pool, name and URL, so its health,
// drain flag and counters do too.
type backend struct {
	pool string
	name string
	url  *url.URL
	hash uint64 // stickydb.NameHash(name)
	rp   *httputil.ReverseProxy
	// conns is the fast path's keep-alive pool (fastpath.go); nil when the
	// replica takes ReverseProxy only (https, Forwarding "stdlib", a
	// periodic FlushInterval).
	conns *connPool
	m     backendMetrics

	healthy  atomic.Bool
	draining atomic.Bool
	inflight atomic.Int64
	requests atomic.Uint64
	// downs counts passive markings: the checker restarts its rise count
	// when it changes, so a replica marked down passively needs Rise
	// passed checks to come back, like one marked down by checks.
	downs atomic.Uint64

	// Checker state, guarded by Proxy.mu.
	hc      HealthCheck
	stop    context.CancelFunc
	done    chan struct{}
	lastWhy atomic.Pointer[string] // why the last state change happened
	// lastCheck is the latest active check's outcome; nil before the first.
	lastCheck atomic.Pointer[checkResult]
	identity  string // pool \x00 name \x00 url: what a reload matches on
}

func backendIdentity(pool, name string, u *url.URL) string {
	return pool + "\x00" + name + "\x00" + u.String()
}

// usable for new clients: healthy and not draining.
func (b *backend) usable() bool { return b.healthy.Load() && !b.draining.Load() }

// pool is one pool at run time, immutable once built: a reload builds new
// pools (reusing backend objects) and swaps the whole table.
type pool struct {
	name     string
	hosts    []string
	health   HealthCheck
	backends []*backend
	weights  []float64 // weights[i] is backends[i]'s
	byName   map[string]*backend
}

// pick chooses a replica for a new or moving client by weighted rendezvous
// hashing over the usable replicas, the same function the merge rule uses
// (stickydb.Pick). nil when none is usable.
func (pl *pool) pick(k stickydb.Key) *backend {
	var cb [16]stickydb.Candidate
	var bb [16]*backend
	c, bs := cb[:0], bb[:0]
	for i, b := range pl.backends {
		if b.usable() {
			c = append(c, stickydb.Candidate{Name: b.name, Hash: b.hash, Weight: pl.weights[i]})
			bs = append(bs, b)
		}
	}
	if i := stickydb.Pick(k, c); i >= 0 {
		return bs[i]
	}
	return nil
}

// table is the routing table in force. Immutable; swapped whole.
type table struct {
	pools  []*pool
	byHost map[string]*pool
	def    *pool // DefaultPool, or nil
}

// route returns the pool serving host, or nil.
func (t *table) route(host string) *pool {
	if p, ok := t.byHost[host]; ok {
		return p
	}
	return t.def
}

func (t *table) poolNamed(name string) *pool {
	for _, p := range t.pools {
		if p.name == name {
			return p
		}
	}
	return nil
}

// checkResult is the outcome of one active health check.
type checkResult struct {
	at  time.Time
	err string // "" when it passed
}
