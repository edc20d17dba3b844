// Package proxy is tether's sticky HTTP reverse proxy on one node:
// request -> key -> binding -> replica.
//
// # Request path (DESIGN.md, Fig. 13)
//
// For each request the proxy normalises the Host (NormalizeHost: lower
// case, no port; an invalid Host is 400), finds the Host's pool (a pool
// listing the Host, else the default pool, else 404), and takes the client
// address: the TCP peer, or the right-most untrusted X-Forwarded-For
// address when the peer is a trusted proxy (ClientIP). The pair is the
// stickydb.Key.
//
// Bindings.Touch on the key is the hot path: a live binding to a healthy
// replica of the pool is followed (and extended; Refresh when the store says
// it is due). Otherwise the replica is chosen by weighted rendezvous hashing
// (stickydb.Pick, the function the merge rule uses, so two nodes binding a
// new client at once choose alike) over the healthy, non-draining replicas,
// and recorded: BindIfAbsent for a new client, Rebind (compare-and-swap,
// generation + 1) when the bound replica is down or no longer configured.
// A replica that refuses the connection is marked down at once and, when
// the request body has not been read, the request is retried once on the
// client's new replica. No usable replica is 503; a replica failing before
// its response is 502 (504 on a header timeout); error bodies are one line
// of plain text.
//
// # Forwarding
//
// Two paths reach a replica (Config.Forwarding). The fast path
// (fastpath.go, the default) takes GET and HEAD requests without a body or
// an upgrade to http:// replicas — most of a web application's traffic —
// and forwards them on the request's own goroutine over a keep-alive pool
// per replica (connpool.go): it writes the request ReverseProxy would
// write, straight from the incoming one, and reads the response with the
// standard library's parser (http.ReadResponse) or, for the plain kind of
// response, a stricter subset parser into the client's header
// (resphead.go). No request copy, no transport goroutines to hand the
// request to and back: about a third less CPU per request than
// ReverseProxy on the end-to-end benchmark, with the same bytes on both
// sides (tests compare the two paths request for request).
//
// On the plain listener, and over TLS for HTTP/1.1 (the loop runs the
// handshake; a connection that chose HTTP/2 goes to net/http's server),
// the same requests are also read by a connection loop of tether's own
// (LoopServer, server.go): parseRequestHead reads the
// plain kind of head (FuzzRequestHead holds it to net/http's reading) into
// one reused http.Request per connection, and a reused writer frames the
// response as net/http's server would. A connection that sends anything
// else (a body, an upgrade, Expect, HTTP/1.0, bare LF, a head past 16 KiB,
// the HTTP/2 preface) is handed, with the bytes already read, to net/http's
// server, which serves it from then on; so refusals and smuggling defences
// stay net/http's. About a quarter more requests per second than net/http's
// server on BenchmarkEndToEnd; TETHER_FORWARDING=stdlib turns both off.
//
// One read per request and direction (Linux): net.Conn.Read clears the
// poller's readiness mark and then must try a read, which on a keep-alive
// connection finds nothing (EAGAIN) before every request and every
// response. The loop therefore serves a client socket from inside one
// RawConn.Read for the connection's life (serveRaw): after a read that
// emptied the socket it waits first, since any byte that came after that
// read has set the mark. The fast path does the same on the replica's
// side (flushWaitFunc): inside one RawRead it probes a reused connection
// (a non-blocking MSG_PEEK: closed, or stray bytes, and it is dropped
// unsent), sends the request, waits, and reads the response's first
// bytes. Inside those callbacks reads and writes are raw system calls on
// the non-blocking socket (sysRead, sysWrite): the scheduler is not told,
// which saves its bookkeeping and keeps its monitor from handing the
// processor to another thread during a loopback write; what a socket
// does not take at once goes through net.Conn.Write, with the wanted
// write deadline put in force then. The raw mode takes a plain TCP
// connection, or a wrapper that holds no bytes of its own and gives its
// socket (connlimit's, which tether serve's listener always uses); a
// PROXY-protocol connection is read through its Read. Over TLS the loop
// makes the TLS connection itself (LoopServer.TLSConfig) over a socket
// whose reads and writes, in the raw mode, are those same system calls
// (tlsSocket; an empty socket is a temporary error that tls.Conn passes
// up and survives), so HTTPS is served from inside one RawConn.Read too.
// A watch of the client during a slow response reads a duplicate
// descriptor of the socket (the raw loop holds the connection's read
// lock); under TLS, where a byte of a record says nothing (it may begin
// the client's close_notify), it reads until the socket ends or it is
// stopped, and what it read goes back under the TLS layer. Four
// system calls per request and the probe: bench/README.md has the counts.
//
// Every other request takes httputil.ReverseProxy: one per replica
// (Rewrite with SetURL and SetXForwarded; the client's Host is kept), so a
// request needs no context value to find its target; all share one tuned
// http.Transport (keep-alive pool per replica, dial and response-header
// timeouts, no transparent compression) and a pool of copy buffers.
// Upgrades (WebSocket) and request bodies pass through ReverseProxy's own
// handling.
//
// # Configuration apart from state
//
// Routes (pools, hosts, backends, weights, health-check settings) is a plain
// validated value, from TETHER_BACKENDS and the routes file (LoadRoutes), and
// replaced whole by Reload. Runtime state (health, drain, counters) lives in
// atomics on backend objects that a reload keeps when pool, name and URL are
// unchanged. The routing table in force is an immutable value behind an
// atomic pointer, so the request path takes no lock of the proxy's own.
//
// # Health
//
// Active checks (one goroutine per replica: GET of the pool's path, or a TCP
// connect; Rise passes bring a replica up, Fall failures take it down) and a
// passive check (a failed connection takes it down at once; only active
// checks bring it back). A draining replica (SetDrain) keeps its bound
// clients and gets no new ones.
//
// # Bindings
//
// The proxy consumes the Bindings interface (see its contract); *stickydb.DB
// implements it, and a wrapper that also hands events to replication can
// be passed instead without changing this path.
package proxy
