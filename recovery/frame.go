package recovery

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Every file starts with an 8-byte magic whose last character is the format
// version, then holds frames (see doc.go). Only ever append new versions.
const (
	walMagic  = "TETHWAL1"
	snapMagic = "TETHSNP1"
	magicLen  = 8

	frameHeader = 8 // length uint32 LE + CRC-32C uint32 LE

	// maxWALBody bounds a log record. The largest event (a 253-byte host,
	// two 255-byte names, a 16-byte address, numbers) is under 900 bytes.
	maxWALBody = 4096
	// maxSnapBody bounds a snapshot frame: a chunk is closed once its
	// records pass maxChunkBytes, and the trailer's vector is small, so
	// anything near this is corruption.
	maxSnapBody     = 16 << 20
	maxChunkBytes   = 1 << 20
	maxChunkRecords = 65536
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameCRC is the checksum of a frame: CRC-32C over the four length bytes
// followed by the body, so a flipped length bit is caught even when the
// claimed length happens to fit the file.
func frameCRC(lenBytes, body []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, lenBytes), castagnoli, body)
}

// sealFrame fills in the header of the frame that starts at buf[start:]:
// its 8 header bytes were reserved there and the body follows them.
func sealFrame(buf []byte, start int) {
	body := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], frameCRC(buf[start:start+4], body))
}

// frameReader reads frames one by one, checking each before handing it out.
type frameReader struct {
	r    *bufio.Reader
	off  int64 // offset of the next frame in the file
	size int64 // file size: a length that runs past it is a torn record
	max  int
	body []byte
}

func newFrameReader(r io.Reader, off, size int64, max int) *frameReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	return &frameReader{r: br, off: off, size: size, max: max}
}

// next returns the next frame's body, valid until the next call. At a clean
// end it returns io.EOF. A frame that ends early is errTorn; a bad length or
// checksum is errCorrupt; both wrapped with what was seen. fr.off stays at
// the start of the bad frame, which is where the file is cut.
func (fr *frameReader) next() ([]byte, error) {
	var hdr [frameHeader]byte
	n, err := io.ReadFull(fr.r, hdr[:])
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: frame header cut after %d of %d bytes", errTorn, n, frameHeader)
	case err != nil:
		return nil, err
	}
	length := binary.LittleEndian.Uint32(hdr[:4])
	switch {
	case length == 0:
		return nil, fmt.Errorf("%w: zero length (a zero-filled tail?)", errCorrupt)
	case int64(length) > int64(fr.max):
		return nil, fmt.Errorf("%w: length %d over the limit of %d", errCorrupt, length, fr.max)
	case fr.off+frameHeader+int64(length) > fr.size:
		return nil, fmt.Errorf("%w: record of %d bytes cut after %d", errTorn, length, fr.size-fr.off-frameHeader)
	}
	if cap(fr.body) < int(length) {
		fr.body = make([]byte, length)
	}
	body := fr.body[:length]
	if n, err := io.ReadFull(fr.r, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return nil, fmt.Errorf("%w: record of %d bytes cut after %d", errTorn, length, n)
		}
		return nil, err
	}
	if want, got := binary.LittleEndian.Uint32(hdr[4:]), frameCRC(hdr[:4], body); want != got {
		return nil, fmt.Errorf("%w: checksum %08x, record says %08x", errCorrupt, got, want)
	}
	fr.off += frameHeader + int64(length)
	return body, nil
}
