package proxy

import "github.com/tetherproxy/tether/stickydb"

// Pick returns the pool serving k's Host and the replica a new client with
// key k would be bound to now: the weighted rendezvous pick over the
// pool's usable replicas (healthy, not drained), as a request would
// choose. replica is "" when none is usable; pool is "" when no pool
// serves the Host. The drain's move of idle bindings uses it, so a moved
// client lands where its next request would have taken it.
func (p *Proxy) Pick(k stickydb.Key) (pool, replica string) {
	pl := p.table.Load().route(k.Host())
	if pl == nil {
		return "", ""
	}
	if b := pl.pick(k); b != nil {
		return pl.name, b.name
	}
	return pl.name, ""
}
