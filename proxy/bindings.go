package proxy

import (
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Bindings is what the proxy needs from the sticky database. *stickydb.DB
// implements it; cmd/tether may pass a wrapper that also hands new events
// to replication.
//
// Contract: every method is called from request goroutines, many at once,
// so implementations must be safe for concurrent use. They must not block
// on I/O or on other nodes: the proxy calls them on the request path
// (Touch on every request, the others on a miss, a rebind or once per
// refresh threshold). A wrapper that replicates should only note that
// events are pending and let another goroutine send them. The proxy keeps
// no slice or pointer it got from them. now is the proxy's clock
// (Config.Now).
type Bindings interface {
	// Touch looks k up; on a live binding it extends the local expiry and
	// returns the bound replica (hot path: must not allocate).
	Touch(k stickydb.Key, now time.Time) (stickydb.Hit, bool)
	// BindIfAbsent binds k to replica unless a live binding exists, which
	// it returns instead (then the proxy follows that binding).
	BindIfAbsent(k stickydb.Key, replica string, now time.Time) (stickydb.Binding, bool, error)
	// Rebind moves k from `from` to `to` with the next generation, only if
	// k is still bound to `from` (compare-and-swap); otherwise it returns
	// the binding k has.
	Rebind(k stickydb.Key, from, to string, now time.Time) (stickydb.Binding, bool, error)
	// Refresh announces a later expiry of k; called when Touch says
	// RefreshDue.
	Refresh(k stickydb.Key, now time.Time) (stickydb.Binding, error)
}

var _ Bindings = (*stickydb.DB)(nil)
