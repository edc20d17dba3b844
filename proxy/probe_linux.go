//go:build linux

package proxy

import (
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
