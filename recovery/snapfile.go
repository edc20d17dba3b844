package recovery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/tetherproxy/tether/stickydb"
	"github.com/vmihailenco/msgpack/v5"
)

// snapEncoder streams snapshot records into chunk frames. A chunk carries
// its own name table (hosts, replicas and origins used in it), so chunks
// decode independently and in parallel, and a bad chunk spoils no other.
type snapEncoder struct {
	w         io.Writer
	max       int   // records per chunk
	base      int64 // expiries are stored relative to this (the snapshot time)
	recs      bytes.Buffer
	recEnc    *msgpack.Encoder
	head      bytes.Buffer
	headEnc   *msgpack.Encoder
	n         int // records in the open chunk
	ids       map[string]uint32
	names     []string
	lastName  [3]string // last host, replica, origin seen, and their ids:
	lastID    [3]uint32 // most records repeat them, which saves a map lookup
	chunks    int
	count     int
	bytesDone int64
	addr      [16]byte
}

func newSnapEncoder(w io.Writer, maxRecords int, base int64) *snapEncoder {
	e := &snapEncoder{w: w, max: maxRecords, base: base, ids: map[string]uint32{}}
	e.recEnc = msgpack.NewEncoder(&e.recs)
	e.headEnc = msgpack.NewEncoder(&e.head)
	e.resetNames()
	return e
}

func (e *snapEncoder) resetNames() {
	clear(e.ids)
	e.names = e.names[:0]
	for i := range e.lastName {
		e.lastName[i], e.lastID[i] = "", math.MaxUint32
	}
}

func (e *snapEncoder) nameID(slot int, s string) uint32 {
	if e.lastID[slot] != math.MaxUint32 && e.lastName[slot] == s {
		return e.lastID[slot]
	}
	id, ok := e.ids[s]
	if !ok {
		id = uint32(len(e.names))
		e.ids[s] = id
		e.names = append(e.names, s)
	}
	e.lastName[slot], e.lastID[slot] = s, id
	return id
}

