package gossip

// Persister makes own events durable before they leave the node (persist,
// then send; DESIGN.md "Recovery", raft's doc.go step 1). Package recovery
// implements it (recovery.Store); in epoch mode (no data dir)
// Config.Persister is nil.
//
// Flush writes every own event not yet on disk (DB.Unpersisted), fsyncs,
// marks them persisted with DB.MarkPersisted(epoch, seq) (only the
// persister knows which epoch it wrote), and returns the last own event
// number of the current epoch now on disk, for logs. The DB then releases
// to OwnEvents, Answer and the advertised vector no more than was marked.
//
// Who calls it: the push loop, before every push round (at most PushBurst
// per PushInterval while events keep coming; while an fsync runs, new
// events wait and go with the next round), and also when there turns out to
// be nothing to push: it must be cheap when nothing is unpersisted. A
// worker calls it too before streaming a full copy, so calls may overlap:
// Flush serialises itself (recovery.Store does, with a mutex). It may
// block for an fsync, which delays the push by as much.
//
// An error skips the push (nothing unpersisted may leave) or the full
// copy, is counted (Stats.PersistErrors) and logged, and the push is tried
// again one PushInterval later.
type Persister interface {
	Flush() (persisted uint64, err error)
}
