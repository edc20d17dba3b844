package gossip

// Persister makes own events durable before they leave the node (persist,
// then send; DESIGN.md "Recovery", raft's doc.go step 1). Package recovery
// implements it; in epoch mode (no data dir) Config.Persister is nil.
//
// Flush writes every own event not yet on disk (DB.Unpersisted), fsyncs,
// marks them persisted (DB.MarkPersisted(epoch, seq): only the persister
// knows which epoch it wrote), and returns the last own event number of
// the current epoch now on disk (for logs). The node then pushes; the DB
// releases no more than what was marked. recovery.Store implements it. Flush is called on the node's push goroutine
// before every push, so at most once per PushInterval while events keep
// coming, and also when there turns out to be nothing to push, so it must
// be cheap when nothing is unpersisted; it may block for an fsync, which
// delays pushes by as much. It is never called concurrently with itself. An error skips the push (nothing
// unpersisted may leave), is counted and logged, and the push is retried
// one PushInterval later.
type Persister interface {
	Flush() (persisted uint64, err error)
}
