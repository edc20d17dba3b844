// Package gossip replicates a stickydb.DB across the fleet over
// hashicorp/memberlist: it is the core's I/O shell. The core decides what
// to send and what a message means; this package moves bytes, paces them,
// bounds them and counts them.
//
// # Model
//
// A Node owns one memberlist instance (membership, failure detection,
// encryption, transport) and these goroutines:
//
//   - the run loop: pushes own events, calls the core's Lifecycle.Tick
//     every PushInterval and applies the Ready it returns (a new epoch
//     through Config.NewEpoch, the requests: gaps, watchdog, start-up copy;
//     readiness for /readyz), sends heartbeats, follows membership
//     (DB.SetPeers) and sweeps expired bindings. The start-up decisions
//     (epoch check, which peer to ask for the copy and when, catch-up,
//     readiness) are the core's (stickydb/lifecycle.go). It alone moves the
//     per-peer push cursors;
//   - Workers (2) fed by a bounded queue: answering requests (DB.Answer,
//     streaming full copies) and merging incoming full-copy chunks. When
//     the queue is full, work is dropped and counted; the asker asks again;
//   - one sender per live peer for reliable (TCP) messages, so that a slow
//     or dead peer delays nobody else;
//   - the join loop, until the fleet has accepted the node.
//
// The delegate (delegate.go) is called on the transport's UDP reader for
// our own datagrams (packet.go), by memberlist on its handler goroutine for
// anything that reaches it, and on one goroutine per incoming TCP
// connection, concurrently and in any order. The delegate checks the
// header, decodes and calls the node; groups go to the receiver goroutine
// in arrival order, everything heavy goes to the workers.
//
// # Push
//
// Own events (DB.OwnEvents) go to every live peer directly, never through
// memberlist's transmit-limited broadcast queue, which does not reach every
// node. Each peer has a push budget, a token bucket of PushBurst (20)
// groups refilled at PushBurst per PushInterval (one a millisecond) or at
// the node's PushBudget (1,000 groups/s) shared by its live peers,
// whichever is slower (never below two per HeartbeatInterval): an
// event made while a peer's link is idle (a token left, no reliable
// message queued to it) leaves at once, on the Store wrapper's kick; events
// made while the link is busy (its budget spent, or a reliable message to
// it still queued) wait, and leave together as one group once it is free.
// A peer whose budget is spent is next free on the node's push round (a
// grid of the token period, with a phase from the node's name), so a busy
// node pushes to all its paced peers at once, once per period, and a new
// binding reaches them all after half a period on average.
// So a quiet fleet converges in well under a millisecond plus the wire, a
// busy one sends groups of many events, and a busy node sends about
// PushBudget messages a second whatever the fleet's size (at 50 nodes one
// group per peer every ~49 ms) instead of one per event per peer, whose
// cost grew as N². In durable mode a push waits for the
// persister's fsync, and events made meanwhile leave together with the
// next. A message that encodes to at most MaxUDPBytes (1,300) goes
// best-effort (UDP), a larger one reliably (TCP); groups are split
// into messages of at most Caps.MaxEvents events. Each peer has a cursor
// (the last own event pushed to it); peers at the same cursor share one
// encoding.
//
// Heartbeats: a peer that was sent nothing for the heartbeat spacing gets
// an empty group, so the core's watchdog stays quiet. Its numbers say how
// far our own events were pushed to that peer (flag groupStated), which
// the core takes as this origin's claim: a lost tail is noticed and asked
// for. The spacing
// is HeartbeatInterval up to 25 peers, then longer in proportion (at most
// 50 heartbeats a second per node by default; 1 s at 50 nodes), never
// past a quarter of the core's Watchdog (1.25 s; three in a row may be
// lost before the watchdog asks): a heartbeat to every peer twice a
// second was N² messages, and a 100-node fleet in one process spent both
// cores on them doing nothing.
//
// Vectors: pushed groups carry the vector at most every VectorInterval
// (past 10 peers, VectorInterval x peers/10, at most the heartbeat
// spacing, so the vector bytes a node sends grow as N rather than N²); a
// heartbeat carries it when it changed since the last one sent to that
// peer, or that peer showed a new epoch or came back, or every 10
// heartbeat spacings in case one was lost. A vector that would make the
// message too large for UDP (about 30 origins with real host names, 60
// with short ones) goes only at that refresh, by TCP: each reliable
// message is a connection of its own, and the peers learn our own
// position from the pushes and heartbeats anyway. What they then learn
// later is the others' positions (a hole only a vector shows) and ours for
// truncating our log.
//
// Loss, duplication and reordering are the core's business: Receive buffers
// a group that skips numbers, Tick asks the origin, then a third node whose
// vector covers the range (served from its change log table), then for a
// full copy. A hole only a peer's vector shows waits longer first (the
// core's VectorGapWait: vectors run ahead of pushes in flight), and a
// request whose hole is filling is given more time, not escalated. Anti-entropy: LocalState / MergeRemoteState carry the vector
// (never the database) in memberlist's periodic push/pull.
//
// # Persist, then send
//
// In durable mode Config.Persister is flushed before every push, and
// DB.MarkPersisted is called with what it returns; the core's OwnEvents,
// Answer and advertised vector stop at the persisted event, so no peer
// learns of an event the node's disk does not hold.
//
// # Full copies
//
// When the core says a request needs a full copy (the range is gone), a
// worker flushes the persister (durable mode: the records reflect every
// event made, none may leave before it is on disk), walks DB.Snapshot and sends the records in chunks of ChunkRecords
// over reliable sends, then an end message with the chunk count and the
// vector read before the records. The receiver merges chunks as they come
// (DB.MergeRecords; the merge rule makes order irrelevant) and, once it has
// merged every chunk and seen the end, the vector (DB.MergeVector). Chunks
// are accepted only from a peer this node sent a request to within
// CopyTimeout. Each peer may have FullCopyBurst copies, then one per
// FullCopyInterval; range requests are limited to RequestRate per peer.
// Refusals are counted.
//
// # Membership and security
//
// memberlist runs over this package's own transport (transport.go): UDP
// and a TCP connection per stream as memberlist's NetTransport, but it
// reads packets into one reused buffer instead of a fresh 64 KiB each
// (a third of the CPU of 25 in-process nodes under load went to those
// allocations and the GC they caused). Our own datagrams bypass memberlist
// on both ends (packet.go): they are written in memberlist's packet format
// (label header, AES-GCM version 1 with the label as additional data, CRC,
// user message) with one GCM built per node, where memberlist builds one
// per packet, sent straight to the transport, and read back by the
// transport's reader, which hands them to the delegate without
// memberlist's two goroutines and handoff queue. A stock memberlist reads
// them and writes the same (TestPacketCodecSpeaksMemberlist); anything
// else, and anything that fails the label, the key or the CRC, goes to
// memberlist, which judges it as before. At 50 nodes in one process this
// took 12-16 % off the CPU per node (25 nodes), and turned a fleet that
// fell behind at 5,000 new bindings/s into one that holds it
// (bench/SCALE.md). A push round's datagram is sealed once per packet
// format and written to every peer of the round with one sendmmsg
// (transport.WriteToAddresses, x/net/ipv4): half the push's cost at 50
// nodes. Datagrams are sealed and opened in pooled buffers, and received
// names and hosts are interned per node, so a message allocates little
// more than the events it carries.
//
// Seeds may be DNS names (seeds.go): each attempt resolves them and joins
// every address they resolve to, less the node's own; a name that
// resolves to this node only makes a ready fleet of one, and a node with
// no peers resolves the names again every JoinRetryMax.
//
// Join retries the seeds with backoff until one answers, then keeps
// joining until a peer has sent something: a node restarting under its old
// name from a new address is refused by peers that still hold the old one
// until memberlist's DeadNodeReclaimTime has passed. Failure detection is
// tuned for a LAN (probe every 500 ms). With Config.Key set, every packet
// and stream is encrypted with AES-GCM (by memberlist, and our datagrams
// by packet.go in the same format) and what fails to decrypt is refused
// (a datagram of ours that fails goes to memberlist, which refuses it);
// the Label (default "tether") is sent with every packet and
// stream and bound into the encryption, so a fleet with another key or
// label can neither join nor inject. A peer holding the key is trusted by
// memberlist; tether bounds what it accepts anyway (Caps, the core's caps,
// the rate limits, unsolicited copies) and counts every refusal against
// the sender the message names.
//
// # Wire format
//
// Every message (memberlist user message, or push/pull state) is:
//
//	byte 0    message type (msgType): 1 group, 2 request, 3 copy chunk,
//	          4 copy end, 5 state, 6 drain, 7 count query, 8 count
//	          answer, 9 ticket keys. Only append new types.
//	byte 1    wire version, 1. Other versions are dropped and counted.
//	byte 2..  the body: a sequence of msgpack values, not wrapped in an
//	          array, in the order given below.
//
// Notation: str is a msgpack string (fixstr, str8/16/32); uint a
// non-negative msgpack integer in its shortest form (positive fixint 0x00 to
// 0x7f is one byte; 0xcc..0xcf with 1, 2, 4, 8 bytes); int any msgpack
// integer in its shortest form (negative fixint 0xe0..0xff, int8..int64);
// nil is 0xc0; bin is a msgpack bin8 (0xc4, length, bytes).
//
// Shared parts:
//
//	sender  str, 1..255 bytes: the node that sent the message. First in
//	        every body, so even a message that fails to decode further is
//	        counted against the sender it names.
//	names   uint n, then n x str (1..255 bytes): the replica and node names
//	        the message uses, each once; referred to by index (0-based).
//	hosts   uint n, then n x str (1..253 bytes): the hosts, likewise.
//	vector  nil, or uint m, then m x (uint name index, uint p >= 1,
//	        p x (int epoch (unix ms, > 0), uint seq)); origins in ascending
//	        name order, epochs ascending.
//	ip      bin of 4 bytes (an IPv4 client) or 16 (IPv6).
//	rep     uint: 0 for no replica (a tombstone), else names[rep-1].
//
// 1 group (change group; an empty one is a heartbeat):
//
//	sender names hosts
//	flags    uint, bit 0: sent in answer to a request (not pushed);
//	         bit 1: stated, an empty group from its origin whose numbers
//	         say how far the origin's events were pushed to this peer
//	         (receivers take it as the origin's claim on a hole)
//	made     int, unix ms (sender's clock) when the oldest event of a
//	         pushed group was made (the first write after the previous
//	         push), 0 if unknown; the receiver's replication-lag measure
//	origin   uint, name index
//	epoch    int, the origin's epoch (unix ms)
//	from     uint >= 1, sequence number of the first event
//	n        uint, number of events (<= Caps.MaxEvents); to = from + n - 1
//	vector   the sender's vector, or nil
//	if n > 0:
//	  expbase int, the first event's expiry (unix ms)
//	  n x event: kind uint (1 bind, 2 refresh, 3 rebind, 4 delete),
//	             ip, host (uint index), rep, expiry (int delta from the
//	             previous event's expiry; the first from expbase),
//	             generation uint, origin (uint name index)
//
// Event i has seq from + i; it is a tombstone exactly when its kind is 4.
// Example, one bind pushed (72 bytes):
//
//	01 01                      group, version 1
//	a2 6e 31                   sender "n1"
//	02 a2 6e 31 a5 77 65 62    names: "n1", "web-a"
//	   2d 61
//	01 ab 61 70 70 2e 65 78    hosts: "app.example"
//	   61 6d 70 6c 65
//	00                         flags: pushed
//	cf 00 00 01 94 24 f8 61 03 made 1735787045123
//	00                         origin names[0] "n1"
//	cf 00 00 01 94 24 f8 60 88 epoch 1735787045000
//	07                         from 7
//	01                         one event
//	c0                         no vector
//	cf 00 00 01 94 25 13 d7 c8 expbase 1735788845000
//	01                         kind bind
//	c4 04 0a 00 00 01          ip 10.0.0.1
//	00                         host hosts[0]
//	02                         rep names[1] "web-a"
//	00                         expiry = expbase + 0
//	01                         generation 1
//	00                         origin names[0] "n1"
//
// In a batch each further bind of an IPv4 client costs about 12 bytes
// (kind 1, ip 6, host 1, rep 1, expiry delta 1-3, generation 1, origin 1;
// the core keeps expiries in whole seconds, so most deltas are 0).
//
// 2 request:
//
//	sender names hosts(empty)
//	flags    uint, bit 0: a full copy is asked for
//	reason   uint: 0 none, 1 gap, 2 third, 3 full, 4 watchdog
//	origins  nil (all origins) or uint n, then n x name index
//	known    vector: what the requester knows of those origins
//
// 3 copy chunk (records of a full copy):
//
//	sender
//	copy     uint, the sender's id of this copy
//	index    uint, chunk number from 0
//	hint     uint, the sender's binding count when the copy began (an empty
//	         receiver sizes its table once, capped by its MaxBindings)
//	names hosts
//	n        uint, number of records (<= Caps.MaxRecords)
//	if n > 0:
//	  expbase int
//	  n x record: ip, host, rep (0: tombstone), expiry delta int,
//	              generation uint, origin (uint name index)
//
// 4 copy end:
//
//	sender
//	copy     uint
//	chunks   uint, chunks sent (indexes 0..chunks-1)
//	records  uint, records sent
//	names hosts(empty)
//	vector   the vector the records reflect at least (never nil)
//
// 5 state (push/pull, LocalState):
//
//	sender names hosts(empty) vector
//
// 6 drain (drain registers, drain.go; sent reliably):
//
//	sender   str
//	count    uint, at most 4,096
//	count x  pool str, replica str, on bool (0xc2/0xc3), stamp int
//	         (unix ms of the writer), origin str (the writer)
//
// 7 count query (how many live bindings to a replica; count.go; sent
// best-effort, asked again when lost):
//
//	sender   str
//	id       uint, the asker's id of this query
//	replica  str, 1..255 bytes
//
// 8 count answer:
//
//	sender   str
//	id       uint, the query's id
//	live     uint, live bindings to the replica on the sender (its own
//	         expiries, tombstones excluded)
//
// 9 ticket keys (TLS session ticket keys, ticketkeys.go; sent reliably,
// and only when the gossip is encrypted: a node without a key drops them):
//
//	sender   str
//	count    uint, at most 16
//	count x  secret bin (exactly 32 bytes), created int (unix ms of the
//	         maker, at most one rotation period ahead of the receiver's
//	         clock), origin str (the maker)
//
// Decoding bounds every count and length before it allocates anything: by
// a cap (Caps) and by the bytes left (n elements take at least n x their
// least size), so a 5-byte header claiming 4 billion elements costs
// nothing. A message must be consumed exactly; trailing bytes are an error.
// A message that does not decode is dropped, logged (rate-limited) with the
// sender it names, and counted; nothing panics (FuzzDecode).
//
// memberlist adds to each message: 1 byte (user message), 5 (CRC), 29
// (AES-GCM: version, nonce, tag) and 2 + len(Label) (label), about 45
// bytes with the default label. Measured on loopback, a batch of 200 binds
// costs ~13 bytes per binding per peer on the wire, everything included
// (BenchmarkWireCost).
package gossip
