package proxy

import (
	"golang.org/x/net/http/httpguts"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loopWriter is the loop's http.ResponseWriter, reused for every request
// of its connection. It frames the response as net/http's server does:
// the body is held until it passes 2 KiB or the handler flushes or
// returns; a body written whole by then gets a Content-Length, a longer
// one is chunked unless the handler set Content-Length; HEAD, 1xx, 204
// and 304 responses have none.
type loopWriter struct {
	lc *loopConn
	h  http.Header

	head       bool // a HEAD request
	reqClose   bool // the request asked to close
	status     int
	wroteHdr   bool // WriteHeader (final) called
	committed  bool // the head went out
	chunked    bool
	cl         int64 // the declared Content-Length, -1 none
	written    int64 // body bytes taken from the handler
	closeAfter bool
	hold       []byte   // body held before the head goes out
	trailers   []string // announced at WriteHeader
	skip       []string // of those, the ones not set then: not in the head
	failed     error
	extra      [10]string // fields the server adds, name and value pairs
}

func (w *loopWriter) reset(head, reqClose bool) {
	if w.h == nil {
		w.h = make(http.Header, 8)
	}
	clear(w.h)
	w.head, w.reqClose = head, reqClose
	w.status, w.wroteHdr, w.committed, w.chunked = 0, false, false, false
	w.cl, w.written, w.closeAfter, w.failed = -1, 0, reqClose, nil
	w.hold, w.trailers, w.skip = w.hold[:0], w.trailers[:0], w.skip[:0]
}

func (w *loopWriter) Header() http.Header { return w.h }

func (w *loopWriter) WriteHeader(code int) {
	if w.wroteHdr {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once, with the header
		// as it is (net/http does the same), and the handler goes on.
		bw := w.lc.bw
		writeStatusLine(bw, code)
		writeFields(bw, w.h, nil, nil)
		_, _ = bw.WriteString("\r\n")
		if err := bw.Flush(); err != nil {
			w.failed = err
		}
		return
	}
	w.wroteHdr, w.status = true, code
	// The trailers announced now are the ones sent; a field of theirs
	// already set goes out in the head too, as net/http's snapshot of the
	// header at this point would send it.
	w.declareTrailers()
	w.skip = w.skip[:0]
	for _, k := range w.trailers {
		if _, set := w.h[k]; !set {
			w.skip = append(w.skip, k)
		}
	}
	if v := w.h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(w.h, "Content-Length") // net/http logs and drops a bad one
		}
	}
}

// bodyAllowed reports whether the status may carry a body.
func (w *loopWriter) bodyAllowed() bool {
	return !(w.status >= 100 && w.status <= 199 || w.status == http.StatusNoContent || w.status == http.StatusNotModified)
}

