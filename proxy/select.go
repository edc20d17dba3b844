package proxy

import (
	"context"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// choose returns the replica for k in pool pl (Fig. 13) and the outcome
// for metrics; nil when no replica is usable.
//
//   - A live binding to a healthy replica of the pool is followed, even if
//     the replica is draining (drain keeps bound clients), and extended.
//   - A binding to a replica that is down or no longer in the pool moves
//     with Rebind (compare-and-swap, generation + 1) to the rendezvous pick.
//   - Without a binding, the rendezvous pick is bound with BindIfAbsent; if
//     another request bound k meanwhile, that binding is followed.
func (p *Proxy) choose(ctx context.Context, pl *pool, k stickydb.Key, now time.Time) (*backend, int) {
	if p.catchUp != nil && !p.caughtUp.Load() {
		// Not caught up with the fleet yet: its binding of k may be on the
		// way, or newer than the one restored from disk (see
		// Config.CatchUp). Wait a little first.
		wctx, cancel := context.WithTimeout(ctx, p.catchUpWait)
		if p.catchUp(wctx) == nil {
			p.caughtUp.Store(true)
		}
		cancel()
		now = p.now()
	}
	if hit, ok := p.db.Touch(k, now); ok {
		b := pl.byName[hit.Replica]
		if b != nil && b.healthy.Load() {
			if hit.RefreshDue {
				if _, err := p.db.Refresh(k, now); err != nil {
					p.log.Debug().Err(err).Stringer("key", k).Msg("refresh refused")
				}
			}
			return b, outHit
		}
		out := outRebindUnhealthy
		if b == nil {
			out = outRebindRemoved
		}
		return p.rebind(pl, k, hit.Replica, now, out)
	}
	target := pl.pick(k)
	if target == nil {
		return nil, outNone
	}
	bound, _, err := p.db.BindIfAbsent(k, target.name, now)
	if err != nil {
		// The store refused (a cap): serve the pick unbound; it is the same
		// pick next time as long as the pool does not change.
		p.log.Debug().Err(err).Stringer("key", k).Msg("bind refused")
		return target, outBind
	}
	if bound.Replica == target.name {
		return target, outBind
	}
	if b := pl.byName[bound.Replica]; b != nil && b.healthy.Load() {
		return b, outHit
	}
	return p.rebind(pl, k, bound.Replica, now, outRebindUnhealthy)
}

// rebind moves k away from replica `from` to the rendezvous pick among the
// usable replicas. If another request moved k first, its choice is
// followed, so a client moves once however many of its requests saw the
// dead replica.
func (p *Proxy) rebind(pl *pool, k stickydb.Key, from string, now time.Time, out int) (*backend, int) {
	target := pl.pick(k)
	if target == nil {
		return nil, outNone
	}
	bound, _, err := p.db.Rebind(k, from, target.name, now)
	if err != nil {
		p.log.Debug().Err(err).Stringer("key", k).Msg("rebind refused")
		return target, out
	}
	if bound.Replica == target.name {
		return target, out
	}
	if b := pl.byName[bound.Replica]; b != nil && b.healthy.Load() {
		return b, outHit
	}
	return target, out
}
