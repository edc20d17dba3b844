package recovery

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Run flushes the log every FlushEvents own events or every FlushInterval,
// whichever comes first (reference text para. 88), writes a liveness mark
// every FlushInterval, and a snapshot every SnapshotInterval (para. 89)
// once the recovery is reconciled. It returns nil when ctx is done, after
// any snapshot it started has stopped, or the error that broke the log
// (ErrFailed): the node must then stop releasing events, which the DB
// already ensures, and should be restarted.
//
// Run starts one goroutine at a time for a snapshot, so that a long walk
// does not delay flushes; it waits for it before returning. Call Run once,
// after Recover.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	err := s.usable()
	lastSnap, lastFlush := s.lastSnap, s.lastMark
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tick := time.NewTicker(s.cfg.CheckInterval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	snapDone := make(chan struct{}, 1)
	snapping := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-snapDone:
			snapping = false
			continue
		case <-tick.C:
		}
		now := s.cfg.Now()
		due := now.Sub(lastFlush) >= s.cfg.FlushInterval
		if due || s.waiting() >= uint64(s.cfg.FlushEvents) {
			if _, err := s.Flush(); err != nil {
				if errors.Is(err, ErrClosed) {
					return nil
				}
				return err
			}
		}
		if due {
			if err := s.heartbeat(now); err != nil && !errors.Is(err, ErrClosed) {
				return err
			}
			lastFlush = now
		}
		if !snapping && now.Sub(lastSnap) >= s.cfg.SnapshotInterval && !s.isPending() {
			snapping, lastSnap = true, now
			wg.Go(func() {
				defer func() { snapDone <- struct{}{} }()
				if _, err := s.Snapshot(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
					s.log.Warn().Err(err).Msg("recovery: snapshot failed; the log keeps everything until the next one")
				}
			})
		}
	}
}

// waiting returns how many own events wait for the log.
func (s *Store) waiting() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.usable() != nil {
		return 0
	}
	e, seq := s.db.Position()
	if e != s.epoch {
		return 1 << 62 // an epoch began: flush now so its segment starts
	}
	if seq < s.written {
		return 0
	}
	return seq - s.written
}

func (s *Store) isPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}
