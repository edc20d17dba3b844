package web

import (
	"sync"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// replicaCounts counts live bindings per replica with one walk of the
// table, reused for ttl: the overview, the backends page and every scrape
// need the counts, and one walk of 1M bindings costs tens of ms. Concurrent
// callers during a walk wait for it rather than start their own.
type replicaCounts struct {
	core Core
	ttl  time.Duration
	now  func() time.Time

	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

func (c *replicaCounts) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.counts != nil && now.Sub(c.at) < c.ttl && !now.Before(c.at) {
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
