//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawConn returns c's RawConn when c is a plain TCP connection, or a
// wrapper of one that holds no bytes of its own and says so by giving its
// socket (syscall.Conn: connlimit's): the loop serves it in the raw mode
// (serveRaw). A wrapper that may hold bytes the socket no longer has (TLS,
// PROXY protocol) does not implement syscall.Conn.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sysRead is recv(2) on a non-blocking socket: errWouldBlock when it is
// empty, io.EOF at its end. recv and send rather than read and write: the
// socket calls skip the file layer (position lock, fsnotify), as
// HAProxy's recvfrom and sendto do.
//
// sysRead and sysWrite are raw system calls (the runtime is not told):
// on a non-blocking socket they never block, and most are a few
// microseconds, so telling the scheduler (entersyscall, exitsyscall) only
// costs, and its monitor would hand the processor to another thread while
// a loopback write runs the receiver's side too. Only for descriptors Go's
// poller set non-blocking, inside a RawConn callback (which keeps the
// descriptor open).
func sysRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return 0, errWouldBlock
		case e != 0:
			return 0, os.NewSyscallError("recvfrom", e)
		case n == 0:
			return 0, io.EOF
		}
		return int(n), nil
	}
}

// sysWrite is send(2) on a non-blocking socket (see sysRead; MSG_NOSIGNAL:
// a closed peer is EPIPE, no signal): it writes what the socket takes, and
// returns errWouldBlock with the count when the socket's buffer is full.
func sysWrite(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done), syscall.MSG_NOSIGNAL, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return done, errWouldBlock
		case e != 0:
			return done, os.NewSyscallError("sendto", e)
		}
		done += int(n)
	}
	return done, nil
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
