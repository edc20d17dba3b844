package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// prefixSize is the number of source addresses sourceAddrs can hand out of
// p, capped at MaxClients+1 (all a run can use).
func prefixSize(p netip.Prefix) uint64 {
	free := p.Addr().BitLen() - p.Bits()
	if free > 20 {
		return MaxClients + 1
	}
	n := uint64(1) << free
	if n > 2 {
		n-- // the network address is skipped
	}
	return n
}

// sourceAddrs returns n distinct addresses of p: from its second address
// on (the first is the network address), or from the first when p holds at
// most two.
func sourceAddrs(p netip.Prefix, n int) ([]netip.Addr, error) {
	p = p.Masked()
	if prefixSize(p) < uint64(n) {
		return nil, configErr("source-cidr", "%v holds fewer than %d addresses", p, n)
	}
	a := p.Addr()
	if p.Addr().BitLen()-p.Bits() > 1 {
		a = a.Next()
	}
	out := make([]netip.Addr, 0, n)
	for range n {
		if !a.IsValid() || !p.Contains(a) {
			return nil, configErr("source-cidr", "%v ran out of addresses", p)
		}
		out = append(out, a)
		a = a.Next()
	}
	return out, nil
}

// resolveTargets checks that every target resolves, and to loopback only
// unless allowRemote. It returns whether all are on loopback (a loopback
// source cannot reach the others) and each target's addresses.
func resolveTargets(ctx context.Context, r Resolver, targets []string, allowRemote bool) (allLoopback bool, resolved [][]netip.Addr, err error) {
	if r == nil {
		r = net.DefaultResolver
	}
	cache := map[string][]netip.Addr{}
	allLoopback = true
	for _, t := range targets {
		host, _, _ := net.SplitHostPort(t)
		addrs, ok := cache[host]
		if !ok {
			if a, perr := netip.ParseAddr(host); perr == nil {
				addrs = []netip.Addr{a}
			} else {
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				addrs, err = r.LookupNetIP(lctx, "ip", host)
				cancel()
				if err != nil || len(addrs) == 0 {
					return false, nil, fmt.Errorf("%w: %q: %v", ErrResolve, t, err)
				}
			}
			cache[host] = addrs
		}
		for _, a := range addrs {
			if !a.Unmap().IsLoopback() {
				allLoopback = false
				if !allowRemote {
					return false, nil, fmt.Errorf("%w: %q resolves to %v (pass --allow-remote to load a host you own)",
						ErrRemoteTarget, t, a)
				}
			}
		}
		resolved = append(resolved, addrs)
	}
	return allLoopback, resolved, nil
}

// reachable reports whether a client bound to an address of src's family
// can dial one of addrs (the dialer only tries addresses of its local
// address's family).
func reachable(src netip.Prefix, addrs []netip.Addr) bool {
	for _, a := range addrs {
		if a.Unmap().Is4() == src.Addr().Unmap().Is4() {
			return true
		}
	}
	return false
}
