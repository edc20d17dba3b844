// Package recovery is the disk side of tether's crash recovery (reference
// text Fig. 11): a write-ahead log of the node's own events, periodic
// snapshots of its database and version vector, and the start-up that
// reads them back into a stickydb.DB. The peer side (epoch mode, Fig. 12,
// and copying a database from a peer) lives with gossip; this package
// leaves it explicit hooks (Mode, Recovery.Reconcile, Store.NewEpoch).
//
// # Model
//
// A node's own events are what only it knows first. With
// stickydb.Config.Durable set, the DB lets none of them leave (OwnEvents,
// Answer, the advertised vector) before the shell reports them persisted
// (MarkPersisted). Store.Flush appends what stickydb.DB.Unpersisted
// returns, fsyncs, then marks it persisted. So no peer ever knows more of
// this node's events than its disk does (reference text para. 88), and
// the node never numbers two different events alike after a restart.
// Everything other origins made is not logged: it lives in the snapshots,
// and what happened since the last snapshot is pulled from peers.
//
// Persist, then send (CONVENTIONS 2): gossip calls Flush before every push
// of own events. Run also flushes every FlushEvents events or
// FlushInterval, whichever comes first, so a node that sends nothing loses
// at most that much in a crash, and every SnapshotInterval it writes a
// snapshot (para. 89) and deletes the log segments the snapshot covers.
//
// At start-up, Recover picks one of the reference text's two ways back
// (step 655): a short outage (newest record on disk younger than
// ShortOutage) loads the snapshot and replays the log (step 660), then the
// node pulls the rest from its peers; a long one skips the mostly expired
// snapshot, takes the database and vector from a peer (step 662) and then
// reconciles with the own log (step 665). See Mode.
//
// # Using it
//
// At start, with a DB made by stickydb.New with Durable set:
//
//	st, err := recovery.Open(cfg)            // locks cfg.Dir
//	rec, err := st.Recover(db, time.Now())   // reads the directory into db
//	switch rec.Mode {
//	case recovery.ModeShort:                 // done; anti-entropy pulls the rest
//	case recovery.ModeLong, recovery.ModeEmpty:
//		// full copy from a peer: db.MergeRecords(batch, now) for every
//		// batch, then db.MergeVector(copy.Vector, peer, now), then
//		rec.Reconcile(time.Now())
//		// or, when no peer answers within the readiness bound:
//		rec.ReconcileLocal(time.Now())
//	}
//	go st.Run(ctx)
//
// ModeEmpty (nothing on disk) is epoch mode with a disk: once a peer shows
// the newest own epoch it knows (db.HighestOwnEpoch), start a later one
// with st.NewEpoch, never db.NewEpoch (see Store.NewEpoch).
//
// Before every push of own events: `if _, err := st.Flush(); err != nil
// { don't send }`, then db.OwnEvents as usual. At shutdown: cancel Run's
// context, wait for Run to return, st.Close().
//
// # Files
//
// One directory per node:
//
//	LOCK                     flock(2)ed by the process using the directory
//	0000000000000003.wal     log segment 3 (index in 16 hex digits)
//	0000000000000003.snap    snapshot 3: replay log segments 3, 4, ... after it
//	*.tmp                    a file being written; Recover removes it
//	*.<unix ms>.broken       bytes Recover cut or set aside; never read again
//
// Snapshot j and log segment j are made together: the log is flushed, a
// new segment j started, then the database is walked into j.snap. Every
// own event in segments before j was in the DB before the walk began, so
// j.snap plus segments j, j+1, ... hold all. KeepSnapshots snapshots are
// kept, and the segments from the oldest of them on, so a bad newest
// snapshot falls back to the one before it plus more log.
//
// # Frames
//
// Every file is an 8-byte magic followed by frames. A frame is
//
//	offset  size  field
//	0       4     length n of the body, uint32 little-endian; 1 <= n <= 4096
//	              in a log, <= 16 MiB in a snapshot
//	4       4     CRC-32C (Castagnoli) over bytes 0..3 (the length) followed
//	              by the body, uint32 little-endian
//	8       n     body: one msgpack array whose first element is the type
//
// The checksum covers the length, so a flipped length bit is caught even
// when the length it makes still fits the file. A reader stops at the first
// frame that is cut short (a torn write), has a length of 0 (a zero-filled
// tail) or over the limit, or fails its checksum: that frame and all after
// it are discarded. Record types, the first element of every body, are on
// disk: only append.
//
//	1   segment header    2   event    3   mark
//	16  snapshot chunk    17  snapshot trailer
//
// Integers are msgpack integers in their shortest form (positive or
// negative fixint, uint8..uint64, int8..int64); a reader accepts any
// integer encoding. Text is str, addresses are bin. A reader accepts an
// array longer than it knows and skips the extra elements, so a later
// version may append fields; anything else new needs a new magic.
//
// # Log segment
//
//	offset 0: magic "TETHWAL1" (the 1 is the format version)
//	offset 8: frame, segment header
//	          [1, node str, index uint, epoch int, base uint, created int]
//	then:     frames, each an event or a mark
//	event:    [2, epoch int, seq uint, kind uint, client bin, host str,
//	           replica str|nil, expiry int, generation uint, origin str|nil,
//	           deleted bool]
//	mark:     [3, time int, reason uint]
//
// The header names the node (a directory of another node is refused),
// repeats the file's index, and says where the own numbering stands when
// the segment begins: events (epoch, 1..base) are accounted for before it.
// Every event in a segment is of the header's epoch, numbered base+1,
// base+2, ... without a gap. client is 4 bytes for IPv4, 16 for IPv6;
// host is the lower-case Host; kind is stickydb.EventKind (1 bind,
// 2 refresh, 3 rebind, 4 delete); replica is nil exactly when deleted;
// origin is nil when it is the header's node (every kind but a refresh of
// another node's binding); expiry is unix ms; created and time are unix
// ms. A mark says the node was up at time: reason 1 ends every flush that
// wrote events, and Run writes one every FlushInterval when no flush did
// (Recover measures the outage from the newest record); reason 2 is
// written by Close after the last flush.
//
// Segment j+1 starts where segment j ends: same epoch and base equal to
// j's last event, or a later epoch (an epoch change always starts a
// segment). A base beyond the last event is a jump the DB made without
// events the log could hold (its own log overran its cap before a flush,
// or a peer showed a higher number of our epoch); those numbers are spent.
// A segment is created whole (written as *.tmp, fsynced, renamed, the
// directory fsynced), and appended to by Flush: the events and a mark
// with one write(2) (one per MiB for a large backlog), one fsync(2), then
// MarkPersisted. Old segments are never appended to again after a
// restart.
//
// An event frame, 58 bytes: seq 42 of epoch 1772366400000 binds 192.0.2.7
// at shop.example to web-1, generation 1, expiry 1772368200000, made by
// the header's node:
//
//	32 00 00 00                  length 50
//	fc 36 ad 7d                  CRC-32C
//	9b                           array of 11
//	02                           type 2, event
//	cf 00 00 01 9c a9 45 0a 00   epoch (uint64)
//	2a                           seq 42
//	01                           kind 1, bind
//	c4 04 c0 00 02 07            client, bin 4 bytes
//	ac 73 68 6f 70 ...           host, str 12 "shop.example"
//	a5 77 65 62 2d 31            replica "web-1"
//	cf 00 00 01 9c a9 60 81 40   expiry
//	01                           generation 1
//	c0                           origin nil: the header's node
//	c2                           deleted false
//
// # Snapshot
//
//	offset 0: magic "TETHSNP1"
//	then:     frames, each a chunk
//	chunk:    [16, base int, names [str, ...], records [record, ...]]
//	record:   [client bin, host uint, replica uint|nil, expiry int,
//	           generation uint, origin uint, deleted bool]
//	last:     frame, trailer
//	          [17, node str, index uint, epoch int, seq uint, taken int,
//	           count uint, chunks uint, vector map]
//	vector:   {origin str: [[epoch int, seq uint], ...], ...}
//
// A chunk holds up to ChunkRecords records (and at most about 1 MiB) and
// its own name table: host, replica and origin are indexes into names, so
// a million bindings over a few hosts and replicas take about 18 bytes
// each, and chunks decode independently (in parallel at start-up). expiry
// is stored minus base (the snapshot time). replica is nil exactly when
// deleted. The trailer holds stickydb.SnapshotMeta: the own position
// (epoch, seq) and the vector read before the walk, the time taken, and
// the number of records and chunks before it, so a reader knows it saw
// them all. A snapshot is written through a 1 MiB buffer to j.snap.tmp,
// fsynced, renamed to j.snap, and the directory fsynced.
//
// A snapshot is loaded in two passes: the first checks every frame's
// checksum, the counts and the trailer (a read and a hardware CRC of the
// file); only a snapshot that passes whole is loaded, because its vector
// claims every event its records reflect, and a vector restored without
// all its records would keep peers from ever sending them. The second
// pass decodes chunks and merges them with db.MergeRecords from
// LoadWorkers goroutines; the merge rule is a join-semilattice, so order
// does not matter.
//
// # Damage
//
// Recover never panics on what it reads and never fails a start-up over
// damage; an error means a start would be unsafe (another node's
// directory, an I/O error reading it, a DB that is not fresh). What it
// does, each with a warning in the log and a line in Report.Problems:
//
//   - a *.tmp file: removed (a write that never finished; nothing relied
//     on it);
//   - a snapshot with any bad frame, a wrong count, no trailer, or empty:
//     set aside, the previous snapshot tried; with none left, the own log is
//     replayed and the node takes the database from a peer (ModeLong);
//   - a torn or corrupt log frame: the segment is cut there, the bytes
//     from the cut on copied to a .broken file next to it (fsynced before
//     the truncation), every later segment set aside whole. Events after a
//     hole are not applied: the own vector would claim events the node does
//     not hold, and peers would never send them back. The new segment takes
//     the index where the damage began, so the chain stays whole;
//   - a missing or empty segment, a segment whose header goes back: cut
//     there in the same way.
//
// # Why a new epoch after damage
//
// When anything was lost or damaged, Recover restores the position it
// could read and then starts a new epoch, max(now, old epoch + 1) in unix
// ms (db.NewEpoch), before the node makes a single event:
//
//   - No event number is ever reused for different content. The bytes lost
//     may have held events that were flushed and sent (a disk that lost
//     written data, a flipped bit in the middle of the log). If the node
//     went on numbering the old epoch from where its log now ends, its
//     next event would reuse a number peers already hold with other
//     content; they would drop it as a duplicate and the fleet would
//     diverge silently. (stickydb raises the number when it hears of a
//     higher one from a peer, but only after hearing it.)
//   - The lost events come back. In a new epoch the old one is like any
//     other origin's: the node's vector says it knows the old epoch up to
//     the cut, peers' vectors show more, and the core asks a peer that
//     holds them (Fig. 12 step 730).
//   - A torn tail after a crash in the middle of a write holds only events
//     that were never fsynced, so never sent, and a new epoch would not be
//     needed; it costs a second vector pair for TTL + skew, so the two
//     cases are not told apart. old epoch + 1 keeps the epoch growing even
//     if the clock went back.
//
// # Concurrency
//
// A Store is safe for concurrent use. Flush, NewEpoch, Close and the
// start of a snapshot share one mutex (flushes queue and the first one
// writes for all); the walk of a snapshot holds none, so flushes go on
// during it. Run starts at most one goroutine at a time, for a snapshot,
// and waits for it before it returns. A write or fsync error stops the log
// for good (ErrFailed): after a failed fsync the kernel may have dropped
// the dirty pages, so retrying could report success for data that is not
// on disk.
package recovery
