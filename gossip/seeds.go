package gossip

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Seeds given as DNS names (a Kubernetes headless Service, a round-robin
// name): each join attempt resolves them (Config.Resolver) and joins every
// address they resolve to, less this node's own. A name that resolves to
// this node only (the first pod of a StatefulSet) makes a fleet of one
// that is ready at once; while the node has no peers, it resolves the
// names again every JoinRetryMax and joins whoever appeared, so nodes
// that started together, each seeing only itself, still find each other,
// and a node whose peers all went away finds their successors.

// resolveTimeout bounds one resolution of the seed names.
const resolveTimeout = 5 * time.Second

// resolveSeeds returns the seeds to join now: addresses as given, names
// resolved, this node's own address left out, each once. err is the last
// lookup error; a seed that does not resolve is left out.
func (n *Node) resolveSeeds() (out []string, err error) {
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] && !n.isSelf(s) {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range n.cfg.Join {
		host, port, perr := net.SplitHostPort(s)
		if perr != nil || isAddr(host) {
			add(s)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		addrs, lerr := n.resolver().LookupHost(ctx, host)
		cancel()
		if lerr != nil {
			err = lerr
			continue
		}
		for _, a := range addrs {
			add(net.JoinHostPort(a, port))
		}
	}
	return out, err
}

func (n *Node) resolver() *net.Resolver {
	if n.cfg.Resolver != nil {
		return n.cfg.Resolver
	}
	return net.DefaultResolver
}

// hasNameSeeds reports whether a seed is a DNS name.
func (n *Node) hasNameSeeds() bool {
	for _, s := range n.cfg.Join {
		if host, _, err := net.SplitHostPort(s); err == nil && !isAddr(host) {
			return true
		}
	}
	return false
}

func isAddr(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// isSelf reports whether seed s is this node's own address.
func (n *Node) isSelf(s string) bool {
	if s == n.addr || s == n.cfg.AdvertiseAddr {
		return true
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if ip := net.ParseIP(h); ip != nil && net.JoinHostPort(ip.String(), p) == n.addr {
			return true
		}
	}
	return false
}

// lonely (join loop) resolves the seed names and joins again every
// JoinRetryMax while the node has no peers, until the node stops.
func (n *Node) lonely() {
	if !n.hasNameSeeds() {
		return
	}
	tick := time.NewTicker(n.cfg.JoinRetryMax)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if n.ml.NumMembers() > 1 {
			continue
		}
		seeds, err := n.resolveSeeds()
		if len(seeds) == 0 {
			continue
		}
		k, jerr := n.ml.Join(seeds)
		ev := n.log.Debug()
		if k > 0 {
			ev = n.log.Info()
		}
		ev.Strs("seeds", seeds).Int("contacted", k).AnErr("resolve_error", err).AnErr("join_error", jerr).
			Msg("no peers: joined the seeds again")
	}
}

// missingSeeds counts the configured seeds given as ip:port (names are
// left out: how many nodes they stand for is not known) that are not a
// member: readiness waits for them a while (stickydb.LifeConfig
// SeedWait).
func (n *Node) missingSeeds() int {
	if n.ml == nil {
		return 0
	}
	// The members as the event delegate copied them: the nodes
	// memberlist's Members returns are its own, which its packet handler
	// updates under its lock while we would read them (a data race).
	up := map[string]bool{}
	n.memberMu.Lock()
	for _, m := range n.members {
		up[m.Address()] = true
	}
	n.memberMu.Unlock()
	missing := 0
	for _, s := range n.seeds() {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			continue
		}
		ip := net.ParseIP(h)
		if ip == nil {
			continue
		}
		if !up[net.JoinHostPort(ip.String(), p)] {
			missing++
		}
	}
	return missing
}