func (w *loopWriter) Write(p []byte) (int, error) {
	if !w.wroteHdr {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed != nil {
		return 0, w.failed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if len(w.hold)+len(p) <= bufferToChunk {
			w.hold = append(w.hold, p...)
			return len(p), nil
		}
		w.commit(false, p)
		if w.failed != nil {
			return 0, w.failed
		}
	}
	if w.head {
		return len(p), nil // net/http frames a HEAD body as if sent, and drops it
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeBody sends p, as a chunk when chunked.
func (w *loopWriter) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	bw := w.lc.bw
	if w.chunked {
		_, _ = bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.failed = err
	}
	return err
}

// Flush sends the head and what is held; the response is chunked from
// then on unless its length was declared.
func (w *loopWriter) Flush() {
	if !w.wroteHdr {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	if w.failed == nil {
		if err := w.lc.bw.Flush(); err != nil {
			w.failed = err
		}
	}
}

// FlushError is Flush that reports the error (http.ResponseController).
func (w *loopWriter) FlushError() error {
	w.Flush()
	return w.failed
}

// SetWriteDeadline and SetReadDeadline serve http.ResponseController.
func (w *loopWriter) SetWriteDeadline(t time.Time) error { return w.lc.setWriteDeadline(t) }
func (w *loopWriter) SetReadDeadline(t time.Time) error {
	w.lc.rdlDirty.Store(true) // the raw mode's next wait sets its own
	return w.lc.c.SetReadDeadline(t)
}

// commit writes the status line and header, then what is held. whole:
// the handler returned, so a held body's length is known. next is the
// write that does not fit in the hold (sniffed when nothing is held).
func (w *loopWriter) commit(whole bool, next []byte) {
	w.committed = true
	h, bw := w.h, w.lc.bw
	hasBody := w.bodyAllowed()
	extra := w.extra[:0] // fields the server adds, written after the handler's
	if _, ok := h["Date"]; !ok {
		extra = append(extra, "Date", httpDate())
	}
	sniff := w.hold
	if len(sniff) == 0 {
		sniff = next
	}
	if hasBody && len(sniff) > 0 && !hasKey(h, "Content-Type") && !hasKey(h, "Transfer-Encoding") && h.Get("Content-Encoding") == "" {
		extra = append(extra, "Content-Type", http.DetectContentType(sniff))
	}
	te := ""
	if v := h["Transfer-Encoding"]; len(v) > 0 {
		te = v[0]
	}
	// The length goes out as WriteHeader saw it (w.cl), never as a field
	// set after: net/http sends the header as it was then, and two lengths
	// would be a framing ambiguity.
	delete(h, "Content-Length")
	if w.cl >= 0 && hasBody && !(te != "" && te != "identity") {
		extra = append(extra, "Content-Length", strconv.FormatInt(w.cl, 10))
	}
	if !hasBody {
		delete(h, "Transfer-Encoding")
		if w.status == http.StatusNotModified {
			delete(h, "Content-Type")
		}
	}
	if w.cl >= 0 && te != "" && te != "identity" {
		w.cl = -1 // net/http ignores a length beside a coding
	}
	switch {
	case !hasBody || w.cl >= 0:
		delete(h, "Transfer-Encoding")
	case whole && te == "" && len(w.trailers) == 0 && (!w.head || len(w.hold) > 0):
		extra = append(extra, "Content-Length", strconv.Itoa(len(w.hold)))
	case w.head:
		delete(h, "Transfer-Encoding")
	case te == "identity":
		// No framing: the body ends when the connection closes.
		delete(h, "Transfer-Encoding")
		w.closeAfter = true
	default:
		w.chunked = true
		delete(h, "Transfer-Encoding")
		delete(h, "Content-Length")
		extra = append(extra, "Transfer-Encoding", "chunked")
	}
	if valuesHaveToken(h["Connection"], "close") {
		w.closeAfter = true
	} else if w.closeAfter || w.lc.s.closing.Load() {
		w.closeAfter = true
		delete(h, "Connection") // net/http replaces the handler's (keep-alive, say) with close
		extra = append(extra, "Connection", "close")
	}
	writeStatusLine(bw, w.status)
	writeFields(bw, h, w.skip, extra)
	_, _ = bw.WriteString("\r\n")
	if len(w.hold) > 0 && !w.head {
		_ = w.writeBody(w.hold)
	}
	w.hold = w.hold[:0]
}

// declareTrailers records the trailers the handler announced in its
// Trailer field when the head goes out (as net/http: one announced later is
// not sent).
func (w *loopWriter) declareTrailers() {
	w.trailers = w.trailers[:0]
	for _, v := range w.h["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
				w.trailers = append(w.trailers, k)
			}
		}
	}
}

// finish completes the response after the handler returned; false when
// the connection cannot be used again.
func (w *loopWriter) finish() bool {
	if !w.wroteHdr {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	bw := w.lc.bw
	if w.chunked && w.failed == nil {
		_, _ = bw.WriteString("0\r\n")
		// The announced trailers, then any set with http.TrailerPrefix.
		for k, vv := range w.h {
			name, prefixed := strings.CutPrefix(k, http.TrailerPrefix)
			if !prefixed && !slices.Contains(w.trailers, k) ||
				!httpguts.ValidHeaderFieldName(name) || !httpguts.ValidTrailerHeader(name) {
				continue // as net/http: no bad names, nothing that frames or routes
			}
			for _, v := range vv {
				writeFieldLine(bw, name, v)
			}
		}
		_, _ = bw.WriteString("\r\n")
	}
	if w.failed == nil {
		if err := bw.Flush(); err != nil {
			w.failed = err
		}
	}
	if w.failed != nil {
		bw.Reset(w.lc.c)
		return false
	}
	if w.cl >= 0 && !w.head && w.bodyAllowed() && w.written != w.cl {
		return false // shorter than declared: the client must not wait for the rest
	}
	return true
}

func hasKey(h http.Header, k string) bool { _, ok := h[k]; return ok }

func writeStatusLine(bw interface{ WriteString(string) (int, error) }, code int) {
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.WriteString(strconv.Itoa(code))
	_, _ = bw.WriteString(" ")
	if text := http.StatusText(code); text != "" {
		_, _ = bw.WriteString(text)
	} else {
		_, _ = bw.WriteString("status code " + strconv.Itoa(code)) // as net/http
	}
	_, _ = bw.WriteString("\r\n")
}

// writeFields writes h (values with CR or LF replaced by spaces; names that
// are not tokens, trailers announced in skip and http.TrailerPrefix keys
// left out), then extra's pairs. Field order is the map's: it has no
// meaning in HTTP, and sorting as net/http does costs a slice per response.
func writeFields(bw interface{ WriteString(string) (int, error) }, h http.Header, skip []string, extra []string) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) || slices.Contains(skip, k) {
			continue
		}
		for _, v := range vv {
			writeFieldLine(bw, k, v)
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		writeFieldLine(bw, extra[i], extra[i+1])
	}
}

// writeFieldLine writes one field line, CR and LF in the value replaced by
// spaces (net/http's headerNewlineToSpace), the value trimmed.
func writeFieldLine(bw interface{ WriteString(string) (int, error) }, k, v string) {
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = headerValueReplacer.Replace(v)
	}
	_, _ = bw.WriteString(strings.TrimSpace(v))
	_, _ = bw.WriteString("\r\n")
}

var headerValueReplacer = strings.NewReplacer("\n", " ", "\r", " ")

// httpDate is the Date header's value, made once a second.
func httpDate() string {
	now := time.Now().Unix()
	dateCache.Lock()
	defer dateCache.Unlock()
	if dateCache.at != now {
		dateCache.at, dateCache.v = now, time.Unix(now, 0).UTC().Format(http.TimeFormat)
	}
	return dateCache.v
}

var dateCache struct {
	sync.Mutex
	at int64
	v  string
}
