package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// ErrUnknownBackend: SetDrain named a pool or backend that is not
// configured.
var ErrUnknownBackend = errors.New("proxy: unknown backend")

// Reload replaces the routes (SIGHUP, the admin API). Bindings are not
// touched: a client bound to a replica that is still in its Host's pool
// stays there; one bound to a removed replica moves on its next request.
// A replica kept with the same pool, name and URL keeps its health, drain
// flag and counters. Invalid routes are refused whole and the old ones
// stay in force.
func (p *Proxy) Reload(r Routes) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r = r.clone()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	added, removed, kept := p.install(r)
	p.log.Info().Int("pools", len(r.Pools)).Int("added", added).Int("removed", removed).
		Int("kept", kept).Msg("routes reloaded")
	return nil
}

// install builds the table for r, reusing backends of the table in force,
// swaps it in and stops the checkers of replicas that are gone. Caller
// holds p.mu.
func (p *Proxy) install(r Routes) (added, removed, kept int) {
	old := map[string]*backend{}
	if t := p.table.Load(); t != nil {
		for _, pl := range t.pools {
			for _, b := range pl.backends {
				old[b.identity] = b
			}
		}
	}
	t := &table{byHost: map[string]*pool{}}
	var restart []*backend
	for _, rp := range r.Pools {
		pl := &pool{name: rp.Name, hosts: rp.Hosts, health: rp.Health, byName: map[string]*backend{}}
		for _, rb := range rp.Backends {
			id := backendIdentity(rp.Name, rb.Name, rb.URL)
			b, ok := old[id]
			if ok {
				delete(old, id)
				kept++
				if b.hc != rp.Health {
					restart = append(restart, b)
				}
			} else {
				b = p.newBackend(rp.Name, rb.Name, rb.URL, id)
				restart = append(restart, b)
				added++
			}
			pl.backends = append(pl.backends, b)
			pl.weights = append(pl.weights, rb.Weight)
			pl.byName[b.name] = b
		}
		for _, h := range rp.Hosts {
			t.byHost[h] = pl
		}
		if rp.Name == DefaultPool {
			t.def = pl
		}
		t.pools = append(t.pools, pl)
	}
	p.table.Store(t)
	for _, b := range old {
		p.stopChecker(b)
		if b.conns != nil {
			b.conns.close()
		}
		// A replica kept by name with a new URL shares its metric series
		// with the one it replaces: keep those.
		if pl := t.poolNamed(b.pool); pl == nil || pl.byName[b.name] == nil {
			p.m.dropBackend(b.pool, b.name)
		}
		removed++
	}
	for _, pl := range t.pools {
		for _, b := range pl.backends {
			for _, rb := range restart {
				if rb == b {
					p.stopChecker(b)
					p.startChecker(b, pl.health)
				}
			}
		}
	}
	return added, removed, kept
}

func (p *Proxy) newBackend(pool, name string, u *url.URL, id string) *backend {
	b := &backend{pool: pool, name: name, url: u, hash: stickydb.NameHash(name), identity: id}
	b.healthy.Store(true)
	b.m = p.m.forBackend(pool, name)
	b.m.healthy.Set(1)
	b.rp = p.newReverseProxy(b)
	if p.cfg.Forwarding == ForwardFast && u.Scheme == "http" && p.cfg.FlushInterval <= 0 && asciiOnly(u.Host) {
		b.conns = newConnPool(hostPort(u), &p.cfg)
	}
	return b
}

// BackendStatus is one replica as the admin API shows it.
type BackendStatus struct {
	Pool     string   `json:"pool"`
	Hosts    []string `json:"hosts"` // the pool's Hosts; empty for the default pool's catch-all
	Name     string   `json:"name"`
	URL      string   `json:"url"`
	Weight   float64  `json:"weight"`
	Healthy  bool     `json:"healthy"`
	Draining bool     `json:"draining"`
	InFlight int64    `json:"in_flight"`
	Requests uint64   `json:"requests"` // forwarded since the replica was configured
	Reason   string   `json:"reason,omitempty"`
	// LastCheck is when the latest active health check ended (zero before
	// the first); LastCheckError its failure, "" when it passed.
	LastCheck      time.Time `json:"last_check,omitzero"`
	LastCheckError string    `json:"last_check_error,omitempty"`
}

// Backends returns every configured replica, pools and replicas in
// configuration order. The slices are the caller's.
func (p *Proxy) Backends() []BackendStatus {
	t := p.table.Load()
	var out []BackendStatus
	for _, pl := range t.pools {
		for i, b := range pl.backends {
			s := BackendStatus{
				Pool: pl.name, Hosts: append([]string(nil), pl.hosts...), Name: b.name, URL: b.url.String(),
				Weight: pl.weights[i], Healthy: b.healthy.Load(), Draining: b.draining.Load(),
				InFlight: b.inflight.Load(), Requests: b.requests.Load(),
			}
			if why := b.lastWhy.Load(); why != nil {
				s.Reason = *why
			}
			if c := b.lastCheck.Load(); c != nil {
				s.LastCheck, s.LastCheckError = c.at, c.err
			}
			out = append(out, s)
		}
	}
	return out
}

// SetDrain starts (on) or ends draining of a replica: a draining replica
// keeps the clients bound to it and gets no new ones. The flag survives
// reloads that keep the replica.
func (p *Proxy) SetDrain(pool, name string, on bool) error {
	if pl := p.table.Load().poolNamed(pool); pl != nil {
		if b := pl.byName[name]; b != nil {
			if b.draining.Swap(on) != on {
				p.log.Warn().Str("pool", pool).Str("backend", name).Bool("draining", on).Msg("backend drain changed")
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s/%s", ErrUnknownBackend, pool, name)
}
