// Package connlimit bounds the client connections of a listener, the
// limits an edge proxy needs so that no single client can take the node
// down (issue 17):
//
//   - a global cap (MaxConns) below the process's file-descriptor limit,
//     leaving a reserve for replica connections, the admin listener, health
//     checks, gossip and the data files: when the cap is reached, the oldest
//     idle keep-alive connection is closed to make room, and only when none
//     is idle is the new connection refused (closed at once);
//   - a per-source cap (MaxPerSource): connections from one address (an
//     IPv6 source counts by its /64) beyond it are closed at accept. The
//     source is the TCP peer at accept time: behind a load balancer that
//     speaks the PROXY protocol every connection comes from the balancer,
//     so list such peers in Exempt (tether passes TETHER_TRUSTED_PROXIES);
//     the global cap still bounds them;
//   - idle keep-alive connections are closed sooner as the listener fills
//     (IdleTimeout when under half full, shrinking linearly to
//     MinIdleTimeout at 90 % full);
//   - a hijacked connection (a WebSocket or other upgrade tunnel) with no
//     byte in either direction for TunnelIdleTimeout is closed.
//
// The HTTP server reports each connection's state through ConnState
// (http.Server.ConnState = l.ConnState); any server loop can call SetState
// with the connection it got from Accept, or one wrapping it (a *tls.Conn,
// a PROXY-protocol connection: anything with NetConn() or Raw()). A
// keep-alive connection goes idle and active once a request, so SetState
// takes no lock then: only flags on the connection change, and the list
// of idle connections (oldest first) is put in order where it is read, by
// admit and the sweep (oldestIdleLocked). A Conn also gives its socket
// (syscall.Conn) for servers that read and write it directly; it holds no
// bytes of its own.
//
// RaiseFDLimit raises the soft RLIMIT_NOFILE to the hard limit (the Go
// runtime does so too on Linux since Go 1.19; this makes it explicit and
// reports the result) and DefaultMaxConns derives the cap from it.
package connlimit
