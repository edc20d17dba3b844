// Package edge holds what a tether node needs to face the internet, as
// parts that wrap a net.Listener or an http.Server and so compose with any
// server loop:
//
//   - certs.go, tlsconf.go: the TLS listener's certificates (a default pair
//     and SNI pairs chosen by the names in their SANs, wildcards one label
//     deep), reloaded without dropping a connection (SIGHUP or a change of
//     the files, seen by a cheap mtime poll); a pair that fails to load
//     keeps the pair in force. ALPN offers h2 then http/1.1, and the HTTP/2
//     server runs with explicit stream, frame, window and header limits.
//   - ticketkeys.go: the session ticket keys put on the TLS config, the
//     fleet's (replicated by gossip over an encrypted gossip) so that a
//     client resumes its TLS session on any node.
//   - redirect.go: the plain listener's 308 to https.
//
// The listener stack a node builds is: TCP listener -> connection limits
// -> PROXY protocol -> TLS -> HTTP server. Every layer above PROXY sees
// the client address from the PROXY header as the connection's
// RemoteAddr, so bindings, X-Forwarded-For and logs name the real client.
package edge
