package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The attacks below run against the edge's HTTP/2 server on a real TLS
// socket, with a handler that behaves like a slow replica (it ignores the
// stream's cancellation and holds its slot). Each test proves three
// things: the server bounds the handlers one connection can run, it
// closes or refuses the abusive connection, and a well-behaved client on
// another connection is served during the attack.

// slowHandler counts running handlers and their peak; each holds for hold
// (or until release is closed).
type slowHandler struct {
	hold    time.Duration
	release chan struct{}
	running atomic.Int64
	peak    atomic.Int64
	served  atomic.Int64
}

func (h *slowHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/fast" { // the victim's
		_, _ = io.WriteString(w, "ok")
		return
	}
	n := h.running.Add(1)
	defer h.running.Add(-1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	select {
	case <-time.After(h.hold):
	case <-h.release:
	}
	h.served.Add(1)
	_, _ = io.WriteString(w, "ok")
}

// attacker is a raw HTTP/2 client connection.
type attacker struct {
	t    *testing.T
	conn *tls.Conn
	bw   *bufio.Writer
	fr   *http2.Framer
	hdr  []byte // one HPACK-encoded GET /
	// what the reader saw
	goAway  atomic.Value // http2.ErrCode
	rsts    atomic.Int64
	closed  chan struct{} // the read side ended (GOAWAY read or EOF)
	readErr error
}

func dialAttacker(t *testing.T, addr string) *attacker {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "a.example", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q", p)
	}
	a := &attacker{t: t, conn: c, bw: bufio.NewWriterSize(c, 64<<10), closed: make(chan struct{})}
	t.Cleanup(func() { _ = c.Close() })
	a.fr = http2.NewFramer(a.bw, c)
	a.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a.example"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	a.hdr = buf.Bytes()
	_, _ = a.bw.WriteString(http2.ClientPreface)
	_ = a.fr.WriteSettings()
	_ = a.bw.Flush()
	go a.read()
	return a
}

func (a *attacker) read() {
	defer close(a.closed)
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			a.readErr = err
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = a.write(func() error { return a.fr.WriteSettingsAck() })
			}
		case *http2.RSTStreamFrame:
			a.rsts.Add(1)
		case *http2.GoAwayFrame:
			a.goAway.Store(f.ErrCode)
		}
	}
}

var wmu sync.Mutex // the framer's writes (attack loop, settings ack)

func (a *attacker) write(fn func() error) error {
	wmu.Lock()
	defer wmu.Unlock()
	_ = a.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return fn()
}

func (a *attacker) flush() error { return a.write(a.bw.Flush) }

// isClosed reports whether the server ended the connection.
func (a *attacker) isClosed() bool {
	select {
	case <-a.closed:
		return true
	default:
		return false
	}
}

