package proxy

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// respWriter wraps the client's ResponseWriter for one request: it records
// the status for metrics and logs, and carries what ErrorHandler learns
// back to ServeHTTP (ReverseProxy hands ErrorHandler the same writer it
// was given), so that no request context value is needed. Flush and Hijack
// reach the real writer through Unwrap (http.ResponseController), which is
// how ReverseProxy streams and upgrades. Pooled: no allocation per request.
type respWriter struct {
	http.ResponseWriter
	status  int
	written bool // a final status (>= 200, or 101) went out

	be      *backend // the replica being tried
	err     error    // the error ErrorHandler saw, if any
	retry   bool     // ErrorHandler asks for one more try elsewhere
	retried bool     // the one retry was used
	// body tracks the request body when there is one. Not pooled: the
	// transport may still read a body after the handler returned.
	body *trackBody

	writeIdle time.Duration // Timeouts.WriteIdle; <= 0 is off
	wdl       time.Time     // the write deadline set last
}

var writerPool = sync.Pool{New: func() any { return new(respWriter) }}

func getWriter(w http.ResponseWriter) *respWriter {
	rw := writerPool.Get().(*respWriter)
	rw.ResponseWriter = w
	return rw
}

func putWriter(rw *respWriter) {
	rw.ResponseWriter, rw.status, rw.written = nil, 0, false
	rw.be, rw.err, rw.retry, rw.retried = nil, nil, false, false
	rw.body = nil
	rw.writeIdle, rw.wdl = 0, time.Time{}
	writerPool.Put(rw)
}

func (w *respWriter) WriteHeader(code int) {
	if !w.written {
		w.status = code
		w.written = code >= 200 || code == http.StatusSwitchingProtocols
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.written {
		w.status, w.written = http.StatusOK, true
	}
	w.writeDeadline()
	return w.ResponseWriter.Write(p)
}

// Flush lets streamed responses through without the ResponseController's
// interface walk.
func (w *respWriter) Flush() {
	w.writeDeadline()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the real writer (Hijack for
// upgrades, deadlines).
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bodyUnread reports whether the request body, if any, is untouched: only
// then may the request go to another replica.
func (w *respWriter) bodyUnread() bool { return w.body == nil || !w.body.read.Load() }

// trackBody notes whether a request body was read. Close is left to the
// server, which closes the body after the handler returns: a retry must be
// able to send the body that a failed attempt never read.
type trackBody struct {
	rc   io.ReadCloser
	read atomic.Bool // the transport may read from its own goroutine
}

func (b *trackBody) Read(p []byte) (int, error) {
	if !b.read.Load() {
		b.read.Store(true)
	}
	return b.rc.Read(p)
}

func (b *trackBody) Close() error { return nil }

// bufferPool is ReverseProxy's copy-buffer pool. A bounded channel rather
// than sync.Pool: putting a []byte into a sync.Pool allocates its header.
type bufferPool struct {
	size int
	free chan []byte
}

func newBufferPool(size, keep int) *bufferPool {
	return &bufferPool{size: size, free: make(chan []byte, keep)}
}

func (b *bufferPool) Get() []byte {
	select {
	case buf := <-b.free:
		return buf
	default:
		return make([]byte, b.size)
	}
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != b.size {
		return
	}
	select {
	case b.free <- buf[:b.size]:
	default:
	}
}
