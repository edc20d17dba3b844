package recovery

import (
	"encoding/binary"
	"fmt"
	"math"
)

// mpReader decodes the msgpack subset our records use, straight from a
// byte slice: no reflection, no interface calls, no allocation except for
// the strings a caller asks for. Loading a million snapshot records is
// decoding-bound, and vmihailenco's Decoder costs several times more per
// field (see BenchmarkDecodeChunk). Records are written with vmihailenco's
// Encoder; the tests decode its output with both.
//
// Every length is checked against the bytes that remain before anything
// is sliced or allocated, so a corrupt length cannot make it allocate more
// than the record it reads. Errors are sticky: after the first, every call
// returns a zero value and err says where it went wrong.
type mpReader struct {
	b   []byte
	i   int
	err error
}

func (r *mpReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: msgpack %s at byte %d", errCorrupt, what, r.i)
	}
}

func (r *mpReader) left() int { return len(r.b) - r.i }

// take returns the next n bytes.
func (r *mpReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.left() {
		r.fail("length past the end")
		return nil
	}
	s := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return s
}

func (r *mpReader) code() byte {
	if r.err != nil {
		return 0
	}
	if r.i >= len(r.b) {
		r.fail("value past the end")
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *mpReader) u8() uint64 {
	if s := r.take(1); s != nil {
		return uint64(s[0])
	}
	return 0
}

func (r *mpReader) u16() uint64 {
	if s := r.take(2); s != nil {
		return uint64(binary.BigEndian.Uint16(s))
	}
	return 0
}

func (r *mpReader) u32() uint64 {
	if s := r.take(4); s != nil {
		return uint64(binary.BigEndian.Uint32(s))
	}
	return 0
}

func (r *mpReader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

// arrayLen reads an array header. Every element takes at least one byte,
// so a count larger than what remains is corrupt.
func (r *mpReader) arrayLen() int {
	var n uint64
	switch c := r.code(); {
	case c >= 0x90 && c <= 0x9f:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n = r.u16()
	case c == 0xdd:
		n = r.u32()
	default:
		r.fail("array expected")
		return 0
	}
	if n > uint64(r.left()) {
		r.fail("array count past the end")
		return 0
	}
	return int(n)
}

// mapLen reads a map header; each pair takes at least two bytes.
func (r *mpReader) mapLen() int {
	var n uint64
	switch c := r.code(); {
	case c >= 0x80 && c <= 0x8f:
		n = uint64(c & 0x0f)
	case c == 0xde:
		n = r.u16()
	case c == 0xdf:
		n = r.u32()
	default:
		r.fail("map expected")
		return 0
	}
	if 2*n > uint64(r.left()) {
		r.fail("map count past the end")
		return 0
	}
	return int(n)
}

// int reads any integer format into an int64.
func (r *mpReader) int() int64 {
	c := r.code()
	switch {
	case c <= 0x7f:
		return int64(c)
	case c >= 0xe0:
		return int64(int8(c))
	}
	var u uint64
	switch c {
	case 0xcc:
		u = r.u8()
	case 0xcd:
		u = r.u16()
	case 0xce:
		u = r.u32()
	case 0xcf:
		u = r.u64()
		if u > math.MaxInt64 {
			r.fail("integer over int64")
			return 0
		}
	case 0xd0:
		return int64(int8(r.u8()))
	case 0xd1:
		return int64(int16(r.u16()))
	case 0xd2:
		return int64(int32(r.u32()))
	case 0xd3:
		return int64(r.u64())
	default:
		r.fail("integer expected")
		return 0
	}
	return int64(u)
}

// uint reads a non-negative integer.
func (r *mpReader) uint() uint64 {
	c := r.code()
	switch {
	case c <= 0x7f:
		return uint64(c)
	case c == 0xcc:
		return r.u8()
	case c == 0xcd:
		return r.u16()
	case c == 0xce:
		return r.u32()
	case c == 0xcf:
		return r.u64()
	}
	if r.err == nil {
		r.i--
		if v := r.int(); v >= 0 && r.err == nil {
			return uint64(v)
		}
		r.fail("unsigned integer expected")
	}
	return 0
}

// raw reads a str or bin value and returns its bytes, aliasing the input.
func (r *mpReader) raw() []byte {
	var n uint64
	switch c := r.code(); {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n = r.u8()
	case c == 0xda || c == 0xc5:
		n = r.u16()
	case c == 0xdb || c == 0xc6:
		n = r.u32()
	default:
		r.fail("string or bytes expected")
		return nil
	}
	if r.err != nil {
		return nil
	}
	if n > uint64(r.left()) {
		r.fail("string length past the end")
		return nil
	}
	return r.take(int(n))
}

func (r *mpReader) str() string { return string(r.raw()) }

// nilNext consumes a nil and reports true, or leaves anything else alone.
func (r *mpReader) nilNext() bool {
	if r.err == nil && r.i < len(r.b) && r.b[r.i] == 0xc0 {
		r.i++
		return true
	}
	return false
}

func (r *mpReader) bool() bool {
	switch r.code() {
	case 0xc2:
		return false
	case 0xc3:
		return true
	}
	r.fail("bool expected")
	return false
}

// skip steps over one value of any kind, so that a newer writer may append
// fields to a record that this reader does not know (see doc.go).
func (r *mpReader) skip(depth int) {
	if depth > 8 {
		r.fail("nesting too deep")
		return
	}
	if r.err != nil || r.i >= len(r.b) {
		r.fail("value past the end")
		return
	}
	c := r.b[r.i]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		r.i++
	case c == 0xcc || c == 0xd0:
		r.i++
		r.take(1)
	case c == 0xcd || c == 0xd1:
		r.i++
		r.take(2)
	case c == 0xce || c == 0xd2 || c == 0xca:
		r.i++
		r.take(4)
	case c == 0xcf || c == 0xd3 || c == 0xcb:
		r.i++
		r.take(8)
	case (c >= 0xa0 && c <= 0xbf) || (c >= 0xc4 && c <= 0xc6) || (c >= 0xd9 && c <= 0xdb):
		r.raw()
	case (c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd:
		for n := r.arrayLen(); n > 0 && r.err == nil; n-- {
			r.skip(depth + 1)
		}
	case (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf:
		for n := r.mapLen(); n > 0 && r.err == nil; n-- {
			r.skip(depth + 1)
			r.skip(depth + 1)
		}
	default:
		r.fail(fmt.Sprintf("unsupported code %#x", c))
	}
}

// skipRest steps over the n fields of a record this reader does not know.
func (r *mpReader) skipRest(n int) {
	for ; n > 0 && r.err == nil; n-- {
		r.skip(0)
	}
}
