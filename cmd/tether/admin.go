package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tetherproxy/tether/gossip"
	"github.com/tetherproxy/tether/stickydb"
	"github.com/tetherproxy/tether/web"
)

// startAdmin serves the admin UI, JSON API, /metrics, /healthz and /readyz.
func startAdmin(_ context.Context, n *node) error {
	wc := web.DefaultConfig()
	wc.Listen, wc.Token = n.cfg.AdminListen, n.cfg.AdminToken
	wc.AllowedHosts = n.cfg.AdminHosts
	wc.Registry, wc.Logger, wc.Now = n.registry, &n.log, n.now
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newGossipCollector(n.gossip))
	var certs web.Certificates
	if n.edge.certs != nil {
		certs = adminCerts{n.edge.certs}
	}
	srv, err := web.New(wc, web.Sources{
		Core:      adminCore{n.db, n.gossip},
		Members:   adminMembers{n},
		Backends:  adminBackends{n},
		Transport: adminTransport{n.gossip},
		Traffic:   adminTraffic{n},
		Node:      web.NodeInfo{Version: version, Started: n.started, Ready: n.ready, ReadyWhy: n.readyWhy, ReadyBehind: n.readyBehind},
		ClientKey: n.cfg.Edge.ClientPrefix.Mask,
		Certs:     certs,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	n.admin = srv
	n.onShutdown("admin", func(ctx context.Context) error { return srv.Shutdown(ctx) })
	return nil
}

// adminCore is the DB, with the operator's changes made through the gossip
// store so that they leave at once.
type adminCore struct {
	*stickydb.DB
	g *gossip.Node
}

func (c adminCore) Delete(k stickydb.Key, now time.Time) (stickydb.Binding, error) {
	return c.g.Store().Delete(k, now)
}

func (c adminCore) Rebind(k stickydb.Key, from, to string, now time.Time) (stickydb.Binding, bool, error) {
	return c.g.Store().Rebind(k, from, to, now)
}

// adminMembers lists the fleet: the live members memberlist reports, and
// the peers the core still remembers that are gone.
type adminMembers struct{ n *node }

func (m adminMembers) Members() []web.Member {
	var out []web.Member
	alive := map[string]bool{}
	for _, mb := range m.n.gossip.Members() {
		alive[mb.Name] = true
		out = append(out, web.Member{Name: mb.Name, Addr: mb.Addr, State: "alive", Admin: memberAdminURL(mb.Meta, mb.Addr)})
	}
	for _, p := range m.n.db.Table() {
		if !alive[p.Name] {
			out = append(out, web.Member{Name: p.Name, State: "dead"})
		}
	}
	return out
}

// adminBackends shows the proxy's replicas; a drain goes to the whole fleet.
type adminBackends struct{ n *node }

func (b adminBackends) Backends() []web.BackendStatus {
	var out []web.BackendStatus
	for _, s := range b.n.proxy.Backends() {
		out = append(out, web.BackendStatus{Pool: s.Pool, Hosts: s.Hosts, Name: s.Name, URL: s.URL, Weight: s.Weight,
			Healthy: s.Healthy, Draining: s.Draining, LastError: s.Reason,
			LastCheck: s.LastCheck, LastCheckError: s.LastCheckError})
	}
	return out
}

func (b adminBackends) SetDrain(pool, name string, on bool) error {
	// Refuse an unknown replica here, before the fleet hears of it.
	if err := b.n.proxy.SetDrain(pool, name, on); err != nil {
		return err
	}
	b.n.gossip.SetDrain(pool, name, on)
	return nil
}

func (b adminBackends) Reload() error { return b.n.reload() }

type adminTransport struct{ g *gossip.Node }

// notMember is the peer label of errors from senders that are not members
// (or that named no sender): summed into one row, so that made-up names
// cannot grow the metric's label set.
const notMember = "(not a member)"

func (t adminTransport) PeerStats() []web.PeerStats {
	var out []web.PeerStats
	st := t.g.Stats()
	errs := map[string][2]uint64{}
	for _, s := range st.Senders {
		errs[s.Name] = [2]uint64{s.DecodeErrors, s.CapBreaches}
	}
	for _, p := range st.Peers {
		e := errs[p.Name]
		delete(errs, p.Name)
		out = append(out, web.PeerStats{Peer: p.Name, GroupsSent: p.GroupsSent, GroupsReceived: p.GroupsReceived,
			DecodeErrors: e[0], CapBreaches: e[1], LagLastMs: p.LagLastMs, LagMaxMs: p.LagMaxMs})
	}
	if len(errs) > 0 {
		other := web.PeerStats{Peer: notMember}
		for _, e := range errs {
			other.DecodeErrors += e[0]
			other.CapBreaches += e[1]
		}
		out = append(out, other)
	}
	return out
}

// adminTraffic reads the proxy's per-replica counters for the overview.
type adminTraffic struct{ n *node }

func (t adminTraffic) Traffic() []web.BackendTraffic {
	ts := t.n.proxy.Traffic()
	out := make([]web.BackendTraffic, len(ts))
	for i, x := range ts {
		out[i] = web.BackendTraffic{Pool: x.Pool, Name: x.Name, Classes: x.Classes, Bounds: x.Bounds,
			Cumulative: x.Cumulative, Count: x.Count}
	}
	return out
}
