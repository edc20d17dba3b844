package recovery

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// SnapshotInfo describes a snapshot written.
type SnapshotInfo struct {
	Path     string
	Index    uint64 // log segments from this index on hold what came after it
	Epoch    int64  // own position when it was taken
	Seq      uint64
	Records  int
	Bytes    int64
	Taken    time.Time
	Duration time.Duration
}

// Snapshot writes the database, its vector and the own position to disk
// (Fig. 11 step 654), then deletes what it makes redundant: snapshots
// beyond Config.KeepSnapshots and log segments older than the oldest kept
// snapshot. Run calls it every SnapshotInterval; it may also be called
// directly (an operator's "snapshot now", tests, benchmarks).
//
// Order, and why it is safe: flush the log and start a new segment j
// (under the log mutex), then walk the DB into j.snap. Every own event in
// segments before j was in the DB before the walk began, so j.snap plus
// segments j, j+1, ... hold everything. The walk holds no lock of the
// Store, so Flush goes on meanwhile. ctx aborts the walk between batches.
func (s *Store) Snapshot(ctx context.Context) (SnapshotInfo, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.mu.Lock()
	err := s.usable()
	if err == nil && s.pending {
		err = ErrPending
	}
	if err == nil {
		_, err = s.flushLocked()
	}
	if err == nil {
		if err = s.rollLocked(s.epoch, s.written); err != nil {
			_, err = s.fail(err)
		}
	}
	index, db := s.maxIndex, s.db
	s.mu.Unlock()
	if err != nil {
		return SnapshotInfo{}, err
	}
	now := s.cfg.Now()
	sw, err := writeSnapshot(ctx, s.cfg.Dir, index, db, now, s.cfg.ChunkRecords)
	if err != nil {
		s.stats.snapshotErrors.Add(1)
		return SnapshotInfo{}, err
	}
	info := SnapshotInfo{Path: sw.path, Index: index, Epoch: sw.meta.Epoch, Seq: sw.meta.Seq, Records: sw.meta.Count,
		Bytes: sw.bytes, Taken: now, Duration: sw.elapsed}
	s.stats.snapshots.Add(1)
	s.stats.lastSnap.Store(&info)
	s.mu.Lock()
	s.lastSnap = now
	s.mu.Unlock()
	if err := s.prune(); err != nil {
		s.log.Warn().Err(err).Msg("recovery: deleting old snapshots and log segments")
	}
	s.log.Debug().Str("file", sw.path).Int("records", info.Records).Int64("bytes", info.Bytes).
		Dur("took_ms", info.Duration).Msg("recovery: snapshot written")
	return info, nil
}

// prune keeps the newest KeepSnapshots snapshots and the log segments from
// the oldest of them on. Called with snapMu held, so no snapshot is being
// renamed into place meanwhile; Flush only ever creates newer segments.
func (s *Store) prune() error {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return err
	}
	var snaps, segs []uint64
	for _, e := range ents {
		if i, ok := parseIndex(e.Name(), snapSuffix); ok {
			snaps = append(snaps, i)
		} else if i, ok := parseIndex(e.Name(), walSuffix); ok {
			segs = append(segs, i)
		}
	}
	if len(snaps) == 0 {
		return nil
	}
	sortSnaps(snaps)
	keep := min(len(snaps), s.cfg.KeepSnapshots)
	oldest := snaps[keep-1]
	removed := 0
	for _, i := range snaps[keep:] {
		if err := os.Remove(filepath.Join(s.cfg.Dir, snapName(i))); err != nil {
			return err
		}
		removed++
	}
	for _, i := range segs {
		if i < oldest {
			if err := os.Remove(filepath.Join(s.cfg.Dir, segName(i))); err != nil {
				return err
			}
			removed++
		}
	}
	if removed == 0 {
		return nil
	}
	return syncDir(s.cfg.Dir)
}
