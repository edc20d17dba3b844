//go:build !linux

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// rawConn: the raw mode is Linux's; elsewhere the loop reads through
// net.Conn.Read.
func rawConn(net.Conn) syscall.RawConn { return nil }

var errNoRaw = errors.New("proxy: no raw mode on this system")

func sysRead(int, []byte) (int, error)  { return 0, errNoRaw }
func sysWrite(int, []byte) (int, error) { return 0, errNoRaw }

func dupConn(int) (net.Conn, error) { return nil, errNoRaw }
