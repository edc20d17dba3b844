//go:build linux

package proxy

import (
	"bufio"
	"net"
	"syscall"
)

// probeFunc returns the liveness probe of an idle connection: a
// non-blocking MSG_PEEK of one byte. Alive means nothing to read yet
// (EAGAIN); end of stream (the replica closed it), stray bytes (a replica
// that answered more than it was asked) or an error mean the connection
// must not carry another request. The probe is what http.Transport's
// per-connection read loop notices on its own; one syscall per reuse
// replaces that goroutine.
func probeFunc(nc net.Conn) func() bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return func() bool { return true }
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() bool { return true }
	}
	var (
		buf   [1]byte
		alive bool
	)
	peek := func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN
		return true // never wait
	}
	return func() bool {
		alive = false
		if rc.Read(peek) != nil {
			return false
		}
		return alive
	}
}

// flushWaitFunc returns a function that flushes bw (the request) and then
// waits until nc is readable (the response's first bytes, or an error),
// without reading: the read that follows finds the bytes there. A plain
// flush then read costs a read that hits EAGAIN before Go's poller waits
// (every read first clears the poller's readiness mark, so it must try);
// flushing from inside RawRead's callback, after that clearing, lets the
// wait come first, and no readiness that follows the request can be lost.
// A wake-up with nothing to read (a stale mark) only costs that read
// again. The error is the flush's as a *writeError, or the wait's (a
// read deadline, the connection closed); flushed is false when the wait
// failed before the flush ran (the caller flushes then). nil when nc has
// no raw connection.
func flushWaitFunc(nc net.Conn, bw *bufio.Writer) func() (flushed bool, err error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var (
		flushed bool
		werr    error
	)
	f := func(uintptr) bool {
		if flushed {
			return true // woken: readable
		}
		flushed = true
		werr = bw.Flush()
		return werr != nil // wait unless the flush failed
	}
	return func() (bool, error) {
		flushed, werr = false, nil
		err := rc.Read(f)
		if werr != nil {
			return true, &writeError{werr}
		}
		return flushed, err
	}
}
