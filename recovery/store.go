package recovery

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/stickydb"
)

const (
	// flushBatch is how many events one Unpersisted call returns; a flush
	// takes as many batches as wait, up to maxFlushRounds.
	flushBatch     = 1000
	maxFlushRounds = 1000
	// writeChunk bounds the frames a flush builds before it writes them.
	writeChunk = 1 << 20
)

// Store is one node's data directory: the write-ahead log of its own
// events and its snapshots. Open it, Recover into a fresh DB, then call
// Flush before every send, Run in the background and Close at shutdown
// (see doc.go for the order).
//
// All methods are safe for concurrent use.
type Store struct {
	cfg  Config
	log  zerolog.Logger
	lock *os.File

	// snapMu serialises snapshots and epoch changes; it is taken before mu.
	snapMu sync.Mutex

	mu       sync.Mutex // the log writer and the fields below
	db       *stickydb.DB
	w        *segWriter
	fb       *frameBuf
	epoch    int64  // epoch of the active segment
	written  uint64 // last own event in the log; on disk once the Flush that wrote it returns
	maxIndex uint64 // highest segment or snapshot index seen or made
	err      error  // sticky: wraps ErrFailed
	closed   bool
	pending  bool      // a long-outage recovery awaits Reconcile: no snapshots until then
	lastSnap time.Time // Taken of the newest snapshot on disk
	lastMark time.Time // when the last mark was written (or Recover ran)

	stats counters
}

// Open opens (creating it if need be) and locks the data directory. It
// reads nothing yet: Recover does.
func Open(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("recovery: data directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(cfg.Dir, lockName))
	if err != nil {
		return nil, err
	}
	log := zerolog.Nop()
	if cfg.Logger != nil {
		log = *cfg.Logger
	}
	return &Store{cfg: cfg, log: log.With().Str("component", "recovery").Logger(), lock: lock, fb: newFrameBuf()}, nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.cfg.Dir }

// Flush appends every own event the DB made since the last flush to the
// log, fsyncs it, and tells the DB they may be sent (MarkPersisted). It
// returns the last own event number of the current epoch that is on disk.
//
// Call it before every push of own events to peers: stickydb, with
// Config.Durable, releases nothing that was not marked persisted, so
// OwnEvents after Flush returns at most what is on disk. When nothing is
// waiting it takes two uncontended mutexes and does no I/O. Concurrent
// callers queue on one mutex; the first writes and syncs what all of them
// wait for (a natural group commit).
//
// After a write or fsync error, Flush returns ErrFailed for good and the
// DB releases no further own event (see ErrFailed).
func (s *Store) Flush() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *Store) usable() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.err != nil:
		return s.err
	case s.w == nil:
		return ErrNotRecovered
	}
	return nil
}

