package recovery

import "errors"

// Errors returned by the recovery package. Problems found on disk (a torn
// tail, a bad checksum, a corrupt snapshot) are not errors: Recover cuts or
// sets the bad part aside, warns, and goes on; they are listed in the
// Report. These errors are what stops a start-up or a write.
var (
	// ErrLocked: another process holds the data directory.
	ErrLocked = errors.New("recovery: data directory is locked by another process")
	// ErrWrongNode: the data directory belongs to another node name.
	ErrWrongNode = errors.New("recovery: data directory belongs to another node")
	// ErrNotDurable: the DB was made without stickydb.Config.Durable, so own
	// events could leave before they are on disk.
	ErrNotDurable = errors.New("recovery: stickydb.Config.Durable must be set")
	// ErrNotFresh: Recover needs a DB that holds nothing and made no event.
	ErrNotFresh = errors.New("recovery: DB is not fresh")
	// ErrNotRecovered: Flush, Snapshot or NewEpoch before Recover.
	ErrNotRecovered = errors.New("recovery: Recover has not run")
	// ErrRecovered: Recover called twice.
	ErrRecovered = errors.New("recovery: Recover already ran")
	// ErrPending: a snapshot was asked for before Recovery.Reconcile or
	// ReconcileLocal completed a long-outage recovery; it would replace a
	// good snapshot with a table that lacks the peer copy.
	ErrPending = errors.New("recovery: recovery not reconciled yet")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("recovery: store closed")
	// ErrFailed: a write or fsync of the log failed earlier. The log is in
	// an unknown state past its last good sync, so nothing more is written
	// and no own event is released to peers; restart the node (Recover cuts
	// whatever is torn). Retrying an fsync after a failure is not safe: the
	// kernel may have dropped the dirty pages and report success next time.
	ErrFailed = errors.New("recovery: log write failed earlier")
	// ErrReconciled: Reconcile or ReconcileLocal called a second time.
	ErrReconciled = errors.New("recovery: already reconciled")

	// errTorn and errCorrupt classify what a reader found; they end up in
	// Report.Problems, never returned to callers.
	errTorn    = errors.New("torn record")
	errCorrupt = errors.New("corrupt record")
)
