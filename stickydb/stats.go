package stickydb

import "sync/atomic"

// counters are the core's event counts. They are atomics so that the hot
// path and the metrics exporter never share a lock.
type counters struct {
	binds, rebinds, refreshes, deletes atomic.Uint64
	expiries, evictions, capBreaches   atomic.Uint64

	groupsApplied, groupsBuffered, groupsDiscarded atomic.Uint64
	groupsDuplicate, groupsStale                   atomic.Uint64
	eventsApplied, eventsExpired, eventsRejected   atomic.Uint64
	eventsDeferred, groupsDeferred, joinsAnnounced atomic.Uint64
	malformed, seqJumps, futureEpochs, tooMany     atomic.Uint64

	reqOrigin, reqThird, reqFull, reqFullJoined, reqWatchdog atomic.Uint64
	fullCopies                                               atomic.Uint64
	epochsAhead, gapsAbandoned, departed                     atomic.Uint64
	gapsRenewed, gapsExtended, gapsRetried, requestsHeld     atomic.Uint64
}

func (c *counters) count(k EventKind) {
	switch k {
	case KindBind:
		c.binds.Add(1)
	case KindRebind:
		c.rebinds.Add(1)
	case KindRefresh:
		c.refreshes.Add(1)
	case KindDelete:
		c.deletes.Add(1)
	}
}

// Stats is a snapshot of the core's counters, all monotonic since New.
type Stats struct {
	Binds, Rebinds, Refreshes, Deletes uint64 // own events made
	Expiries                           uint64 // live bindings removed by Sweep
	Evictions                          uint64 // bindings removed over MaxBindings
	CapBreaches                        uint64 // bindings refused over MaxBindingsPerOrigin

	GroupsApplied   uint64 // groups with at least one new event applied
	GroupsBuffered  uint64 // groups put in a reorder buffer
	GroupsDiscarded uint64 // buffered groups discarded (hole open too long, buffer full)
	GroupsDuplicate uint64 // groups that held nothing new
	GroupsStale     uint64 // groups of an epoch that is over
	EventsApplied   uint64
	EventsExpired   uint64 // received already expired, dropped (step 552)
	EventsRejected  uint64 // refused by a cap (expiry too far ahead, origin full)
	GroupsDeferred  uint64 // of an epoch begun ahead of this node's clock by up to MaxClockStep past MaxFutureEpoch: applied once the clock catches up
	JoinsAnnounced  uint64 // own events made to announce a merge's result that neither input said (announceJoins)
	EventsDeferred  uint64 // ahead of this node's clock by up to MaxClockStep past the bounds: merged once the clock catches up

	Malformed    uint64 // groups refused by ErrMalformed
	SeqJumps     uint64 // groups or vector entries refused by ErrSeqJump
	FutureEpochs uint64 // groups or vector entries refused by ErrFutureEpoch
	TooMany      uint64 // groups refused by ErrTooManyEvents

	RequestsOrigin   uint64 // range requests sent to the origin
	RequestsThird    uint64 // range requests sent to a third node
	RequestsFull     uint64 // full-copy requests
	FullJoined       uint64 // gaps left to a full copy already asked for another gap
	RequestsWatchdog uint64 // watchdog requests
	FullCopies       uint64 // full copies merged
	EpochsAhead      uint64 // new epochs started because a peer knew a later one of ours
	GapsAbandoned    uint64 // gaps given up: no live peer claims the missing events any more
	GapsRenewed      uint64 // gaps whose first missing events came while newer vectors showed more: waited for afresh, not escalated
	GapsExtended     uint64 // range requests not answered in RangeTimeout while the hole was filling: waited another RangeTimeout, not escalated
	GapsRetried      uint64 // gaps asked of the origin again, not as a full copy, as their first request was younger than FullCopyAfter
	RequestsHeld     uint64 // requests due but held back while the shell had a backlog of received groups (SetBehind)
	Departed         uint64 // origins forgotten: not live, no event for TTL + hold + skew
}

// Stats returns the counters.
func (db *DB) Stats() Stats {
	c := &db.stats
	return Stats{
		Binds: c.binds.Load(), Rebinds: c.rebinds.Load(), Refreshes: c.refreshes.Load(), Deletes: c.deletes.Load(),
		Expiries: c.expiries.Load(), Evictions: c.evictions.Load(), CapBreaches: c.capBreaches.Load(),
		GroupsApplied: c.groupsApplied.Load(), GroupsBuffered: c.groupsBuffered.Load(),
		GroupsDiscarded: c.groupsDiscarded.Load(), GroupsDuplicate: c.groupsDuplicate.Load(),
		GroupsStale: c.groupsStale.Load(), EventsApplied: c.eventsApplied.Load(),
		EventsExpired: c.eventsExpired.Load(), EventsRejected: c.eventsRejected.Load(), EventsDeferred: c.eventsDeferred.Load(), JoinsAnnounced: c.joinsAnnounced.Load(), GroupsDeferred: c.groupsDeferred.Load(),
		Malformed: c.malformed.Load(), SeqJumps: c.seqJumps.Load(), FutureEpochs: c.futureEpochs.Load(),
		TooMany: c.tooMany.Load(), RequestsOrigin: c.reqOrigin.Load(), RequestsThird: c.reqThird.Load(),
		RequestsFull: c.reqFull.Load(), FullJoined: c.reqFullJoined.Load(), RequestsWatchdog: c.reqWatchdog.Load(), FullCopies: c.fullCopies.Load(),
		EpochsAhead: c.epochsAhead.Load(), GapsAbandoned: c.gapsAbandoned.Load(), Departed: c.departed.Load(), GapsRenewed: c.gapsRenewed.Load(), GapsExtended: c.gapsExtended.Load(), GapsRetried: c.gapsRetried.Load(), RequestsHeld: c.requestsHeld.Load(),
	}
}
