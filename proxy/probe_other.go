//go:build !linux

package proxy

import (
	"net"
)

// probeFunc: without a non-blocking peek, an idle connection is assumed
// alive; a request whose reused connection fails before any response byte
// is sent again on a new one (fastpath.go).
func probeFunc(net.Conn) func() bool { return func() bool { return true } }

// flushWaitFunc: the plain flush, then read (see probe_linux.go).
func flushWaitFunc(*fastConn) func(bool) (bool, error) { return nil }
