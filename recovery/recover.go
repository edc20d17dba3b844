package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Mode is the way Recover chose to bring the node back (Fig. 11 step 655).
type Mode uint8

const (
	// ModeEmpty: nothing on disk (a first start, or a wiped directory).
	// The caller takes the database and vector from a peer, as epoch mode
	// does, and calls Reconcile.
	ModeEmpty Mode = iota + 1
	// ModeShort: the newest record on disk is younger than
	// Config.ShortOutage and the local state is whole: the snapshot and the
	// log are loaded (step 660); the node pulls what happened since from its
	// peers by the usual anti-entropy. Nothing else to call.
	ModeShort
	// ModeLong: the outage was long, so most of the snapshot has expired,
	// or the local state is not whole (no usable snapshot and a log that
	// does not reach back to its start). The own log is applied (own
	// numbering and own bindings are right from the first request); the
	// snapshot is not loaded. The caller takes the database and vector
	// from a peer (step 662: db.MergeRecords, db.MergeVector) and then
	// calls Reconcile (step 665); if no peer answers in time, it calls
	// ReconcileLocal instead, which loads the local snapshot after all.
	ModeLong
)

func (m Mode) String() string {
	switch m {
	case ModeEmpty:
		return "empty"
	case ModeShort:
		return "short"
	case ModeLong:
		return "long"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Report says what Recover found and did.
type Report struct {
	Mode   Mode
	Reason string // why this mode, in words
	Next   string // what the caller does next, in words

	LastRecord    time.Time     // newest time on disk (snapshot, segment start, liveness mark); zero if none
	Outage        time.Duration // now - LastRecord
	CleanShutdown bool          // the log ends with Close's mark

	Snapshot        string // snapshot file used (loaded, or kept for ReconcileLocal); "" if none
	SnapshotTaken   time.Time
	SnapshotRecords int // records in it
	Loaded          int // records merged from it (ModeShort)

	Segments  int // log segments read
	LogEvents int // own events read back from the log and applied

	Epoch    int64  // own position after Recover
	Seq      uint64 //
	NewEpoch bool   // a new epoch was started because of Problems (see doc.go)

	Problems  []string // everything found wrong, in words; each was also logged as a warning
	KeptAside []string // files holding what was cut or set aside

	Took time.Duration
}

// Recovery is the result of Recover, and the handle for the rest of a
// recovery that needs peers (ModeLong, ModeEmpty).
type Recovery struct {
	Report

	s    *Store
	db   *stickydb.DB
	own  []stickydb.Group
	snap *snapInfo // ModeLong: the verified snapshot not loaded, for ReconcileLocal

	mu   sync.Mutex
	done bool
}

// OwnEvents returns the own events read back from the log, one group per
// log segment, oldest first, until Reconcile or ReconcileLocal releases
// them (a busy node's log may hold hundreds of thousands). They are
// already applied; the caller may look, not change.
func (r *Recovery) OwnEvents() []stickydb.Group {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own
}

// Reconcile completes a recovery after the caller merged a peer's database
// and vector into the DB (Fig. 11 step 665): it merges the own log again,
// so that own changes newer than the copy win, and lets snapshots resume
// (none is written before, so a table still lacking the peer copy never
// replaces a good snapshot). The merge rule is a join-semilattice, so the
// second merge changes nothing the first already settled; it is cheap (one
// snapshot interval of own events at most). In ModeShort it only returns
// nil. Call it once.
func (r *Recovery) Reconcile(now time.Time) error { return r.finish(now, false) }

// ReconcileLocal completes a ModeLong or ModeEmpty recovery when no peer
// could give its database: the local snapshot (if one checked out) is
// loaded after all, its vector merged, and the own log merged again. A
// whole fleet restarted after a long stop comes back this way. It costs
// what the snapshot load costs in ModeShort.
func (r *Recovery) ReconcileLocal(now time.Time) error { return r.finish(now, true) }

func (r *Recovery) finish(now time.Time, local bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return ErrReconciled
	}
	r.done = true
	defer func() {
		r.own = nil
		r.s.mu.Lock()
		r.s.pending = false
		r.s.mu.Unlock()
	}()
	if r.Mode == ModeShort {
		return nil
	}
	var firstErr error
	if local && r.snap != nil {
		res, err := loadSnapshot(r.snap.path, r.db, now, r.s.cfg.LoadWorkers)
		if err == nil && res.badChunk != nil {
			err = res.badChunk
		}
		if err != nil {
			r.s.log.Warn().Err(err).Str("file", r.snap.path).Msg("recovery: loading the local snapshot")
			firstErr = err
		} else {
			r.db.MergeVector(r.snap.meta.Vector, "", now)
		}
		r.s.log.Info().Str("file", r.snap.path).Int("records", res.records).Msg("recovery: local snapshot loaded (no peer copy)")
	}
	for _, g := range r.own {
		recs := make([]stickydb.Record, len(g.Events))
		for i, ev := range g.Events {
			recs[i] = stickydb.Record{Key: ev.Key, Binding: ev.Binding}
		}
		if _, err := r.db.MergeRecords(recs, now); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Recover reads the data directory into db, which must be fresh (made by
// stickydb.New with Config.Durable, no event made yet), and opens a new
// log segment. It decides the mode (see Mode) and does the local part of
// it; Report says what it found. now is the wall-clock time of the start.
//
// Nothing found on disk is an error: a torn tail is cut and a corrupt
// record cuts the log there (the bytes kept in a *.broken file next to
// it), a corrupt snapshot is set aside and the previous one used; each is
// a warning, and any of them starts a new epoch (see doc.go). Errors are
// what makes a safe start impossible: the directory of another node, an
// I/O error reading it, a DB that is not fresh or not durable.
func (s *Store) Recover(db *stickydb.DB, now time.Time) (*Recovery, error) {
	began := time.Now()
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, ErrClosed
	case s.db != nil:
		return nil, ErrRecovered
	case db == nil:
		return nil, errors.New("recovery: nil DB")
	case !db.Config().Durable:
		return nil, ErrNotDurable
	}
	if _, seq := db.Position(); seq != 0 || db.Len() != 0 {
		return nil, ErrNotFresh
	}
	rc := &recoverer{s: s, db: db, node: db.Node(), now: now}
	rec, err := rc.run()
	if err != nil {
		return nil, err
	}
	rec.Took = time.Since(began)
	ev := s.log.Info()
	if len(rec.Problems) > 0 {
		ev = s.log.Warn().Strs("problems", rec.Problems).Strs("kept_aside", rec.KeptAside)
	}
	ev.Str("mode", rec.Mode.String()).Str("reason", rec.Reason).Str("next", rec.Next).
		Str("snapshot", rec.Snapshot).Int("loaded", rec.Loaded).Int("log_events", rec.LogEvents).
		Int64("epoch", rec.Epoch).Uint64("seq", rec.Seq).Bool("new_epoch", rec.NewEpoch).
		Bool("clean_shutdown", rec.CleanShutdown).Dur("outage_ms", rec.Outage).Dur("took_ms", rec.Took).
		Msg("recovery: recovered")
	return rec, nil
}

// recoverer holds one run of Recover. Its methods run with the Store's
// mutexes held.
type recoverer struct {
	s    *Store
	db   *stickydb.DB
	node string
	now  time.Time
	rep  Report

	segs, snaps []uint64
	maxIndex    uint64
	hadSnapshot bool
	next        uint64 // index of the segment to start
	chosen      *snapInfo
	runs        []segScan
}

func (rc *recoverer) problem(msg string, err error, file string) {
	s := msg
	if err != nil {
		s = msg + ": " + err.Error()
	}
	rc.rep.Problems = append(rc.rep.Problems, s)
	rc.s.log.Warn().Err(err).Str("file", file).Msg("recovery: " + msg)
}

func (rc *recoverer) aside(path string) error {
	to, err := moveAside(path, rc.now)
	if err != nil {
		return fmt.Errorf("recovery: setting %s aside: %w", path, err)
	}
	rc.rep.KeptAside = append(rc.rep.KeptAside, to)
	return nil
}

func (rc *recoverer) run() (*Recovery, error) {
	if err := rc.list(); err != nil {
		return nil, err
	}
	if err := rc.chooseSnapshot(); err != nil {
		return nil, err
	}
	if err := rc.readLog(); err != nil {
		return nil, err
	}
	rc.decide()
	if err := rc.apply(); err != nil {
		return nil, err
	}
	s := rc.s
	s.db, s.maxIndex = rc.db, rc.next-1
	s.pending = rc.rep.Mode != ModeShort
	s.lastSnap, s.lastMark = rc.now, rc.now
	if rc.chosen != nil {
		s.lastSnap = time.UnixMilli(rc.chosen.meta.Taken)
	}
	epoch, seq := rc.db.Position()
	if err := s.rollLocked(epoch, seq); err != nil {
		return nil, fmt.Errorf("recovery: starting the log: %w", err)
	}
	s.stats.persisted.Store(seq)
	rc.rep.Epoch, rc.rep.Seq = epoch, seq
	r := &Recovery{Report: rc.rep, s: s, db: rc.db}
	if rc.rep.Mode == ModeLong && rc.rep.Loaded == 0 {
		r.snap = rc.chosen
	}
	for i := range rc.runs {
		sc := &rc.runs[i]
		if len(sc.events) > 0 {
			r.own = append(r.own, stickydb.Group{Origin: rc.node, Epoch: sc.header.Epoch, From: sc.header.Base + 1,
				To: sc.last(), Events: sc.events, Sender: rc.node})
		}
	}
	return r, nil
}

// list sorts the directory's files; leftovers of an interrupted write
// (*.tmp) are removed: they were never renamed into place, so nothing
// counted on them.
func (rc *recoverer) list() error {
	ents, err := os.ReadDir(rc.s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("recovery: reading %s: %w", rc.s.cfg.Dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if i, ok := parseIndex(name, walSuffix); ok {
			rc.segs = append(rc.segs, i)
			rc.maxIndex = max(rc.maxIndex, i)
		} else if i, ok := parseIndex(name, snapSuffix); ok {
			rc.snaps = append(rc.snaps, i)
			rc.maxIndex = max(rc.maxIndex, i)
		} else if strings.HasSuffix(name, tmpSuffix) {
			if err := os.Remove(filepath.Join(rc.s.cfg.Dir, name)); err != nil {
				return fmt.Errorf("recovery: removing %s: %w", name, err)
			}
			rc.s.log.Info().Str("file", name).Msg("recovery: removed an unfinished write")
		}
	}
	sort.Slice(rc.segs, func(i, j int) bool { return rc.segs[i] < rc.segs[j] })
	sortSnaps(rc.snaps)
	rc.hadSnapshot = len(rc.snaps) > 0
	rc.next = rc.maxIndex + 1
	return nil
}

// chooseSnapshot takes the newest snapshot that checks out whole; the ones
// newer than it are set aside.
func (rc *recoverer) chooseSnapshot() error {
	for _, idx := range rc.snaps {
		path := filepath.Join(rc.s.cfg.Dir, snapName(idx))
		info, problem, err := verifyFile(path, rc.node, idx)
		if err != nil {
			return err
		}
		if problem == nil {
			info.path = path
			rc.chosen = &info
			rc.rep.Snapshot, rc.rep.SnapshotRecords = path, info.meta.Count
			rc.rep.SnapshotTaken = time.UnixMilli(info.meta.Taken)
			return nil
		}
		rc.problem("snapshot ignored", problem, path)
		if err := rc.aside(path); err != nil {
			return err
		}
	}
	return nil
}

func verifyFile(path, node string, idx uint64) (snapInfo, error, error) {
	f, err := os.Open(path)
	if err != nil {
		return snapInfo{}, nil, fmt.Errorf("recovery: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return snapInfo{}, nil, fmt.Errorf("recovery: %w", err)
	}
	info, problem, err := verifySnapshot(f, st.Size(), node, idx)
	if err != nil && !errors.Is(err, ErrWrongNode) {
		err = fmt.Errorf("recovery: reading %s: %w", path, err)
	}
	return info, problem, err
}

// readLog reads the segments the chosen snapshot needs (all, without one),
// in order, and stops at the first problem: the bad part of that segment
// is cut and kept aside, and every later segment set aside whole. Events
// after a hole would make the own vector claim events the node does not
// hold, and peers would never send them back. The segment started next
// takes the index where the damage began, so the chain of segment indexes
// stays whole for the next start.
func (rc *recoverer) readLog() error {
	var todo []uint64
	start := uint64(0)
	if rc.chosen != nil {
		start = rc.chosen.index
	}
	for _, i := range rc.segs {
		if i >= start {
			todo = append(todo, i)
		}
	}
	expect := start
	if rc.chosen == nil && len(todo) > 0 {
		expect = todo[0]
	}
	var prevEpoch int64
	var prevLast uint64
	for n, idx := range todo {
		path := filepath.Join(rc.s.cfg.Dir, segName(idx))
		if idx != expect {
			rc.problem(fmt.Sprintf("log segment %s missing; the log is cut there", segName(expect)), nil, path)
			rc.next = expect
			return rc.asideAll(todo[n:])
		}
		expect++
		sc, err := scanFile(path, rc.node, idx)
		if err != nil {
			return err
		}
		if n > 0 && (sc.problem == nil || sc.good > magicLen) &&
			(sc.header.Epoch < prevEpoch || (sc.header.Epoch == prevEpoch && sc.header.Base < prevLast)) {
			rc.problem(fmt.Sprintf("log segment starts at epoch %d event %d, before the end of the one before (epoch %d event %d); the log is cut there",
				sc.header.Epoch, sc.header.Base, prevEpoch, prevLast), nil, path)
			rc.next = idx
			return rc.asideAll(todo[n:])
		}
		rc.rep.Segments++
		if sc.problem != nil {
			if sc.good <= magicLen {
				rc.problem("log segment unreadable; set aside", sc.problem, path)
				if err := rc.aside(path); err != nil {
					return err
				}
				rc.next = idx
			} else {
				rc.problem(fmt.Sprintf("log cut at byte %d of %d", sc.good, sc.size), sc.problem, path)
				to, err := cutTail(path, sc.good, rc.now)
				if err != nil {
					return fmt.Errorf("recovery: cutting %s: %w", path, err)
				}
				rc.rep.KeptAside = append(rc.rep.KeptAside, to)
				rc.runs = append(rc.runs, sc)
				rc.next = idx + 1
			}
			return rc.asideAll(todo[n+1:])
		}
		rc.runs = append(rc.runs, sc)
		prevEpoch, prevLast = sc.header.Epoch, sc.last()
	}
	if rc.chosen != nil && len(todo) == 0 {
		rc.problem(fmt.Sprintf("log segment %s, which the snapshot needs, is missing", segName(start)), nil, rc.chosen.path)
		rc.next = start
	}
	return nil
}

func (rc *recoverer) asideAll(idx []uint64) error {
	for _, i := range idx {
		if err := rc.aside(filepath.Join(rc.s.cfg.Dir, segName(i))); err != nil {
			return err
		}
	}
	return nil
}

func scanFile(path, node string, idx uint64) (segScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return segScan{}, fmt.Errorf("recovery: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segScan{}, fmt.Errorf("recovery: %w", err)
	}
	sc, err := scanSegment(f, st.Size(), node, idx)
	sc.path = path
	return sc, err
}

// decide picks the mode (Fig. 11 step 655).
func (rc *recoverer) decide() {
	rep := &rc.rep
	var last int64
	if rc.chosen != nil {
		last = rc.chosen.meta.Taken
	}
	for i := range rc.runs {
		last = max(last, rc.runs[i].lastAlive)
	}
	if n := len(rc.runs); n > 0 && len(rep.Problems) == 0 {
		rep.CleanShutdown = rc.runs[n-1].closed
	}
	if last > 0 {
		rep.LastRecord = time.UnixMilli(last)
		rep.Outage = rc.now.Sub(rep.LastRecord)
	}
	// Whole: a snapshot checked out, or the log reaches back to the start
	// of its first epoch. Then the own vector claims no own event the node
	// does not hold; what other origins made comes by anti-entropy.
	whole := rc.chosen != nil || (len(rc.runs) > 0 && rc.runs[0].header.Base == 0)
	short := rc.s.cfg.ShortOutage
	switch {
	case rc.chosen == nil && len(rc.runs) == 0 && len(rep.Problems) == 0 && !rc.hadSnapshot:
		rep.Mode, rep.Reason = ModeEmpty, "nothing on disk"
		rep.Next = "take the database and vector from a peer, as a node without a data dir does"
		return
	case !whole:
		rep.Mode, rep.Reason = ModeLong, "no usable snapshot, and the log does not reach back to its start"
	case last == 0 || rep.Outage >= short:
		rep.Mode, rep.Reason = ModeLong, fmt.Sprintf("newest record %v old (>= %v): most of the snapshot has expired", rep.Outage.Round(time.Second), short)
	default:
		rep.Mode, rep.Reason = ModeShort, fmt.Sprintf("newest record %v old (< %v)", rep.Outage.Round(time.Millisecond), short)
		rep.Next = "local snapshot and log loaded; pull the rest from peers (anti-entropy)"
		return
	}
	rep.Next = nextLong
}

const nextLong = "take the database and vector from a peer, then replay the own log on top (the own log alone when no peer answers)"

// posRun is a stretch of own numbering to restore: where it starts and the
// events that follow.
type posRun struct {
	epoch  int64
	base   uint64
	events []stickydb.Event
}

// apply puts what was read into the DB. ModeShort loads the snapshot's
// records first (stickydb: MergeRecords before RestoreOwn). Then the own
// numbering is restored epoch by epoch, oldest first: RestoreOwn for the
// first stretch (with the vector), NewEpoch when the epoch grows, RestoreOwn
// again where a stretch starts past the numbering, ReplayOwn for its
// events. ReplayOwn of an epoch is only ever called while the DB is in that
// epoch, so its epoch adoption never moves the DB back (see the report).
// Last, if anything was wrong, a new epoch.
func (rc *recoverer) apply() error {
	rep, db := &rc.rep, rc.db
	if rep.Mode == ModeEmpty {
		return nil
	}
	var runs []posRun
	vec := stickydb.Vector{}
	if c := rc.chosen; c != nil {
		runs = append(runs, posRun{epoch: c.meta.Epoch, base: c.meta.Seq})
		if rep.Mode == ModeShort {
			vec = c.meta.Vector
		} else if ps := c.meta.Vector[rc.node]; len(ps) > 0 {
			vec[rc.node] = ps
		}
		if rep.Mode == ModeShort {
			res, err := loadSnapshot(c.path, db, rc.now, rc.s.cfg.LoadWorkers)
			if err != nil {
				return fmt.Errorf("recovery: loading %s: %w", c.path, err)
			}
			if res.badChunk != nil {
				// Some records are missing, so the vector must not claim
				// them: keep only the own position and take the database
				// from a peer as after a long outage.
				rc.problem("snapshot chunk checked out but did not decode; the other chunks are loaded", res.badChunk, c.path)
				vec = stickydb.Vector{}
				if ps := c.meta.Vector[rc.node]; len(ps) > 0 {
					vec[rc.node] = ps
				}
				rep.Mode, rep.Reason = ModeLong, "the snapshot is incomplete"
				rep.Next = nextLong
			}
			if res.mergeErr != nil {
				rc.s.log.Warn().Err(res.mergeErr).Str("file", c.path).Msg("recovery: some snapshot records refused by the DB")
			}
			rep.Loaded = res.changed
		}
	}
	for i := range rc.runs {
		sc := &rc.runs[i]
		runs = append(runs, posRun{epoch: sc.header.Epoch, base: sc.header.Base, events: sc.events})
		rep.LogEvents += len(sc.events)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].epoch < runs[j].epoch })
	if len(runs) > 0 {
		first := runs[0]
		if err := db.RestoreOwn(stickydb.SnapshotMeta{Node: rc.node, Epoch: first.epoch, Seq: first.base, Vector: vec}); err != nil {
			return fmt.Errorf("recovery: restoring own position: %w", err)
		}
		cur := first.epoch
		for _, r := range runs {
			if r.epoch > cur {
				if err := db.NewEpoch(r.epoch); err != nil {
					return fmt.Errorf("recovery: restoring epoch %d: %w", r.epoch, err)
				}
				cur = r.epoch
			}
			if _, seq := db.Position(); r.base > seq {
				if err := db.RestoreOwn(stickydb.SnapshotMeta{Node: rc.node, Epoch: r.epoch, Seq: r.base}); err != nil {
					return fmt.Errorf("recovery: restoring own position: %w", err)
				}
			}
			if len(r.events) > 0 {
				if err := db.ReplayOwn(r.epoch, r.events, rc.now); err != nil {
					// An expiry over the cap after the clock went back, an
					// origin over its cap: the event is refused, the
					// numbering still restored.
					rc.s.log.Warn().Err(err).Int64("epoch", r.epoch).Msg("recovery: some own events refused by the DB")
				}
			}
		}
	}
	if len(rep.Problems) > 0 {
		old, _ := db.Position()
		epoch := max(rc.now.UnixMilli(), old+1)
		if err := db.NewEpoch(epoch); err != nil {
			return fmt.Errorf("recovery: new epoch: %w", err)
		}
		rep.NewEpoch = true
		rc.s.log.Warn().Int64("old_epoch", old).Int64("epoch", epoch).Msg("recovery: new epoch: something on disk was lost or damaged")
	}
	return nil
}
