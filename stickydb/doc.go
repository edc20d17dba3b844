// Package stickydb is tether's core: the sticky database of one node and
// the replication method that keeps every node's database the same, after
// "Providing sticky bindings using version vectors" (Liskov, Bornstein).
//
// # Model
//
// A Key is (client IP, Host). A Binding maps a key to a replica, with an
// announced expiry, a generation and the node that made it (Fig. 3). Each
// node numbers its own changes as Events in a change log, gap-free per
// (node, epoch) (Fig. 4). A Vector records, per origin node and epoch, the
// last event number known (Fig. 5, 12). Groups of a node's events travel to
// the others with the sender's vector; the receiver applies the part in
// sequence, buffers a group that skips numbers, and asks for what is
// missing: of the origin, then of a third node that caches the origin's
// events in its change log table (Fig. 10), then as a full copy. The version
// vector table (Fig. 8) holds each peer's last vector: it drives
// anti-entropy, third-party requests and truncation of the own log.
//
// Conflicting bindings are settled by Merge, a join-semilattice: the higher
// generation wins; in one generation, the replica with the higher rendezvous
// score for the key (the same function the proxy picks replicas with), with
// the later expiry. Every order of delivery gives the same database.
//
// # A pure state machine, driven from outside
//
// Like etcd's raft package, the DB starts no goroutine, opens no socket or
// file and never reads the clock. Every call that depends on time takes
// `now`; everything that needs I/O comes back as a value:
//
//   - own events (BindIfAbsent, Rebind, Delete, Refresh) go into the own log;
//     the shell reads them with Unpersisted (to write the log) and OwnEvents
//     (to push them to peers);
//   - Receive takes a peer's Group; Tick returns the Requests to send
//     (gaps, watchdog); Answer turns a peer's Request into Groups, or says a
//     full copy is needed, which Snapshot walks and MergeRecords + MergeVector
//     take in;
//   - Snapshot, RestoreOwn and ReplayOwn are the disk side of recovery;
//     NewEpoch and HighestOwnEpoch the epoch side.
//
// # Lifecycle
//
// A node's start-up is core state too (lifecycle.go), the way etcd's raft
// returns a Ready: the shell reports what happened (Lifecycle.Joined,
// CopyChunk, CopyMerged; peers and their vectors reach the DB as always)
// and calls Lifecycle.Tick(now) on its loop, which calls DB.Tick and
// returns one Ready value: an epoch to start and, in Durable mode, persist
// first (NewEpoch: a peer knows a later epoch of ours), the requests to
// send (the DB's gap and watchdog requests and the start-up full copy: one
// live peer at a time, the next after LifeConfig.CopyWait of silence), and
// whether the node is ready, with Why. Ready means the node's vector
// covers what every live peer's vector showed when first seen (an epoch
// that is over, or an origin forgotten since, counts as covered), with a
// peer whose vector is still unknown (or that came up meanwhile) holding
// it back, and with configured seeds not up yet (SeedsMissing) holding it
// back SeedWait at most; or "alone" (no peer, no seed), or "timeout"
// after CatchUpTimeout. With LifeConfig.Reconcile (a disk recovery to
// complete), caught up first asks the shell to reconcile (Ready.Reconcile)
// and is ready only once the shell says Reconciled.
//
// The fleet's drain registers (drains.go) are core state as well: a
// last-writer-wins register per replica (Drains.Set, Merge, and ResendDue
// for the shell's periodic whole-set resend).
//
// # Persist, then send
//
// With Config.Durable set, the shell must write own events to its
// write-ahead log, fsync it and call MarkPersisted before they may leave:
// OwnEvents, Answer and the vector this node advertises all stop at the
// persisted event. So no peer ever knows more of a node's own events than
// the node's disk does, and a node restarted from disk never numbers two
// different events alike (reference text para. 88).
//
// # Concurrency
//
// The DB is safe for concurrent use by thousands of request goroutines. The
// binding table is split in shards, each with its own mutex: a hit (Touch)
// locks one shard, takes no global lock and allocates nothing. Binds and
// received groups also take the replication mutex, after the shard lock is
// released (binds) or before shard locks are taken (receive), so the two
// never wait on each other in a cycle. Because Merge is order-independent,
// two local changes of one key may enter the own log in either order.
//
// # Memory
//
// Neither the binding table nor the change logs hold pointers, so the
// garbage collector never scans them, however large they grow: a shard's
// map is keyed by (client address, the shard's id for the host), with a
// dictionary of its hosts counted per key (shard.go), and a log keeps its
// events as logEvent (names as ids, the host inline up to 45 bytes;
// changelog.go). A binding costs 67–85 B of heap from 1M to 10M.
package stickydb
