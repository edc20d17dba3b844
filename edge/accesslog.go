package edge

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/proxy"
)

// AccessLog writes one line per request (proxy.AccessLog) without ever
// blocking a request: lines are formatted on the request's goroutine into
// pooled buffers and handed to one writer goroutine through a bounded
// queue; when the queue is full the line is dropped and counted
// (tether_access_log_dropped_total). Reopen (SIGUSR1) closes and reopens
// a file target, for logrotate.
type AccessLog struct {
	node     string
	combined bool
	target   string // "stdout", "stderr" or a path

	queue  chan *[]byte
	reopen chan chan error
	done   chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup

	json    zerolog.Logger // formats into the request's pooled buffer
	dropped prometheus.Counter
	lines   prometheus.Counter
	errLog  zerolog.Logger
}

// AccessLogQueue is the number of lines waiting for the writer at most.
const AccessLogQueue = 8192

// maxURI caps the logged path and query.
const maxURI = 1024

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// OpenAccessLog opens target ("stdout", "stderr" or a file path, appended
// to) and starts the writer. format is "json" or "combined". log gets
// write errors (nil: none); reg the metrics (nil: none).
func OpenAccessLog(target, format, node string, log *zerolog.Logger, reg prometheus.Registerer) (*AccessLog, error) {
	a := &AccessLog{node: node, combined: format == "combined", target: target,
		queue: make(chan *[]byte, AccessLogQueue), reopen: make(chan chan error), done: make(chan struct{}),
		errLog: zerolog.Nop(),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "tether_access_log_dropped_total",
			Help: "Access log lines dropped because the writer fell behind (the request was not delayed)."}),
		lines: prometheus.NewCounter(prometheus.CounterOpts{Name: "tether_access_log_lines_total",
			Help: "Access log lines written."}),
	}
	if log != nil {
		a.errLog = *log
	}
	if reg != nil {
		reg.MustRegister(a.dropped, a.lines)
	}
	w, err := a.open()
	if err != nil {
		return nil, err
	}
	a.wg.Add(1)
	go a.run(w)
	return a, nil
}

func (a *AccessLog) open() (io.WriteCloser, error) {
	switch a.target {
	case "stdout":
		return nopCloser{os.Stdout}, nil
	case "stderr":
		return nopCloser{os.Stderr}, nil
	}
	f, err := os.OpenFile(a.target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// run is the writer goroutine: it writes queued lines through a buffer
// and flushes whenever the queue is empty.
func (a *AccessLog) run(w io.WriteCloser) {
	defer a.wg.Done()
	bw := bufio.NewWriterSize(w, 64<<10)
	var lastErr time.Time
	write := func(p *[]byte) {
		if _, err := bw.Write(*p); err != nil && time.Since(lastErr) > time.Minute {
			lastErr = time.Now()
			a.errLog.Error().Err(err).Str("access_log", a.target).Msg("access log write failed")
		}
		a.lines.Inc()
		*p = (*p)[:0]
		linePool.Put(p)
	}
	for {
		select {
		case p := <-a.queue:
			write(p)
			for more := true; more; {
				select {
				case p := <-a.queue:
					write(p)
				default:
					more = false
				}
			}
			_ = bw.Flush()
		case reply := <-a.reopen:
			_ = bw.Flush()
			nw, err := a.open()
			if err == nil {
				_ = w.Close()
				w = nw
				bw.Reset(w)
			}
			reply <- err
		case <-a.done:
			for more := true; more; {
				select {
				case p := <-a.queue:
					write(p)
				default:
					more = false
				}
			}
			_ = bw.Flush()
			_ = w.Close()
			return
		}
	}
}

// Reopen closes and reopens a file target (logrotate's SIGUSR1); on an
// error the old file stays in use.
func (a *AccessLog) Reopen() error {
	if a.closed.Load() {
		return errors.New("access log: closed")
	}
	reply := make(chan error, 1)
	select {
	case a.reopen <- reply:
		return <-reply
	case <-a.done:
		return errors.New("access log: closed")
	}
}

// Close writes what is queued and closes the target. Log calls after it
// are dropped.
func (a *AccessLog) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	close(a.done)
	a.wg.Wait()
	return nil
}

// Log implements proxy.AccessLog.
func (a *AccessLog) Log(e *proxy.AccessEntry) {
	if a.closed.Load() {
		return
	}
	p := linePool.Get().(*[]byte)
	if a.combined {
		*p = a.appendCombined((*p)[:0], e)
	} else {
		*p = a.appendJSON((*p)[:0], e)
	}
	select {
	case a.queue <- p:
	default:
		a.dropped.Inc()
		*p = (*p)[:0]
		linePool.Put(p)
	}
}

// appendJSON formats with zerolog into buf (one JSON object, a newline).
func (a *AccessLog) appendJSON(buf []byte, e *proxy.AccessEntry) []byte {
	w := sliceWriter{&buf}
	r := e.Request
	l := zerolog.New(&w)
	var tb [40]byte
	ev := l.Log().Bytes("time", e.Start.UTC().AppendFormat(tb[:0], time.RFC3339Nano)).Str("node", a.node).
		Str("client", addrString(e.Client)).Str("peer", tcpPeer(e)).
		Str("host", r.Host).Str("method", r.Method).Str("uri", capURI(r.RequestURI)).Str("proto", r.Proto)
	if r.TLS != nil {
		ev = ev.Str("tls", tlsVersion(r.TLS.Version)).Str("sni", r.TLS.ServerName)
	}
	ev.Int("status", e.Status).Int64("bytes_in", e.BytesIn).Int64("bytes_out", e.BytesOut).
		Float64("duration_ms", float64(e.Duration.Microseconds())/1000).
		Str("pool", e.Pool).Str("backend", e.Backend).Str("binding", e.Outcome).Send()
	return buf
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// appendCombined formats the NCSA combined format (Apache's and
// HAProxy's), with the client the binding is keyed by as the remote host.
func (a *AccessLog) appendCombined(b []byte, e *proxy.AccessEntry) []byte {
	r := e.Request
	b = append(b, addrString(e.Client)...)
	b = append(b, " - - ["...)
	b = e.Start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendQuoted(b, r.Method)
	b = append(b, ' ')
	b = appendQuoted(b, capURI(r.RequestURI))
	b = append(b, ' ')
	b = appendQuoted(b, r.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	if e.BytesOut == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, e.BytesOut, 10)
	}
	b = append(b, " \""...)
	b = appendQuoted(b, r.Header.Get("Referer"))
	b = append(b, "\" \""...)
	b = appendQuoted(b, r.Header.Get("User-Agent"))
	return append(b, "\"\n"...)
}

// appendQuoted escapes what would break a quoted combined-log field.
func appendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, `\x`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}

func capURI(s string) string {
	if len(s) > maxURI {
		return s[:maxURI]
	}
	return s
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// tcpPeer is the socket's peer: the balancer when a PROXY header named
// the client, else the request's RemoteAddr.
func tcpPeer(e *proxy.AccessEntry) string {
	if p := TCPPeer(e.Request.Context()); p != nil {
		if t, ok := p.(*net.TCPAddr); ok {
			ap := t.AddrPort()
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		}
		return p.String()
	}
	return e.Request.RemoteAddr
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return tls.VersionName(v)
}
