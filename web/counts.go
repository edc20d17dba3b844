package web

import (
	"sync"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// replicaCounts caches what takes a walk of the whole table: the live
// bindings per replica (the overview, the backends page and every scrape
// need them) and the digest the pages show. One walk of 1M bindings costs
// tens of ms, and a page refreshing every 2 s must not pay it each time.
// Concurrent callers during a walk wait for it rather than start their own.
// The JSON API's /vector computes its digest fresh: tests compare nodes
// with it.
type replicaCounts struct {
	core Core
	ttl  time.Duration
	now  func() time.Time

	mu     sync.Mutex
	at     time.Time
	counts map[string]int

	dmu      sync.Mutex
	dAt      time.Time
	dMargin  time.Duration
	dCount   int
	dSum     uint64
	dPresent bool
}

// fresh says whether a value computed at `at` may still be used at now.
func (c *replicaCounts) fresh(at, now time.Time) bool {
	return now.Sub(at) < c.ttl && !now.Before(at)
}

// get returns the counts; the map is shared and must not be changed.
func (c *replicaCounts) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.counts != nil && c.fresh(c.at, now) {
		return c.counts
	}
	counts := map[string]int{}
	_, _ = c.core.Snapshot(now, func(recs []stickydb.Record) error {
		for _, r := range recs {
			if !r.Binding.Deleted {
				counts[r.Binding.Replica]++
			}
		}
		return nil
	})
	c.counts, c.at = counts, now
	return counts
}

// digest returns the digest at most ttl old, and when it was computed.
func (c *replicaCounts) digest(margin time.Duration) (count int, sum uint64, at time.Time) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	now := c.now()
	if !c.dPresent || c.dMargin != margin || !c.fresh(c.dAt, now) {
		c.dCount, c.dSum = c.core.Digest(now, margin)
		c.dAt, c.dMargin, c.dPresent = now, margin, true
	}
	return c.dCount, c.dSum, c.dAt
}

// invalidate drops the cached values: an operator's change shows at once.
func (c *replicaCounts) invalidate() {
	c.mu.Lock()
	c.counts = nil
	c.mu.Unlock()
	c.dmu.Lock()
	c.dPresent = false
	c.dmu.Unlock()
}
