package proxy

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetherproxy/tether/stickydb"
)

// ErrBindQuota: the client has made its share of new bindings for now.
var ErrBindQuota = errors.New("proxy: the client's quota of new bindings is spent")

// BindQuota bounds the new bindings one client address (IPv6: one /64)
// may make on this node: a token bucket of Burst bindings refilled at
// PerSecond. A client past it is still served, by the rendezvous pick
// (the same replica every time while the pool is unchanged), but nothing
// is stored or replicated for it, so varying the Host cannot fill the
// table and evict other clients. Only new bindings count: hits, refreshes
// and moves are free.
type BindQuota struct {
	// Burst is the bucket's size. Default 100; negative turns the quota off.
	Burst int
	// PerSecond is the refill rate. Default 1 (3,600 an hour; bindings
	// expire after the TTL, so a steady client holds at most about
	// Burst + PerSecond x TTL).
	PerSecond float64
	// MaxSources bounds the addresses tracked; when full the oldest half
	// of the buckets is forgotten. Default 65,536.
	MaxSources int
}

const quotaShards = 16

// quotaBindings is Bindings with BindQuota applied to BindIfAbsent.
type quotaBindings struct {
	Bindings
	q       BindQuota
	refused prometheus.Counter
	shards  [quotaShards]quotaShard
}

type quotaShard struct {
	mu sync.Mutex
	m  map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix ns of the last refill
}

func newQuotaBindings(inner Bindings, q BindQuota, reg prometheus.Registerer) (*quotaBindings, error) {
	qb := &quotaBindings{Bindings: inner, q: q, refused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tether_proxy_binds_over_quota_total",
		Help: "Requests served by the rendezvous pick without a new binding: the client address had spent its quota of new bindings (BindQuota).",
	})}
	for i := range qb.shards {
		qb.shards[i].m = map[netip.Addr]*bucket{}
	}
	if reg != nil {
		if err := reg.Register(qb.refused); err != nil {
			return nil, err
		}
	}
	return qb, nil
}

// quotaSource is the address a quota counts: IPv4 as it is, IPv6 by /64.
func quotaSource(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a.Unmap()
}

// has says whether src's bucket holds a token, and spends it if spend.
// Peeking first and spending only on a bind that was made keeps hits on existing bindings
// free, at the cost of a few binds over the quota under a race.
func (qb *quotaBindings) has(src netip.Addr, now time.Time, spend bool) bool {
	s := &qb.shards[src.As16()[15]%quotaShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[src]
	ns := now.UnixNano()
	if b == nil {
		if len(s.m) >= max(qb.q.MaxSources/quotaShards, 1) {
			qb.forgetHalf(s)
		}
		b = &bucket{tokens: float64(qb.q.Burst), last: ns}
		s.m[src] = b
	}
	if d := ns - b.last; d > 0 {
		b.tokens = min(float64(qb.q.Burst), b.tokens+float64(d)/1e9*qb.q.PerSecond)
		b.last = ns
	}
	if b.tokens < 1 {
		return false
	}
	if spend {
		b.tokens--
	}
	return true
}

// forgetHalf drops the buckets refilled longest ago (locked).
func (qb *quotaBindings) forgetHalf(s *quotaShard) {
	var cut int64
	n := 0
	for _, b := range s.m { // a sampled median is enough
		cut += b.last
		if n++; n == 64 {
			break
		}
	}
	if n == 0 {
		return
	}
	cut /= int64(n)
	for a, b := range s.m {
		if b.last <= cut {
			delete(s.m, a)
		}
	}
}

func (qb *quotaBindings) BindIfAbsent(k stickydb.Key, replica string, now time.Time) (stickydb.Binding, bool, error) {
	src := quotaSource(k.Client())
	if !qb.has(src, now, false) {
		if b, ok := qb.Bindings.Touch(k, now); ok { // bound meanwhile: follow it
			return stickydb.Binding{Replica: b.Replica, Generation: b.Generation}, false, nil
		}
		qb.refused.Inc()
		return stickydb.Binding{}, false, ErrBindQuota
	}
	b, created, err := qb.Bindings.BindIfAbsent(k, replica, now)
	if created {
		qb.has(src, now, true)
	}
	return b, created, err
}