func (s *Store) flushLocked() (uint64, error) {
	if err := s.usable(); err != nil {
		return s.written, err
	}
	if e, seq := s.db.Position(); e == s.epoch && seq == s.written {
		return s.written, nil
	}
	node := s.db.Node()
	wrote := 0
	s.fb.reset()
	for range maxFlushRounds {
		g := s.db.Unpersisted(s.written, flushBatch)
		switch {
		case g.Epoch != s.epoch:
			// An epoch began (Store.NewEpoch, or a caller that went round
			// it): its events go into a segment of their own.
			if err := s.writeLocked(); err != nil {
				return s.fail(err)
			}
			if err := s.rollLocked(g.Epoch, s.baseFor(g.Epoch)); err != nil {
				return s.fail(err)
			}
			continue
		case g.From > s.written+1:
			// The DB no longer holds s.written+1: it starts the group at the
			// first event it holds.
			if err := s.writeLocked(); err != nil {
				return s.fail(err)
			}
			if err := s.holeLocked(g.Epoch); err != nil {
				return s.fail(err)
			}
			continue
		}
		if len(g.Events) == 0 {
			break
		}
		for i := range g.Events {
			s.fb.event(node, g.Epoch, &g.Events[i])
		}
		s.stats.events.Add(uint64(len(g.Events)))
		s.written = g.To
		wrote += len(g.Events)
		if s.fb.buf.Len() >= writeChunk {
			if err := s.writeLocked(); err != nil {
				return s.fail(err)
			}
		}
		if len(g.Events) < flushBatch {
			break
		}
	}
	if wrote > 0 {
		// The flush's time: Recover measures the outage from the newest
		// record, to the flush.
		s.lastMark = s.cfg.Now()
		s.fb.mark(s.lastMark.UnixMilli(), markAlive)
	}
	if err := s.writeLocked(); err != nil {
		return s.fail(err)
	}
	if err := s.syncLocked(); err != nil {
		return s.fail(err)
	}
	if wrote > 0 {
		s.stats.flushes.Add(1)
	}
	s.db.MarkPersisted(s.epoch, s.written)
	s.stats.persisted.Store(s.written)
	if s.w.size >= s.cfg.SegmentBytes {
		if err := s.rollLocked(s.epoch, s.written); err != nil {
			return s.fail(err)
		}
	}
	return s.written, nil
}

// writeLocked writes the frames built up in fb with one write(2).
func (s *Store) writeLocked() error {
	if s.fb.buf.Len() == 0 {
		return nil
	}
	err := s.w.write(s.fb.bytes())
	s.stats.bytes.Add(uint64(s.fb.buf.Len()))
	s.fb.reset()
	return err
}

func (s *Store) syncLocked() error {
	if !s.w.dirty {
		return nil
	}
	s.stats.syncs.Add(1)
	return s.w.sync()
}

// baseFor is where the own numbering of epoch stands before the first
// event the DB still holds of it: everything up to it is either in the log
// already or gone from the DB unwritten.
func (s *Store) baseFor(epoch int64) uint64 {
	if logs := s.db.Logs(); len(logs) > 0 && logs[0].Epoch == epoch && logs[0].Last >= logs[0].First && logs[0].First > 0 {
		return logs[0].First - 1
	}
	if e, seq := s.db.Position(); e == epoch {
		return seq
	}
	return 0
}

// holeLocked handles own events the DB no longer holds though the log
// never got them: the own log overran its cap between two flushes, or the
// DB jumped its numbering because a peer knew more of our epoch than we
// did. Those numbers are spent; a new segment records the jump, so a
// restart never reuses them.
func (s *Store) holeLocked(epoch int64) error {
	base := s.baseFor(epoch)
	if base <= s.written {
		return fmt.Errorf("recovery: own events after %d of epoch %d are neither held nor missing", s.written, epoch)
	}
	s.log.Warn().Int64("epoch", epoch).Uint64("from", s.written+1).Uint64("to", base).
		Msg("recovery: own events left the DB before they reached the log; the log records the jump")
	s.stats.holes.Add(1)
	if err := s.syncLocked(); err != nil {
		return err
	}
	return s.rollLocked(epoch, base)
}

// rollLocked closes the active segment (fsyncing it) and starts the next,
// whose header says the own numbering stands at (epoch, base).
func (s *Store) rollLocked(epoch int64, base uint64) error {
	if s.w != nil {
		err := s.w.close()
		s.w = nil
		if err != nil {
			return err
		}
	}
	s.maxIndex++
	w, err := createSegment(s.cfg.Dir, segHeader{Node: s.db.Node(), Index: s.maxIndex, Epoch: epoch, Base: base, Created: s.cfg.Now().UnixMilli()})
	if err != nil {
		return err
	}
	s.stats.segments.Add(1)
	s.w, s.epoch, s.written = w, epoch, base
	return nil
}

func (s *Store) fail(err error) (uint64, error) {
	s.err = fmt.Errorf("%w: %v", ErrFailed, err)
	s.log.Error().Err(err).Msg("recovery: log write failed; no further own event will be released")
	return s.written, s.err
}

