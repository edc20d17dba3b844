//go:build linux

package proxy

import (
	"net"
	"syscall"
	"unsafe"
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
	var alive bool
	peek := func(fd uintptr) bool {
		alive = idle(fd)
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

// idle reports whether the socket fd has nothing to read and is open: a
// non-blocking MSG_PEEK of one byte finds nothing (EAGAIN). A raw system
// call, as sysRead's.
func idle(fd uintptr) bool {
	var b byte
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EINTR {
			return e == syscall.EAGAIN
		}
	}
}

// flushWaitFunc returns a function that flushes c.bw (the request) and then
// waits until c.nc is readable, and reads the response's first bytes into
// c.br (or an error), all inside one RawRead with the socket in hand
// (raw system calls: sysRead, sysWrite). A plain
// flush then read costs a read that hits EAGAIN before Go's poller waits
// (every read first clears the poller's readiness mark, so it must try);
// flushing from inside RawRead's callback, after that clearing, lets the
// wait come first, and no readiness that follows the request can be lost.
// A wake-up with nothing to read (a stale mark) only costs that read
// again.
//
// With probe (an idle connection taken from the pool), the callback peeks
// first, as probeFunc's probe does, and sends nothing when the connection
// is not alive: errIdleGone. One RawRead serves both.
//
// The error is the flush's as a *writeError, errIdleGone, or the wait's (a
// read deadline, the connection closed); flushed is false when the wait
// failed before the callback ran (the caller probes and flushes then). nil
// when nc has no raw connection.
func flushWaitFunc(c *fastConn) func(probe bool) (flushed bool, err error) {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var (
		probing bool
		gone    bool
		flushed bool
		werr    error
		rerr    error
	)
	f := func(fd uintptr) bool {
		if flushed {
			// Woken: read the response's first bytes here, with the
			// socket in hand; a stale wake-up waits again.
			c.cr.raw, c.cr.fd = true, int(fd)
			_, rerr = c.br.Peek(1)
			c.cr.raw = false
			if rerr == errWouldBlock {
				rerr = nil
				return false
			}
			return true
		}
		if probing && !idle(fd) {
			gone = true
			return true
		}
		flushed = true
		c.cw.raw, c.cw.fd = true, int(fd)
		werr = c.bw.Flush()
		c.cw.raw = false
		return werr != nil // wait unless the flush failed
	}
	return func(probe bool) (bool, error) {
		probing, gone, flushed, werr, rerr = probe, false, false, nil, nil
		err := rc.Read(f)
		switch {
		case gone:
			return false, errIdleGone
		case werr != nil:
			return true, &writeError{werr}
		case err == nil:
			err = rerr
		}
		return flushed, err
	}
}
