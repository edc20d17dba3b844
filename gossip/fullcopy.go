package gossip

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

var errSend = errors.New("gossip: send failed")

// streamCopy (worker) sends p a full copy of the database (para. 60, 103):
// the records in chunks of ChunkRecords over reliable sends, then an end
// message with the chunk count and the vector the records reflect at least
// (read before them, see DB.Snapshot). The receiver merges chunks as they
// come, in any order, and the vector only once it has them all.
func (n *Node) streamCopy(p *peer, now time.Time) {
	if ps := n.cfg.Persister; ps != nil {
		// The records reflect every event made so far: none may reach a
		// peer before it is on disk (see DB.Snapshot).
		if _, err := ps.Flush(); err != nil {
			n.stats.persistErrors.Add(1)
			n.stats.fullCopiesFailed.Add(1)
			n.logs.persist.Do(func() { n.log.Error().Err(err).Msg("persist before a full copy failed; not sending") })
			return
		}
	}
	id := rand.Uint64() >> 1
	hint := uint64(n.db.Len())
	var chunks, recs uint64
	// Snapshot hands over one batch per shard, often a handful of records:
	// they are gathered into chunks of ChunkRecords, each one message.
	buf := make([]stickydb.Record, 0, n.cfg.ChunkRecords)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if n.closing.Load() {
			return ErrClosed
		}
		if !n.sendReliableRetry(p, encodeChunk(&chunkMsg{Sender: n.self, Copy: id, Index: chunks, Hint: hint, Records: buf})) {
			return errSend
		}
		chunks++
		recs += uint64(len(buf))
		buf = buf[:0]
		return nil
	}
	meta, err := n.db.Snapshot(now, func(batch []stickydb.Record) error {
		for _, r := range batch {
			buf = append(buf, r) // a copy: the core reuses batch
			if len(buf) == n.cfg.ChunkRecords {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && !n.sendReliableRetry(p, encodeCopyEnd(n.self, id, chunks, recs, meta.Vector)) {
		err = errSend
	}
	if err != nil {
		n.stats.fullCopiesFailed.Add(1)
		n.logs.copy.Do(func() { n.log.Warn().Err(err).Str("peer", p.name).Uint64("chunks", chunks).Msg("full copy not sent") })
		return
	}
	n.stats.fullCopiesSent.Add(1)
	p.c.fullCopiesSent.Add(1)
	n.log.Info().Str("peer", p.name).Uint64("records", recs).Uint64("chunks", chunks).Msg("full copy sent")
}

// copySendTries: a chunk whose send fails (dial refused, connection reset)
// is tried again this many times in all, since one lost chunk voids the
// whole copy.
const copySendTries = 3

func (n *Node) sendReliableRetry(p *peer, msg []byte) bool {
	for range copySendTries {
		if n.sendReliable(p, msg) {
			return true
		}
		if n.closing.Load() || !p.live.Load() {
			return false
		}
	}
	return false
}

// onChunk (delegate) accepts chunks only from a peer we asked for a full
// copy, and hands the merge to a worker.
func (n *Node) onChunk(m chunkMsg) {
	if !n.copies.expected(m.Sender, n.now()) {
		n.stats.unsolicited.Add(1)
		n.senders.add(m.Sender, errUnsolicited)
		return
	}
	n.stats.chunksReceived.Add(1)
	n.life.CopyChunk()
	n.copies.progress(m.Sender, copyKey{m.Sender, m.Copy}, n.now(), n.cfg)
	n.enqueue(func() {
		now := n.now()
		if m.Index == 0 && n.db.Len() == 0 {
			// An empty node taking its first copy: size the table once
			// instead of growing it step by step, within the core's cap.
			n.db.Reserve(int(min(m.Hint, uint64(n.reserveCap()))))
		}
		if _, err := n.db.MergeRecords(m.Records, now); err != nil {
			// The rest of the chunk was merged; count the breach.
			n.rejected(m.Sender, err)
		}
		if v, ok := n.copies.chunkMerged(copyKey{m.Sender, m.Copy}, m.Index, now, n.cfg); ok {
			n.finishCopy(m.Sender, v, now)
		}
	})
}

// onCopyEnd (delegate) records the end of a copy; the vector is merged once
// every chunk is.
func (n *Node) onCopyEnd(m copyEndMsg) {
	if !n.copies.expected(m.Sender, n.now()) {
		n.stats.unsolicited.Add(1)
		n.senders.add(m.Sender, errUnsolicited)
		return
	}
	n.enqueue(func() {
		now := n.now()
		if v, ok := n.copies.ended(copyKey{m.Sender, m.Copy}, m, now, n.cfg); ok {
			n.finishCopy(m.Sender, v, now)
		}
	})
}

// reserveCap bounds what a peer's hint may make us allocate up front.
func (n *Node) reserveCap() int {
	if c := n.db.Config().MaxBindings; c > 0 {
		return c
	}
	return 1 << 22
}

func (n *Node) finishCopy(sender string, v stickydb.Vector, now time.Time) {
	n.db.MergeVector(v, sender, now)
	n.stats.fullCopiesReceived.Add(1)
	n.life.CopyMerged()
	n.log.Info().Str("peer", sender).Msg("full copy merged")
}

var errUnsolicited = errors.New("gossip: full copy nobody asked for")

// copyTable tracks the full copies we asked for and those being received.
type copyTable struct {
	mu     sync.Mutex
	expect map[string]time.Time // peer -> until when its copy is welcome
	m      map[copyKey]*copyIn
}

type copyKey struct {
	sender string
	id     uint64
}

type copyIn struct {
	deadline time.Time
	merged   map[uint64]struct{} // chunk indexes merged
	ended    bool
	total    uint64
	vector   stickydb.Vector
}

// maxCopyChunks bounds the chunk indexes remembered per copy (~4 billion
// records at the default chunk size would be far past any cap anyway).
const maxCopyChunks = 1 << 20

func (t *copyTable) init() {
	t.expect = map[string]time.Time{}
	t.m = map[copyKey]*copyIn{}
}

func (t *copyTable) expectFrom(peer string, until time.Time) {
	t.mu.Lock()
	t.expect[peer] = until
	t.mu.Unlock()
}

func (t *copyTable) expected(peer string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.expect[peer]
	return ok && now.Before(until)
}

// get returns the copy's state, creating it within Caps.MaxCopies.
func (t *copyTable) get(k copyKey, now time.Time, cfg Config) *copyIn {
	c := t.m[k]
	if c == nil {
		if len(t.m) >= cfg.Caps.MaxCopies {
			return nil
		}
		c = &copyIn{deadline: now.Add(cfg.CopyTimeout), merged: map[uint64]struct{}{}}
		t.m[k] = c
	}
	return c
}

// chunkMerged records a merged chunk and returns the vector when the copy
// is complete.
func (t *copyTable) chunkMerged(k copyKey, index uint64, now time.Time, cfg Config) (stickydb.Vector, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.get(k, now, cfg)
	if c == nil || len(c.merged) >= maxCopyChunks {
		return nil, false
	}
	c.merged[index] = struct{}{}
	return t.complete(k, c)
}

func (t *copyTable) ended(k copyKey, m copyEndMsg, now time.Time, cfg Config) (stickydb.Vector, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.get(k, now, cfg)
	if c == nil {
		return nil, false
	}
	c.ended, c.total, c.vector = true, m.Chunks, m.Vector
	return t.complete(k, c)
}

// complete: every chunk 0..total-1 merged and the end seen. The copy and
// the expectation are then closed (a later copy needs a new request).
func (t *copyTable) complete(k copyKey, c *copyIn) (stickydb.Vector, bool) {
	if !c.ended || uint64(len(c.merged)) < c.total {
		return nil, false
	}
	for i := uint64(0); i < c.total; i++ {
		if _, ok := c.merged[i]; !ok {
			return nil, false
		}
	}
	delete(t.m, k)
	delete(t.expect, k.sender)
	return c.vector, true
}

// expire drops copies past their deadline (their records stay merged; the
// core asks again) and expectations past theirs.
func (t *copyTable) expire(now time.Time, s *counters) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, c := range t.m {
		if now.After(c.deadline) {
			delete(t.m, k)
			s.copiesIncomplete.Add(1)
		}
	}
	for p, until := range t.expect {
		if now.After(until) {
			delete(t.expect, p)
		}
	}
}
