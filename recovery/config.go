package recovery

import (
	"fmt"
	"runtime"
	"time"

	"github.com/rs/zerolog"
)

// Config holds the disk side of recovery. Durations are wall-clock time as
// Now measures it.
type Config struct {
	// Dir holds the log segments, the snapshots and a LOCK file. Required;
	// created (mode 0700) when missing. One node, one directory.
	Dir string

	// FlushEvents: Run flushes the log once this many own events wait
	// (reference text para. 88). Gossip flushes before every push anyway,
	// so this bounds the loss when nothing is being sent. Default 100.
	FlushEvents int

	// FlushInterval: Run flushes waiting events at least this often, and
	// writes a small liveness mark (one fsync), so that Recover can tell
	// how long the node was down even after hours without an event.
	// Default 30s.
	FlushInterval time.Duration

	// CheckInterval: how often Run looks at the number of waiting events.
	// Smaller flushes a burst sooner at the cost of more wake-ups; it
	// costs one mutex when nothing waits. Default 10ms.
	CheckInterval time.Duration

	// SnapshotInterval: Run writes a snapshot of the database, the vector
	// and the own position this often, then deletes the log segments it
	// covers (para. 89). Longer means a longer log to replay at start-up.
	// Default 10m.
	SnapshotInterval time.Duration

	// ShortOutage: at start-up, when the newest record on disk is younger
	// than this, the node recovers from its own snapshot and log (Fig. 11
	// step 660); otherwise most of its snapshot has expired and it takes
	// the database from a peer first (step 662). Default 5m.
	ShortOutage time.Duration

	// KeepSnapshots: snapshots kept on disk; log segments are kept back to
	// the oldest of them, so a corrupt newest snapshot falls back to the
	// one before it plus more log. Minimum 1. Default 2.
	KeepSnapshots int

	// SegmentBytes: a log segment that grows past this is closed and a new
	// one started. Default 64 MiB.
	SegmentBytes int64

	// ChunkRecords: records per snapshot chunk (each chunk has its own
	// checksum and name table). 1..65536. Default 4096.
	ChunkRecords int

	// LoadWorkers: goroutines that decode and merge snapshot chunks at
	// start-up. Default GOMAXPROCS, at most 8.
	LoadWorkers int

	// Logger receives warnings about what was found on disk, and errors.
	// nil means zerolog.Nop(). Quiet at info on the hot path.
	Logger *zerolog.Logger

	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults documented on Config for dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:              dir,
		FlushEvents:      100,
		FlushInterval:    30 * time.Second,
		CheckInterval:    10 * time.Millisecond,
		SnapshotInterval: 10 * time.Minute,
		ShortOutage:      5 * time.Minute,
		KeepSnapshots:    2,
		SegmentBytes:     64 << 20,
		ChunkRecords:     4096,
		LoadWorkers:      min(runtime.GOMAXPROCS(0), 8),
	}
}

// withDefaults fills zero fields, so that a partly filled Config works.
func (c Config) withDefaults() Config {
	d := DefaultConfig(c.Dir)
	if c.FlushEvents == 0 {
		c.FlushEvents = d.FlushEvents
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = d.FlushInterval
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = d.CheckInterval
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.ShortOutage == 0 {
		c.ShortOutage = d.ShortOutage
	}
	if c.KeepSnapshots == 0 {
		c.KeepSnapshots = d.KeepSnapshots
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.ChunkRecords == 0 {
		c.ChunkRecords = d.ChunkRecords
	}
	if c.LoadWorkers == 0 {
		c.LoadWorkers = d.LoadWorkers
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("recovery: Dir is required")
	case c.FlushEvents < 1:
		return fmt.Errorf("recovery: FlushEvents must be >= 1, got %d", c.FlushEvents)
	case c.FlushInterval <= 0:
		return fmt.Errorf("recovery: FlushInterval must be > 0, got %v", c.FlushInterval)
	case c.CheckInterval <= 0 || c.CheckInterval > c.FlushInterval:
		return fmt.Errorf("recovery: CheckInterval must be in (0, FlushInterval], got %v", c.CheckInterval)
	case c.SnapshotInterval <= 0:
		return fmt.Errorf("recovery: SnapshotInterval must be > 0, got %v", c.SnapshotInterval)
	case c.ShortOutage <= 0:
		return fmt.Errorf("recovery: ShortOutage must be > 0, got %v", c.ShortOutage)
	case c.KeepSnapshots < 1 || c.KeepSnapshots > 100:
		return fmt.Errorf("recovery: KeepSnapshots must be in 1..100, got %d", c.KeepSnapshots)
	case c.SegmentBytes < 4096:
		return fmt.Errorf("recovery: SegmentBytes must be >= 4096, got %d", c.SegmentBytes)
	case c.ChunkRecords < 1 || c.ChunkRecords > maxChunkRecords:
		return fmt.Errorf("recovery: ChunkRecords must be in 1..%d, got %d", maxChunkRecords, c.ChunkRecords)
	case c.LoadWorkers < 1 || c.LoadWorkers > 64:
		return fmt.Errorf("recovery: LoadWorkers must be in 1..64, got %d", c.LoadWorkers)
	}
	return nil
}
