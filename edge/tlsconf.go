package edge

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ParseMinVersion reads TETHER_TLS_MIN_VERSION: "1.2" (the default, for
// "") or "1.3".
func ParseMinVersion(s string) (uint16, error) {
	switch strings.TrimSpace(s) {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("want 1.2 or 1.3")
}

// TLSConfig is the listener's tls.Config: certificates from certs by SNI,
// ALPN h2 then http/1.1, the given minimum version, Go's default cipher
// suites and curves. Go's server never renegotiates. Session tickets use
// Go's own per-process keys until SetSessionTicketKeys is called on the
// returned config (TicketKeys does, when the fleet shares keys).
func TLSConfig(certs *Certs, minVersion uint16) *tls.Config {
	return &tls.Config{
		MinVersion:     minVersion,
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// HTTP/2 server limits. A stream is a request; these bound what one client
// connection can make the node hold.
const (
	// H2MaxConcurrentStreams caps the streams (running handlers) one
	// connection may have open. Go's server refuses streams beyond it and,
	// since the rapid-reset fix, queues at most a few streams opened in place
	// of reset ones before closing the connection.
	H2MaxConcurrentStreams = 250
	// H2MaxReadFrameSize is the largest frame accepted (the protocol's
	// minimum, as nginx and HAProxy use).
	H2MaxReadFrameSize = 16 << 10
	// H2MaxHeaderTable bounds the HPACK decoder table (the RFC default).
	H2MaxHeaderTable = 4 << 10
	// H2ConnWindow and H2StreamWindow bound the request body bytes buffered
	// per connection and per stream.
	H2ConnWindow   = 1 << 20
	H2StreamWindow = 256 << 10
	// H2WriteByteTimeout closes a connection that takes no bytes for this
	// long while the server has some to write (a client that stops reading).
	H2WriteByteTimeout = 30 * time.Second
	// H2PingAfter sends a PING on a connection silent this long; no answer
	// within H2PingTimeout closes it.
	H2PingAfter   = time.Minute
	H2PingTimeout = 15 * time.Second
)

// HTTP2Config returns the HTTP/2 server settings above. The request header
// list (SETTINGS_MAX_HEADER_LIST_SIZE, which also bounds CONTINUATION
// frames) is http.Server.MaxHeaderBytes. countError, if not nil, is called
// with the kind of each HTTP/2 protocol error (e.g. too_many_early_resets).
func HTTP2Config(countError func(string)) *http.HTTP2Config {
	return &http.HTTP2Config{
		CountError:                    countError,
		MaxConcurrentStreams:          H2MaxConcurrentStreams,
		MaxDecoderHeaderTableSize:     H2MaxHeaderTable,
		MaxEncoderHeaderTableSize:     H2MaxHeaderTable,
		MaxReadFrameSize:              H2MaxReadFrameSize,
		MaxReceiveBufferPerConnection: H2ConnWindow,
		MaxReceiveBufferPerStream:     H2StreamWindow,
		SendPingTimeout:               H2PingAfter,
		PingTimeout:                   H2PingTimeout,
		WriteByteTimeout:              H2WriteByteTimeout,
	}
}

// ServeTLS prepares srv for the TLS listener (HTTP/1.1 and HTTP/2 over
// ALPN, the HTTP/2 limits) and returns the TLS listener over ln. Serve srv
// on the result. countError: see HTTP2Config.
func ServeTLS(srv *http.Server, ln net.Listener, cfg *tls.Config, countError func(string)) net.Listener {
	srv.HTTP2 = HTTP2Config(countError)
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv.Protocols = p
	srv.TLSConfig = cfg
	return tls.NewListener(ln, cfg)
}

// PollCerts polls the certificate files every interval until ctx ends,
// and warns about expiring certificates once a day.
func PollCerts(ctx context.Context, c *Certs, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	lastWarn := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = c.Poll()
			if time.Since(lastWarn) >= 24*time.Hour {
				lastWarn = time.Now()
				c.warnExpiring()
			}
		}
	}
}

// H2ErrorCounter registers tether_http2_errors_total{type} with reg (nil:
// none) and returns the function that counts into it.
func H2ErrorCounter(reg prometheus.Registerer) func(string) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tether_http2_errors_total",
		Help: "HTTP/2 protocol errors by kind (Go's server names them; e.g. too_many_early_resets is a rapid-reset attack).",
	}, []string{"type"})
	if reg != nil {
		reg.MustRegister(v)
	}
	return func(t string) { v.WithLabelValues(t).Inc() }
}
