//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawConn returns c's RawConn when c is a plain TCP connection (a wrapper,
// such as PROXY protocol's, may hold bytes the socket no longer has): the
// loop serves it in the raw mode (serveRaw).
func rawConn(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sysRead is read(2) on a non-blocking socket: errWouldBlock when it is
// empty, io.EOF at its end.
func sysRead(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// dupConn returns a net.Conn of its own on the socket fd (a duplicate
// descriptor, in Go's poller).
func dupConn(fd int) (net.Conn, error) {
	nfd, err := syscall.Dup(fd)
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	f := os.NewFile(uintptr(nfd), "")
	defer f.Close()
	return net.FileConn(f) // a duplicate of nfd
}
