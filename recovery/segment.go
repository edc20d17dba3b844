package recovery

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tetherproxy/tether/stickydb"
)

// segScan is what reading one log segment found: its header and its events,
// all of the header's epoch and numbered Base+1, Base+2, ... without a hole,
// up to the first frame that is torn, corrupt or out of order.
type segScan struct {
	path      string
	index     uint64
	size      int64
	header    segHeader
	events    []stickydb.Event
	lastAlive int64 // newest time the segment shows the node up: header, marks (unix ms)
	closed    bool  // the last record is a clean-close mark
	good      int64 // offset just past the last good frame: where a cut goes
	problem   error // why reading stopped early (wraps errTorn or errCorrupt); nil at a clean end
}

// last is the number of the last event the segment accounts for.
func (s *segScan) last() uint64 { return s.header.Base + uint64(len(s.events)) }

// scanSegment reads a segment from r (size bytes). node is the name the
// directory must belong to: a readable header of another node is
// ErrWrongNode, the one error it returns; all else is in segScan.problem.
func scanSegment(r io.Reader, size int64, node string, index uint64) (segScan, error) {
	s := segScan{index: index, size: size}
	var magic [magicLen]byte
	if n, err := io.ReadFull(r, magic[:]); err != nil {
		if n == 0 && size == 0 {
			s.problem = fmt.Errorf("%w: empty file", errCorrupt)
		} else {
			s.problem = fmt.Errorf("%w: file of %d bytes is shorter than its magic", errTorn, size)
		}
		return s, nil
	}
	if string(magic[:]) != walMagic {
		s.problem = fmt.Errorf("%w: magic %q, want %q", errCorrupt, magic[:], walMagic)
		return s, nil
	}
	fr := newFrameReader(r, magicLen, size, maxWALBody)
	var rec walRecord
	for first := true; ; first = false {
		s.good = fr.off
		body, err := fr.next()
		if err == io.EOF {
			if first {
				s.problem = fmt.Errorf("%w: no header", errTorn)
			}
			return s, nil
		}
		if err == nil {
			err = decodeWAL(body, s.header.Node, &rec)
		}
		if err == nil {
			err = s.take(&rec, first, node)
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrWrongNode):
			return s, err
		case errors.Is(err, errTorn) || errors.Is(err, errCorrupt):
			s.problem = fmt.Errorf("%w (at byte %d)", err, s.good)
			return s, nil
		default:
			// An I/O error says nothing about the bytes: stop the start-up
			// rather than cut a log that may be fine.
			return s, fmt.Errorf("recovery: reading %s: %w", s.path, err)
		}
	}
}

// take checks one decoded record against what came before it.
func (s *segScan) take(rec *walRecord, first bool, node string) error {
	if first != (rec.typ == typeSegHeader) {
		return fmt.Errorf("%w: record type %d where the header should be (or a second header)", errCorrupt, rec.typ)
	}
	s.closed = false
	switch rec.typ {
	case typeSegHeader:
		h := rec.header
		if h.Node != node {
			return fmt.Errorf("%w: %s belongs to %q, this node is %q", ErrWrongNode, s.path, h.Node, node)
		}
		if h.Index != s.index {
			return fmt.Errorf("%w: header says segment %d, file name says %d", errCorrupt, h.Index, s.index)
		}
		s.header = h
		s.lastAlive = max(s.lastAlive, h.Created)
	case typeEvent:
		if rec.epoch != s.header.Epoch {
			return fmt.Errorf("%w: event of epoch %d in a segment of epoch %d", errCorrupt, rec.epoch, s.header.Epoch)
		}
		if want := s.last() + 1; rec.event.Seq != want {
			return fmt.Errorf("%w: event %d where %d should follow", errCorrupt, rec.event.Seq, want)
		}
		s.events = append(s.events, rec.event)
	case typeMark:
		s.lastAlive = max(s.lastAlive, rec.markAt)
		s.closed = rec.reason == markClose
	}
	return nil
}

// segWriter appends to the active log segment.
type segWriter struct {
	f     *os.File
	path  string
	index uint64
	size  int64
	dirty bool // written since the last fsync
}

// createSegment makes a new segment holding its magic and header: written
// to a temporary file, fsynced, renamed, the directory fsynced. So a
// segment file that exists always has a whole header, and a torn header
// can only mean damage.
func createSegment(dir string, h segHeader) (*segWriter, error) {
	fb := newFrameBuf()
	fb.buf.WriteString(walMagic)
	fb.header(h)
	path := filepath.Join(dir, segName(h.Index))
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*segWriter, error) {
		f.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if _, err := f.Write(fb.bytes()); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return &segWriter{f: f, path: path, index: h.Index, size: int64(fb.buf.Len())}, nil
}

func (w *segWriter) write(b []byte) error {
	n, err := w.f.Write(b)
	w.size += int64(n)
	w.dirty = w.dirty || n > 0
	return err
}

func (w *segWriter) sync() error {
	if !w.dirty {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.dirty = false
	return nil
}

func (w *segWriter) close() error {
	err := w.sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