// add encodes records; it writes a chunk whenever one is full. The encoder
// writes into bytes.Buffers, whose writes never fail.
func (e *snapEncoder) add(recs []stickydb.Record) error {
	enc := e.recEnc
	for i := range recs {
		r := &recs[i]
		b := &r.Binding
		_ = enc.EncodeArrayLen(recordFields)
		encodeAddr(enc, r.Key.Client(), &e.addr)
		_ = enc.EncodeUint(uint64(e.nameID(0, r.Key.Host())))
		if b.Deleted {
			_ = enc.EncodeNil()
		} else {
			_ = enc.EncodeUint(uint64(e.nameID(1, b.Replica)))
		}
		_ = enc.EncodeInt(b.Expiry - e.base)
		_ = enc.EncodeUint(uint64(b.Generation))
		_ = enc.EncodeUint(uint64(e.nameID(2, b.Origin)))
		_ = enc.EncodeBool(b.Deleted)
		e.n++
		if e.n >= e.max || e.recs.Len() >= maxChunkBytes {
			if err := e.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes the open chunk as one frame: header, then the chunk's
// head (type, base, names, record count) and its records.
func (e *snapEncoder) flush() error {
	if e.n == 0 {
		return nil
	}
	h := e.headEnc
	e.head.Reset()
	_ = h.EncodeArrayLen(chunkFields)
	_ = h.EncodeUint(typeChunk)
	_ = h.EncodeInt(e.base)
	_ = h.EncodeArrayLen(len(e.names))
	for _, s := range e.names {
		_ = h.EncodeString(s)
	}
	_ = h.EncodeArrayLen(e.n)
	if err := e.writeFrame(e.head.Bytes(), e.recs.Bytes()); err != nil {
		return err
	}
	e.chunks++
	e.count += e.n
	e.n = 0
	e.recs.Reset()
	e.resetNames()
	return nil
}

// writeFrame writes one frame whose body is the concatenation of parts,
// without copying them together first.
func (e *snapEncoder) writeFrame(parts ...[]byte) error {
	var hdr [frameHeader]byte
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	binary.LittleEndian.PutUint32(hdr[:4], uint32(n))
	crc := crc32.Update(0, castagnoli, hdr[:4])
	for _, p := range parts {
		crc = crc32.Update(crc, castagnoli, p)
	}
	binary.LittleEndian.PutUint32(hdr[4:], crc)
	if _, err := e.w.Write(hdr[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := e.w.Write(p); err != nil {
			return err
		}
	}
	e.bytesDone += int64(frameHeader + n)
	return nil
}

// trailer writes the last frame: the snapshot's meta and vector, and the
// number of chunks and records before it, so a reader knows it saw all.
func (e *snapEncoder) trailer(index uint64, m stickydb.SnapshotMeta) error {
	h := e.headEnc
	e.head.Reset()
	_ = h.EncodeArrayLen(trailerFields)
	_ = h.EncodeUint(typeTrailer)
	_ = h.EncodeString(m.Node)
	_ = h.EncodeUint(index)
	_ = h.EncodeInt(m.Epoch)
	_ = h.EncodeUint(m.Seq)
	_ = h.EncodeInt(m.Taken)
	_ = h.EncodeUint(uint64(e.count))
	_ = h.EncodeUint(uint64(e.chunks))
	encodeVector(h, m.Vector)
	return e.writeFrame(e.head.Bytes())
}

func encodeVector(e *msgpack.Encoder, v stickydb.Vector) {
	origins := v.Origins()
	_ = e.EncodeMapLen(len(origins))
	for _, o := range origins {
		_ = e.EncodeString(o)
		_ = e.EncodeArrayLen(len(v[o]))
		for _, p := range v[o] {
			_ = e.EncodeArrayLen(2)
			_ = e.EncodeInt(p.Epoch)
			_ = e.EncodeUint(p.Seq)
		}
	}
}

func decodeVector(r *mpReader) stickydb.Vector {
	n := r.mapLen()
	v := make(stickydb.Vector, min(n, 1024))
	for ; n > 0 && r.err == nil; n-- {
		o := r.str()
		m := r.arrayLen()
		ps := make([]stickydb.EpochSeq, 0, min(m, 64))
		for ; m > 0 && r.err == nil; m-- {
			if f := r.arrayLen(); f < 2 {
				r.fail("vector pair of fewer than 2 fields")
			} else {
				ps = append(ps, stickydb.EpochSeq{Epoch: r.int(), Seq: r.uint()})
				r.skipRest(f - 2)
			}
		}
		if o == "" || len(o) > 255 {
			r.fail("vector origin name")
		}
		v[o] = ps
	}
	return v
}

// snapInfo is a snapshot whose every frame checked out.
type snapInfo struct {
	path   string
	index  uint64
	meta   stickydb.SnapshotMeta
	chunks int
	size   int64
}

// snapWritten is what writeSnapshot reports.
type snapWritten struct {
	path    string
	meta    stickydb.SnapshotMeta
	bytes   int64
	elapsed time.Duration
}

// writeSnapshot walks db into dir/<index>.snap: a temporary file written
// through a buffer, fsynced, renamed, the directory fsynced. A crash or a
// cancelled ctx leaves no snapshot file, at worst a *.tmp.
func writeSnapshot(ctx context.Context, dir string, index uint64, db *stickydb.DB, now time.Time, chunkRecords int) (snapWritten, error) {
	start := time.Now()
	path := filepath.Join(dir, snapName(index))
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return snapWritten{}, err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.WriteString(snapMagic)
	enc := newSnapEncoder(bw, chunkRecords, now.UnixMilli())
	meta, err := db.Snapshot(now, func(recs []stickydb.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return enc.add(recs)
	})
	if err == nil {
		err = enc.flush()
	}
	if err == nil {
		err = enc.trailer(index, meta)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return snapWritten{}, err
	}
	done = true
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return snapWritten{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return snapWritten{}, err
	}
	if err := syncDir(dir); err != nil {
		return snapWritten{}, err
	}
	meta.Count = enc.count
	return snapWritten{path: path, meta: meta, bytes: magicLen + enc.bytesDone, elapsed: time.Since(start)}, nil
}

// chunkHead reads a chunk's head and returns the reader positioned at its
// first record, the base, the names and the record count.
func chunkHead(body []byte, names []string) (r mpReader, base int64, _ []string, count int, extra int) {
	r = mpReader{b: body}
	n := r.arrayLen()
	if typ := r.uint(); r.err == nil && (typ != typeChunk || n < chunkFields) {
		r.fail(fmt.Sprintf("chunk of type %d with %d fields", typ, n))
	}
	base = r.int()
	names = names[:0]
	for m := r.arrayLen(); m > 0 && r.err == nil; m-- {
		names = append(names, r.str())
	}
	count = r.arrayLen()
	return r, base, names, count, n - chunkFields
}

// decodeChunk appends a chunk's records to out. names is scratch space.
func decodeChunk(body []byte, out []stickydb.Record, names []string) ([]stickydb.Record, []string, error) {
	r, base, names, count, extra := chunkHead(body, names)
	for ; count > 0 && r.err == nil; count-- {
		f := r.arrayLen()
		if f < recordFields && r.err == nil {
			r.fail(fmt.Sprintf("record of %d fields", f))
		}
		addr := decodeAddr(&r)
		host := r.uint()
		replica, deleted := uint64(math.MaxUint64), false
		if !r.nilNext() {
			replica = r.uint()
		}
		exp := r.int()
		gen := r.uint()
		origin := r.uint()
		deleted = r.bool()
		r.skipRest(f - recordFields)
		if r.err != nil {
			break
		}
		nn := uint64(len(names))
		if host >= nn || origin >= nn || (replica != math.MaxUint64 && replica >= nn) ||
			deleted != (replica == math.MaxUint64) || gen > math.MaxUint32 {
			r.fail("record fields out of range")
			break
		}
		k, err := stickydb.NewKey(addr, names[host])
		if err != nil {
			r.fail(fmt.Sprintf("record key: %v", err))
			break
		}
		b := stickydb.Binding{Expiry: base + exp, Generation: uint32(gen), Origin: names[origin], Deleted: deleted}
		if !deleted {
			b.Replica = names[replica]
		}
		out = append(out, stickydb.Record{Key: k, Binding: b})
	}
	r.skipRest(extra)
	if r.err == nil && r.left() != 0 {
		r.fail("bytes after the chunk")
	}
	return out, names, r.err
}

// verifySnapshot is the first of two passes over a snapshot: it checks the
// magic, every frame's length and checksum, the chunk and record counts
// against the trailer, and reads the trailer. Only a snapshot that passes
// whole is loaded: its vector claims every event it reflects, and a vector
// restored without all its records would keep peers from sending them.
// The pass costs a read of the file and a CRC-32C of it (hardware, GB/s).
// problem says why the file is unusable; err is an I/O or ErrWrongNode.
func verifySnapshot(r io.Reader, size int64, node string, index uint64) (info snapInfo, problem, err error) {
	info = snapInfo{index: index, size: size}
	var magic [magicLen]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		if size == 0 {
			return info, fmt.Errorf("%w: empty file", errCorrupt), nil
		}
		return info, fmt.Errorf("%w: file of %d bytes is shorter than its magic", errTorn, size), nil
	}
	if string(magic[:]) != snapMagic {
		return info, fmt.Errorf("%w: magic %q, want %q", errCorrupt, magic[:], snapMagic), nil
	}
	fr := newFrameReader(r, magicLen, size, maxSnapBody)
	var names []string
	records := 0
	for {
		off := fr.off
		body, err := fr.next()
		if err == io.EOF {
			return info, fmt.Errorf("%w: no trailer after %d chunks", errTorn, info.chunks), nil
		}
		if err != nil {
			if errors.Is(err, errTorn) || errors.Is(err, errCorrupt) {
				return info, fmt.Errorf("%w (chunk %d, byte %d)", err, info.chunks+1, off), nil
			}
			return info, nil, err
		}
		r := mpReader{b: body}
		n := r.arrayLen()
		switch typ := r.uint(); {
		case r.err != nil:
			return info, fmt.Errorf("%w (frame at byte %d)", r.err, off), nil
		case typ == typeChunk:
			cr, _, nm, count, _ := chunkHead(body, names)
			names = nm
			if cr.err != nil {
				return info, fmt.Errorf("%w (chunk %d, byte %d)", cr.err, info.chunks+1, off), nil
			}
			info.chunks++
			records += count
		case typ == typeTrailer && n >= trailerFields:
			m := &info.meta
			m.Node = r.str()
			idx := r.uint()
			m.Epoch = r.int()
			m.Seq = r.uint()
			m.Taken = r.int()
			count := r.uint()
			chunks := r.uint()
			m.Vector = decodeVector(&r)
			r.skipRest(n - trailerFields)
			m.Count = records
			switch {
			case r.err != nil:
				return info, fmt.Errorf("%w (trailer)", r.err), nil
			case r.left() != 0:
				return info, fmt.Errorf("%w: %d bytes after the trailer's fields", errCorrupt, r.left()), nil
			case m.Node != node:
				return info, nil, fmt.Errorf("%w: snapshot of %q, this node is %q", ErrWrongNode, m.Node, node)
			case idx != index:
				return info, fmt.Errorf("%w: trailer says snapshot %d, file name says %d", errCorrupt, idx, index), nil
			case m.Epoch <= 0:
				return info, fmt.Errorf("%w: epoch %d", errCorrupt, m.Epoch), nil
			case count != uint64(records) || chunks != uint64(info.chunks):
				return info, fmt.Errorf("%w: trailer counts %d records in %d chunks, file holds %d in %d",
					errCorrupt, count, chunks, records, info.chunks), nil
			}
			if fr.off != size {
				return info, fmt.Errorf("%w: %d bytes after the trailer", errCorrupt, size-fr.off), nil
			}
			return info, nil, nil
		default:
			return info, fmt.Errorf("%w: frame of type %d with %d fields at byte %d", errCorrupt, typ, n, off), nil
		}
	}
}

// loadResult is what loading a snapshot's records did.
type loadResult struct {
	records  int   // records decoded
	changed  int   // records that changed the table
	badChunk error // a chunk that checked out but did not decode (a writer bug): the rest still loads
	mergeErr error // the first error MergeRecords gave (an expiry over cap, an origin over its cap)
}

// loadSnapshot is the second pass: one goroutine reads frames, workers
// decode chunks and merge them into db. The merge rule is a
// join-semilattice, so chunks may be merged in any order and at once.
// Buffers travel in a fixed ring, which bounds the memory to a few chunks.
func loadSnapshot(path string, db *stickydb.DB, now time.Time, workers int) (loadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return loadResult{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return loadResult{}, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if _, err := br.Discard(magicLen); err != nil {
		return loadResult{}, err
	}
	fr := newFrameReader(br, magicLen, st.Size(), maxSnapBody)

	free := make(chan []byte, 2*workers+1)
	for range cap(free) {
		free <- nil
	}
	jobs := make(chan []byte, 2*workers)
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			var recs []stickydb.Record
			var names []string
			for body := range jobs {
				var derr error
				recs, names, derr = decodeChunk(body, recs[:0], names)
				changed, merr := db.MergeRecords(recs, now)
				free <- body
				mu.Lock()
				res.records += len(recs)
				res.changed += changed
				if derr != nil && res.badChunk == nil {
					res.badChunk = derr
				}
				if merr != nil && res.mergeErr == nil {
					res.mergeErr = merr
				}
				mu.Unlock()
			}
		})
	}
	var rerr error
	for {
		fr.body = <-free
		body, err := fr.next()
		if err != nil {
			if err != io.EOF {
				rerr = err // verified a moment ago: an I/O error, or the file changed
			}
			break
		}
		if r := (mpReader{b: body}); r.arrayLen() > 0 && r.uint() == typeTrailer {
			break
		}
		jobs <- body
	}
	close(jobs)
	wg.Wait()
	return res, rerr
}

// sortSnaps orders snapshot indexes newest first.
func sortSnaps(idx []uint64) { sort.Slice(idx, func(i, j int) bool { return idx[i] > idx[j] }) }
