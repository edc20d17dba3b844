package recovery

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestMPReaderAgreesWithVmihailenco encodes values of every size class
// with vmihailenco's Encoder and reads them back with mpReader.
func TestMPReaderAgreesWithVmihailenco(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	for range 200 {
		ints = append(ints, int64(rng.Uint64()), int64(rng.Uint32()), -int64(rng.Uint32()))
	}
	strs := []string{"", "a", strings.Repeat("x", 31), strings.Repeat("y", 32), strings.Repeat("z", 255),
		strings.Repeat("w", 256), strings.Repeat("v", 70000)}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(len(ints) + len(strs)*2 + 3)
	for _, v := range ints {
		_ = enc.EncodeInt(v)
	}
	for _, s := range strs {
		_ = enc.EncodeString(s)
		_ = enc.EncodeBytes([]byte(s))
	}
	_ = enc.EncodeNil()
	_ = enc.EncodeBool(true)
	_ = enc.EncodeBool(false)

	r := mpReader{b: buf.Bytes()}
	if n := r.arrayLen(); n != len(ints)+len(strs)*2+3 {
		t.Fatalf("array of %d", n)
	}
	for _, v := range ints {
		if got := r.int(); got != v {
			t.Fatalf("int %d read as %d (%v)", v, got, r.err)
		}
	}
	for _, s := range strs {
		if got := r.str(); got != s {
			t.Fatalf("str of %d read as %d bytes (%v)", len(s), len(got), r.err)
		}
		if got := r.raw(); string(got) != s {
			t.Fatalf("bytes of %d read as %d (%v)", len(s), len(got), r.err)
		}
	}
	if !r.nilNext() || !r.bool() || r.bool() || r.err != nil || r.left() != 0 {
		t.Fatalf("tail: err %v, %d left", r.err, r.left())
	}

	// uint refuses negatives; skip steps over everything.
	r = mpReader{b: buf.Bytes()}
	r.arrayLen()
	for _, v := range ints {
		got := r.uint()
		if (v < 0) != (r.err != nil) || (v >= 0 && got != uint64(v)) {
			t.Fatalf("uint of %d: %d, %v", v, got, r.err)
		}
		r.err = nil
	}
	r = mpReader{b: buf.Bytes()}
	r.skip(0)
	if r.err != nil || r.left() != 0 {
		t.Fatalf("skip: %v, %d left", r.err, r.left())
	}
}

// TestMPReaderBounds: lengths that claim more than the input holds fail
// before anything is allocated or sliced.
func TestMPReaderBounds(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		read func(r *mpReader)
	}{
		{"array32 of 4G", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, func(r *mpReader) { r.arrayLen() }},
		{"map32 of 4G", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, func(r *mpReader) { r.mapLen() }},
		{"str32 of 4G", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, func(r *mpReader) { r.raw() }},
		{"bin16 past end", []byte{0xc5, 0x01, 0x00, 1, 2}, func(r *mpReader) { r.raw() }},
		{"uint64 cut", []byte{0xcf, 1, 2}, func(r *mpReader) { r.uint() }},
		{"uint64 over int64", []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, func(r *mpReader) { r.int() }},
		{"empty", nil, func(r *mpReader) { r.int() }},
		{"deep nesting", bytes.Repeat([]byte{0x91}, 20), func(r *mpReader) { r.skip(0) }},
		{"ext type", []byte{0xd4, 1, 2}, func(r *mpReader) { r.skip(0) }},
		{"string where int", []byte{0xa1, 'x'}, func(r *mpReader) { r.int() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mpReader{b: tc.in}
			tc.read(&r)
			if !errors.Is(r.err, errCorrupt) {
				t.Fatalf("err %v, want errCorrupt", r.err)
			}
		})
	}
}

// TestRecordsAreMsgpack: what the log and snapshots hold is msgpack any
// tool can read (vmihailenco's generic decoder here).
func TestRecordsAreMsgpack(t *testing.T) {
	clk := newClock(t0)
	db := newDB(t, "a", clk.Now())
	workload(t, db, clk, 0, 50)
	g := db.Unpersisted(0, 1000)
	fb := newFrameBuf()
	fb.header(segHeader{Node: "a", Index: 1, Epoch: g.Epoch, Created: 5})
	for i := range g.Events {
		fb.event("a", g.Epoch, &g.Events[i])
	}
	fb.mark(7, markClose)
	data := fb.bytes()
	n := 0
	for off := 0; off < len(data); n++ {
		l := int(uint32(data[off]) | uint32(data[off+1])<<8 | uint32(data[off+2])<<16 | uint32(data[off+3])<<24)
		body := data[off+frameHeader : off+frameHeader+l]
		v, err := msgpack.NewDecoder(bytes.NewReader(body)).DecodeInterface()
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		if _, ok := v.([]any); !ok {
			t.Fatalf("frame %d is %T, want an array", n, v)
		}
		var rec walRecord
		if err := decodeWAL(body, "a", &rec); err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		if n > 0 && n <= len(g.Events) && rec.event != g.Events[n-1] {
			t.Fatalf("event %d: %+v, want %+v", n, rec.event, g.Events[n-1])
		}
		off += frameHeader + l
	}
	if n != len(g.Events)+2 {
		t.Fatalf("%d frames, want %d", n, len(g.Events)+2)
	}
}