// NewEpoch flushes the log, starts epoch in the DB (db.NewEpoch) and a
// log segment for it. In disk mode every epoch change must go through
// here, never straight to the DB: MarkPersisted takes no epoch, so a flush
// racing an epoch change could mark the new epoch's events persisted.
// A node whose directory was empty calls it once a peer has shown the
// newest epoch of its own it knows (db.HighestOwnEpoch), as epoch mode does.
func (s *Store) NewEpoch(epoch int64) error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.flushLocked(); err != nil {
		return err
	}
	if err := s.db.NewEpoch(epoch); err != nil {
		return err
	}
	if err := s.rollLocked(epoch, 0); err != nil {
		_, err = s.fail(err)
		return err
	}
	s.log.Info().Int64("epoch", epoch).Msg("recovery: new epoch")
	return nil
}

// heartbeat writes a liveness mark and syncs it, unless a flush wrote one
// in the last half FlushInterval: Recover measures the outage from the
// newest record, and a node may be up for hours without making an event.
func (s *Store) heartbeat(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if now.Sub(s.lastMark) < s.cfg.FlushInterval/2 {
		return nil
	}
	return s.markLocked(now, markAlive)
}

func (s *Store) markLocked(now time.Time, reason uint8) error {
	s.lastMark = now
	s.fb.reset()
	s.fb.mark(now.UnixMilli(), reason)
	if err := s.writeLocked(); err != nil {
		_, err = s.fail(err)
		return err
	}
	if err := s.syncLocked(); err != nil {
		_, err = s.fail(err)
		return err
	}
	return nil
}

// Close flushes and fsyncs the log, writes a clean-close mark, and releases
// the directory. Every write before it is whole: a frame is either all on
// disk after the final fsync or not written at all. A snapshot in progress
// is waited for (cancel Run's context first, and it stops at its next
// batch, leaving no file). Close is idempotent; later calls to Flush
// return ErrClosed.
func (s *Store) Close() error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var err error
	if s.w != nil && s.err == nil {
		if _, err = s.flushLocked(); err == nil {
			err = s.markLocked(s.cfg.Now(), markClose)
		}
		if cerr := s.w.close(); err == nil {
			err = cerr
		}
		s.w = nil
	}
	s.closed = true
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

type counters struct {
	flushes, syncs, events, bytes, segments, holes atomic.Uint64
	snapshots, snapshotErrors                      atomic.Uint64
	persisted                                      atomic.Uint64
	lastSnap                                       atomic.Pointer[SnapshotInfo]
}

// Stats are the Store's counters, monotonic since Open.
type Stats struct {
	Flushes        uint64 // flushes that wrote at least one event
	Syncs          uint64 // fsyncs of the log
	EventsWritten  uint64
	BytesWritten   uint64 // log bytes, frames included
	Segments       uint64 // log segments started
	Holes          uint64 // own events that left the DB before reaching the log (see holeLocked)
	Snapshots      uint64 // snapshots written
	SnapshotErrors uint64
	Persisted      uint64       // last own event on disk, current epoch
	LastSnapshot   SnapshotInfo // zero before the first
	Failed         bool         // the log is stuck on a write error (ErrFailed)
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	failed := s.err != nil
	s.mu.Unlock()
	c := &s.stats
	st := Stats{
		Flushes: c.flushes.Load(), Syncs: c.syncs.Load(), EventsWritten: c.events.Load(),
		BytesWritten: c.bytes.Load(), Segments: c.segments.Load(), Holes: c.holes.Load(),
		Snapshots: c.snapshots.Load(), SnapshotErrors: c.snapshotErrors.Load(),
		Persisted: c.persisted.Load(), Failed: failed,
	}
	if last := c.lastSnap.Load(); last != nil {
		st.LastSnapshot = *last
	}
	return st
}
