// Package check is tether's outside-in load tool: it drives HTTP load
// through a proxy (or a fleet of them) from many simulated clients and proves,
// from the responses alone, whether every client stayed on one backend
// replica. `tether check` is its command line; `make bench` uses it as the
// load generator of the end-to-end benchmark.
//
// # Clients
//
// A run has Config.Clients simulated clients. Client i dials from the
// (i+1)-th address of Config.SourceCIDR (127.64.0.0/10 by default: Linux
// routes all of 127.0.0.0/8 to the loopback device, so each client is a
// distinct IP to the proxy with no setup). Each client owns its
// http.Transport, so its source address never changes and its connections
// are never shared. A client has at most one request in flight; it picks a
// target per request (random or round-robin) and keeps one idle connection
// per target when keep-alive is on.
//
// Load is closed-loop by default (a client sends its next request when the
// previous one has answered). With Config.Rate the loop is open, per client
// like wrk2: client i sends at start + phase_i + k*Clients/Rate, and a client
// that falls behind sends at once, with its latency counted from the
// intended time, so a stalled server cannot hide its stall (no coordinated
// omission).
//
// A run is bounded in time (Config.Duration; no request starts after it and
// every request has Config.Timeout) and optionally in count
// (Config.Requests). Memory is bounded too: latencies go to a log-linear
// histogram (HDR style, < 0.8% relative error) of fixed size, never to a
// slice of samples.
//
// # Who served
//
// The serving replica is the value of a response header (X-Backend by
// default) or the first submatch of a regular expression over the body. A
// response "serves" a client when its status is below 400 and it names a
// replica; other responses count as errors, by kind (connect, timeout,
// reset, status_4xx, status_5xx, unlabelled, ...).
//
// # Sticky violations
//
// A switch is a response that names a replica other than the one that
// served the same client's previous successful response. A switch is
// legitimate when the previous replica had gone away, and a violation when
// it was still up. From outside, "still up" is decided by what the replica
// did next: the switch from replica A, whose response the client received
// at time e, is a violation when A served, successfully, some request (of
// any client) that was sent after e and no later than e + Config.StickyWindow
// (default 1s). Such a request was routed to A after the client had been
// moved off A, so A was reachable and serving while the proxy sent the
// client elsewhere. A replica that crashed or was removed serves nothing
// after the move, so its clients' moves are legitimate; one that was only
// drained keeps serving its other clients, so moving a client off it is a
// violation.
//
// The evidence is kept per replica as a bitmap of time slots (1 ms, wider
// for runs over about an hour) in which the replica served a request sent in
// that slot; only slots strictly after the one holding e count, so a request
// sent in the same millisecond as e is never taken as evidence. The window
// has to be long enough for the old replica to serve someone else: with
// closed-loop load and several clients per replica that takes
// milliseconds. A replica that restarts within the window and serves again
// turns its forced moves into violations; lower the window when testing
// that on purpose. A switch within the window of the end of the run is
// judged on the evidence seen until the end.
//
// Switches are kept (up to Config.MaxSwitchRecords) and judged when the run
// ends; the report gives switches, violations, the clients that suffered
// one, and a few examples.
//
// # Targets
//
// A load tool pointed at someone else's host by a typo is a denial of
// service, so every target must resolve to loopback addresses only unless
// Config.AllowRemote is set.
package check
