package gossip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// genMsgpack draws bytes that are mostly msgpack values of the kinds the
// wire uses (every integer form, str and bin of every header size, nil,
// booleans), with stray codes, wrong lengths and a cut anywhere mixed in.
func genMsgpack(t *rapid.T) []byte {
	var b []byte
	for range rapid.IntRange(0, 12).Draw(t, "values") {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0: // fixints, nil, booleans: one byte of any value
			b = append(b, rapid.Byte().Draw(t, "byte"))
		case 1, 2: // sized integers
			c := rapid.SampledFrom([]byte{0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3}).Draw(t, "int code")
			v := rapid.Uint64().Draw(t, "int bits")
			var p [8]byte
			binary.BigEndian.PutUint64(p[:], v)
			b = append(b, c)
			b = append(b, p[8-(1<<((c-0xcc)%4)):]...)
		case 3, 4: // str and bin headers with their bytes (or fewer)
			c := rapid.SampledFrom([]byte{0xa0, 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6}).Draw(t, "bytes code")
			n := rapid.IntRange(0, 40).Draw(t, "len")
			switch c {
			case 0xa0:
				n %= 32
				b = append(b, c|byte(n))
			case 0xd9, 0xc4:
				b = append(b, c, byte(n))
			case 0xda, 0xc5:
				b = binary.BigEndian.AppendUint16(append(b, c), uint16(n))
			default:
				b = binary.BigEndian.AppendUint32(append(b, c), uint32(n))
			}
			b = append(b, rapid.SliceOfN(rapid.Byte(), 0, n).Draw(t, "payload")...)
		case 5: // a huge claimed length
			b = append(b, 0xdb, 0xff, 0xff, 0xff, 0xf0)
		default: // values as msgpack's own encoder writes them
			var buf bytes.Buffer
			enc := msgpack.NewEncoder(&buf)
			switch rapid.IntRange(0, 3).Draw(t, "enc") {
			case 0:
				_ = enc.EncodeUint(rapid.Uint64().Draw(t, "uint"))
			case 1:
				_ = enc.EncodeInt(rapid.Int64().Draw(t, "int"))
			case 2:
				_ = enc.EncodeString(rapid.StringN(0, 300, -1).Draw(t, "str"))
			default:
				_ = enc.EncodeBytes(rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "bin"))
			}
			b = append(b, buf.Bytes()...)
		}
	}
	if cut := rapid.IntRange(0, len(b)).Draw(t, "cut"); rapid.Bool().Draw(t, "truncate") {
		b = b[:cut]
	}
	return b
}

// TestReaderMatchesMsgpack: the reader's own msgpack decoding gives what
// msgpack's Decoder gives, value for value, for any bytes and any order of
// reads: the same integers (as uint64 and as int64), the same str/bin
// lengths and bytes, the same booleans and nils, and an error exactly
// where the Decoder fails. Every message of every tether version was
// decoded by that Decoder.
func TestReaderMatchesMsgpack(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := genMsgpack(t)
		dec := msgpack.NewDecoder(bytes.NewReader(body))
		src := bytes.NewReader(body)
		dec.Reset(src)
		r := &reader{b: body}
		for i := range rapid.IntRange(1, 16).Draw(t, "reads") {
			op := rapid.IntRange(0, 4).Draw(t, fmt.Sprintf("op %d", i))
			var want, got string
			var wantErr, gotErr error
			switch op {
			case 0:
				v, err := dec.DecodeUint64()
				want, wantErr = fmt.Sprint(v), err
				u, err := r.number("uint64")
				got, gotErr = fmt.Sprint(u), err
			case 1:
				v, err := dec.DecodeInt64()
				want, wantErr = fmt.Sprint(v), err
				u, err := r.number("int64")
				got, gotErr = fmt.Sprint(int64(u)), err
			case 2:
				n, err := dec.DecodeBytesLen()
				wantErr = err
				if err == nil && n > 0 {
					p := make([]byte, n)
					if n > src.Len() {
						p = nil // the reader refuses before reading
						wantErr = fmt.Errorf("short")
					} else if wantErr = dec.ReadFull(p); wantErr == nil {
						want = fmt.Sprintf("%d %x", n, p)
					}
				} else if err == nil {
					want = fmt.Sprint(n)
				}
				m, err := r.bytesLen()
				gotErr = err
				if err == nil && m > 0 {
					p, err := r.next(m)
					if gotErr = err; err == nil {
						got = fmt.Sprintf("%d %x", m, p)
					}
				} else if err == nil {
					got = fmt.Sprint(m)
				}
			case 3:
				v, err := dec.DecodeBool()
				want, wantErr = fmt.Sprint(v), err
				// reader.boolean folds its error into r.err.
				g := &reader{b: r.b, off: r.off}
				got = fmt.Sprint(g.boolean("b"))
				gotErr = g.err
				r.off = g.off
			default:
				c, err := dec.PeekCode()
				wantErr = err
				isNil := err == nil && c == 0xc0
				if isNil {
					_ = dec.DecodeNil()
				}
				want = fmt.Sprint(isNil)
				g := &reader{b: r.b, off: r.off}
				got = fmt.Sprint(g.isNil())
				gotErr = g.err
				r.off = g.off
			}
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("read %d (op %d) of %x: msgpack %q err %v, reader %q err %v", i, op, body, want, wantErr, got, gotErr)
			}
			if wantErr != nil {
				return // both failed: a decoder stops at its first error
			}
			if want != got {
				t.Fatalf("read %d (op %d) of %x: msgpack %s, reader %s", i, op, body, want, got)
			}
			if left := src.Len(); left != r.left() {
				t.Fatalf("read %d (op %d) of %x: msgpack left %d bytes, reader %d", i, op, body, left, r.left())
			}
		}
	})
}
