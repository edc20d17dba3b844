package main

import (
	"context"
	"errors"

	"github.com/tetherproxy/tether/edge"
	"github.com/tetherproxy/tether/gossip"
	"github.com/tetherproxy/tether/recovery"
)

// startRecovery opens the data dir and restores the DB from it (disk mode,
// Fig. 11). Without a data dir the node runs in epoch mode (Fig. 12): its
// DB already started a new epoch, and gossip fetches a copy from a peer.
func startRecovery(ctx context.Context, n *node) error {
	if n.cfg.DataDir == "" {
		return nil
	}
	rc := recovery.DefaultConfig(n.cfg.DataDir)
	rc.Logger, rc.Now = &n.log, n.now
	st, err := recovery.Open(rc)
	if err != nil {
		return err
	}
	rec, err := st.Recover(n.db, n.now())
	if err != nil {
		_ = st.Close()
		return err
	}
	n.store, n.rec = st, rec
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(runCtx) }()
	n.onShutdown("flush log", func(context.Context) error {
		cancel()
		err := <-done
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return errors.Join(err, st.Close())
	})
	return nil
}

// startGossip joins the fleet and replicates the DB (Fig. 6, 7). The proxy
// writes bindings through the gossip store, which kicks the push.
func startGossip(_ context.Context, n *node) error {
	if err := checkGossipExposure(n.cfg, n.log); err != nil {
		return err
	}
	gc := gossip.DefaultConfig()
	gc.BindAddr, gc.AdvertiseAddr, gc.Join = n.cfg.GossipBind, n.cfg.GossipAdvertise, n.cfg.Join
	gc.Key, gc.PushInterval, gc.PushBurst = n.cfg.GossipKey, n.cfg.PushInterval, n.cfg.PushBurst
	gc.Logger, gc.Now = &n.log, n.now
	gc.Meta = encodeMemberMeta(n.cfg)
	gc.WrapTransport = n.wrapTransport // nil but in faultinject test builds
	gc.OnDrain = func(pool, name string, on bool) {
		if p := n.proxyPtr.Load(); p != nil {
			_ = p.SetDrain(pool, name, on) // a replica this node does not have: nothing to do
		}
	}
	if e := n.cfg.Edge; e.TLSListen != "" {
		// The TLS listener's session ticket keys: the fleet's when the
		// gossip is encrypted, this node's own otherwise (startTLS says
		// which).
		n.edge.tickets = edge.NewTicketKeys(n.registry)
		gc.OnTicketKeys = n.edge.tickets.Set
		gc.TicketKeyRotate, gc.TicketKeyKeep = e.TicketRotate, e.TicketKeep
	}
	// Epoch mode, and a disk whose contents are too old or absent, start
	// from a peer's copy of the database and vector.
	gc.InitialCopy = n.rec == nil || n.rec.Report.Mode != recovery.ModeShort
	// Binds made before the node caught up are provisional (generation 0):
	// they lose every conflict with the fleet's bindings.
	gc.Provisional = true
	if n.store != nil {
		gc.Persister = n.store
		gc.NewEpoch = n.store.NewEpoch
	}
	if n.rec != nil && n.rec.Report.Mode != recovery.ModeShort {
		// The core says when: once caught up, before ready.
		gc.Reconcile = n.reconcile
	}
	g, err := gossip.New(gc, n.db)
	if err != nil {
		return err
	}
	if err := g.Start(); err != nil {
		return err
	}
	n.gossip, n.bind = g, g.Store()
	n.onShutdown("leave cluster", func(context.Context) error { return g.Close() })
	return nil
}

// reconcile completes a disk recovery once the core's lifecycle says the
// node has caught up (or given up waiting), before it is ready: a long
// outage merges the local snapshot after the peers' copy too, so a whole
// fleet restarted after a long stop loses nothing that was flushed, and
// the own log again on top (Fig. 11 step 665). Binds stay provisional
// until it is done.
func (n *node) reconcile() error {
	rep := n.rec.Report
	var err error
	if rep.Mode == recovery.ModeLong {
		err = n.rec.ReconcileLocal(n.now())
	} else {
		err = n.rec.Reconcile(n.now())
	}
	if err != nil && !errors.Is(err, recovery.ErrReconciled) {
		return err
	}
	n.log.Info().Str("mode", rep.Mode.String()).Msg("recovery reconciled with the peers")
	return nil
}

// ready is /readyz: recovered, joined, caught up with the live peers (or
// alone) and, after a disk recovery, reconciled (the core's lifecycle
// says ready only then). Until then the node still proxies with rendezvous
// selection and provisional binds.
func (n *node) ready() bool {
	return n.gossip != nil && n.gossip.Ready()
}

// readyBehind is what a node catching up still lacks (/api/v1/node's
// "behind"), "" otherwise.
func (n *node) readyBehind() string {
	if n.gossip == nil {
		return ""
	}
	if b, ok := n.gossip.Behind(); ok {
		return b.String()
	}
	return ""
}

// readyWhy is /readyz's "why": what the node waits for, or how it became
// ready.
func (n *node) readyWhy() string {
	if n.gossip == nil {
		return "starting"
	}
	return n.gossip.ReadyWhy()
}