// victim checks that a well-behaved HTTP/2 client is served while the
// attack runs.
func victim(t *testing.T, r *rig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.addr+"/fast", nil)
	resp, err := r.client(true).Do(req)
	if err != nil {
		t.Fatalf("a well-behaved client was not served during the attack: %v", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" || resp.ProtoMajor != 2 {
		t.Fatalf("victim got %q over %s", b, resp.Proto)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func h2Errors(r *rig, kind string) float64 {
	mfs, _ := r.errs.Gather()
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if strings.HasSuffix(l.GetValue(), kind) { // e.g. conn_ENHANCE_YOUR_CALM_too_many_early_resets
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, as fast as the
// socket takes them. The handlers do not stop when reset, so each reset
// stream would be free work for the attacker; the server must cap the
// running handlers and close the connection.
func TestH2RapidReset(t *testing.T) {
	h := &slowHandler{hold: 2 * time.Second, release: make(chan struct{})}
	r := newRig(t, h)
	defer close(h.release)
	a := dialAttacker(t, r.addr)
	const attempts = 20000
	sent := 0
	for id := uint32(1); sent < attempts && !a.isClosed(); id += 2 {
		err := a.write(func() error {
			if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.hdr, EndStream: true, EndHeaders: true}); err != nil {
				return err
			}
			return a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		})
		if err != nil {
			break
		}
		sent++
		if sent%100 == 0 && a.flush() != nil {
			break
		}
	}
	_ = a.flush()
	select {
	case <-a.closed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server kept a rapid-reset connection open after %d resets", sent)
	}
	if code, _ := a.goAway.Load().(http2.ErrCode); code != http2.ErrCodeEnhanceYourCalm {
		t.Logf("connection ended by %v (GOAWAY code %v)", a.readErr, code)
	}
	if p := h.peak.Load(); p > H2MaxConcurrentStreams {
		t.Fatalf("%d handlers ran at once; the cap is %d", p, H2MaxConcurrentStreams)
	}
	victim(t, r)
	if n := h2Errors(r, "too_many_early_resets"); n < 1 {
		t.Fatalf("too_many_early_resets counted %v times", n)
	}
	t.Logf("%d HEADERS+RST_STREAM sent before the server closed; peak handlers %d", sent, h.peak.Load())
}

// CONTINUATION flood (CVE-2023-45288): one HEADERS without END_HEADERS,
// then CONTINUATION frames of header bytes without end. The server must
// stop reading past its header limit and close, not buffer or decode
// without bound.
func TestH2ContinuationFlood(t *testing.T) {
	h := &slowHandler{hold: time.Millisecond}
	r := newRig(t, h)
	a := dialAttacker(t, r.addr)
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	_ = enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	junk := strings.Repeat("x", 1000)
	for buf.Len() < 15<<10 {
		_ = enc.WriteField(hpack.HeaderField{Name: "x-junk", Value: junk, Sensitive: true})
	}
	block := buf.Bytes()
	const limit = 64 << 20 // the attacker gives up after this many bytes
	sent := 0
	err := a.write(func() error {
		return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.hdr, EndHeaders: false})
	})
	for err == nil && sent < limit && !a.isClosed() {
		err = a.write(func() error { return a.fr.WriteContinuation(1, false, block) })
		sent += len(block)
		if err == nil && sent%(1<<20) < len(block) {
			err = a.flush()
		}
	}
	select {
	case <-a.closed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server kept reading a CONTINUATION flood (%d bytes sent)", sent)
	}
	if sent >= limit {
		t.Fatalf("the server took %d bytes of one header block", sent)
	}
	if h.served.Load() != 0 {
		t.Fatal("the flooded request reached the handler")
	}
	victim(t, r)
	t.Logf("connection closed after %d KiB of CONTINUATION (err %v, GOAWAY %v)", sent>>10, a.readErr, a.goAway.Load())
}

// One client opening 10,000 streams that stay open (no END_STREAM): the
// server runs at most H2MaxConcurrentStreams of them and refuses the rest
// stream by stream; others are served; the handlers are released when the
// connection goes.
func TestH2TenThousandStreams(t *testing.T) {
	h := &slowHandler{hold: time.Minute, release: make(chan struct{})}
	r := newRig(t, h)
	a := dialAttacker(t, r.addr)
	const streams = 10000
	opened := 0
	for id := uint32(1); opened < streams; id += 2 {
		err := a.write(func() error {
			return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.hdr, EndStream: false, EndHeaders: true})
		})
		if err == nil && opened%200 == 0 {
			err = a.flush()
		}
		if err != nil {
			t.Fatalf("after %d streams: %v", opened, err)
		}
		opened++
	}
	if err := a.flush(); err != nil && !a.isClosed() {
		t.Fatal(err)
	}
	waitFor(t, "refusals of the streams past the cap", func() bool {
		return a.rsts.Load() >= streams-H2MaxConcurrentStreams || a.isClosed()
	})
	if p := h.peak.Load(); p > H2MaxConcurrentStreams {
		t.Fatalf("%d handlers ran at once; the cap is %d", p, H2MaxConcurrentStreams)
	}
	victim(t, r)
	running := h.running.Load()
	_ = a.conn.Close()
	close(h.release)
	waitFor(t, "handlers to end", func() bool { return h.running.Load() == 0 })
	t.Logf("%d streams opened, %d refused, %d handlers ran at the peak (%d when the victim was served), GOAWAY %v",
		opened, a.rsts.Load(), h.peak.Load(), running, a.goAway.Load())
}
