package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// tlsHandoffConn is a handed-over TLS connection: net/http's server sets
// Request.TLS from ConnectionState for a connection that is not a
// *tls.Conn itself.
type tlsHandoffConn struct {
	*handoffConn
	state tls.ConnectionState
}

func (c *tlsHandoffConn) ConnectionState() tls.ConnectionState { return c.state }

// handshake runs a TLS connection's handshake as net/http's server does:
// within the shortest of Std's read-header, read and write timeouts; a
// client that sent plain HTTP gets net/http's 400, a failure is logged to
// Std.ErrorLog. False when it failed (the connection is to be closed).
func (lc *loopConn) handshake(ctx context.Context, tc *tls.Conn) bool {
	to := tlsHandshakeTimeout(lc.s.Std)
	if to > 0 {
		dl := time.Now().Add(to)
		_ = tc.SetReadDeadline(dl)
		_ = tc.SetWriteDeadline(dl)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		reason := err.Error()
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && recordLooksLikeHTTP(re.RecordHeader) {
			_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			_ = re.Conn.Close()
			reason = "client sent an HTTP request to an HTTPS server"
		}
		lc.s.logf("http: TLS handshake error from %s: %v", lc.remote, reason)
		return false
	}
	if to > 0 {
		_ = tc.SetReadDeadline(time.Time{})
		_ = tc.SetWriteDeadline(time.Time{})
	}
	st := tc.ConnectionState()
	lc.tlsState = &st
	return true
}

// tlsHandshakeTimeout is net/http's: the shortest positive of
// ReadHeaderTimeout, ReadTimeout and WriteTimeout.
func tlsHandshakeTimeout(s *http.Server) time.Duration {
	var d time.Duration
	for _, v := range [...]time.Duration{s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout} {
		if v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	return d
}

// recordLooksLikeHTTP is net/http's test of a TLS record header that is
// the start of a plain HTTP request.
func recordLooksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// tlsSocket is the connection under a TLS connection the loop made
// (LoopServer.TLSConfig): in the raw mode its reads and writes are the
// socket's own system calls (sockRead, sendThen), as a plain
// connection's, so a TLS connection is served from inside one
// RawConn.Read too; an empty socket is errWouldBlock, which tls.Conn
// passes up as a temporary error and survives. Outside the raw mode (the
// handshake, a connection handed to Std, the close) it is the accepted
// connection.
type tlsSocket struct {
	net.Conn
	lc      *loopConn
	pending []byte // bytes the client watch read (unread)
}

// NetConn lets the connection limits and the edge find the socket.
func (s *tlsSocket) NetConn() net.Conn { return s.Conn }

func (s *tlsSocket) Read(p []byte) (int, error) {
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	if s.lc.fd >= 0 {
		return s.lc.sockRead(p)
	}
	return s.Conn.Read(p)
}

func (s *tlsSocket) Write(p []byte) (int, error) {
	if s.lc.fd >= 0 && s.lc.sendable() {
		return sendThen(s.lc.fd, p, s.connWrite)
	}
	return s.connWrite(p)
}

// connWrite is the accepted connection's Write with the loop's wanted
// write deadline in force.
func (s *tlsSocket) connWrite(p []byte) (int, error) {
	if err := s.lc.syncWriteDeadline(); err != nil {
		return 0, err
	}
	return s.Conn.Write(p)
}

// unread puts p back before the socket's next bytes.
func (s *tlsSocket) unread(p []byte) { s.pending = append(append([]byte(nil), p...), s.pending...) }
