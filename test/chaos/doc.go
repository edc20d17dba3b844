// Package chaos is tether's chaos suite (issue 8), in the spirit of
// Jepsen's nemeses and etcd's functional tester: a fleet of real tether
// processes under client traffic while faults come and go, then checks
// that nothing was lost.
//
// # The fleet
//
// Five nodes of the binary built with `-tags faultinject` (and, by
// default, the race detector): nodes 0 and 1 keep a data dir (disk
// recovery), nodes 2-4 run in epoch mode. Each node's clock is skewed by a
// random ±2 s from the start. Five demo replicas a..e; the pool starts as
// a, b, c; after the warm-up d joins it (so rendezvous hashing alone would
// move about a fifth of the clients: only replicated bindings keep them),
// and e comes and goes with route reloads. Health checks every 0.5 s,
// rise 2, fall 2.
//
// The faultinject build (cmd/tether/faultinject.go) reads a per-node state
// file (clock skew, loss, delay, cut peers) before it starts and whenever
// the harness calls its control endpoint, so faults are in force when the
// call returns and survive a restart. Network faults are those of
// internal/faultnet around memberlist's transport, on the sending side.
//
// # Clients
//
// Each client has its own 127.96.x.y source address and one request in
// flight at most; every request goes to a random node of the rotation,
// without keep-alive. The rotation is what a load balancer with readiness
// checks would use: nodes whose /readyz answered 200 at the last probe
// (every 100 ms). 200 clients are bound before the faults, then 20 new
// ones arrive each second (not while convergence is being measured).
//
// # Nemeses
//
//	kill-disk, kill-epoch  SIGKILL a node of that recovery mode; restart it
//	                       after the hold, and wait until it is ready once
//	                       the step's other faults are healed too
//	pause                  SIGSTOP, then SIGCONT
//	loss                   every node loses 10-30 % of the UDP packets and
//	                       TCP streams it sends
//	delay                  every packet and stream dial waits 0..20-100 ms
//	                       (reordering)
//	partition-2way         the nodes split 1|4 or 2|3, both ways
//	partition-1way         one node cannot send to the others (mute) or
//	                       they cannot send to it (deaf)
//	clock-step-back        a node's clock steps back by 1.5 s or more,
//	                       staying within ±2 s of true time
//	backend-crash          a replica dies (connections dropped) and comes
//	                       back on its address
//	routes-reload          e leaves or joins the pool (SIGHUP everywhere);
//	                       half the time an invalid file first, which
//	                       every node must refuse
//
// A step injects one nemesis (the long form: sometimes two), holds it 2-4 s
// (long form 2-12 s), heals it, and measures convergence: every node
// ready and holding the same live database (the digest of
// /api/v1/vector) and the same vector. The step fails if that takes more
// than ConvergeBound (60 s).
//
// # Sticky violations, precisely
//
// A client's binding is settled once the verifier (every 250 ms) has read
// it, with the replica the client was last served by, from every node's
// admin API: it is then older than the replication window by
// construction, whatever the faults did to that window. A move is a
// request answered by another replica than the client's previous one.
// A move is allowed when, between the start of the last request that saw
// the old replica and the end of the moving one, the old replica was
// crashed (plus 5 s for health checks to see it back) or out of the routes
// (plus 2 s): a client whose replica failed may move, once per failure of
// its replica. Any other move of a settled binding is a violation. A move
// of a binding that was not yet on every node (made during a partition,
// or a pause, or lost with an epoch-mode node) is counted and shown, not a
// violation: the design cannot promise it.
//
// The canary at the end shows that the checker can fail: settled clients
// are rebound behind their backs through the admin API, and each must be
// reported.
//
// # Other checks
//
// No "panic:", "fatal error:" or "DATA RACE" in any node's log; every
// process running at the end; goroutines and resident memory of every
// node within bounds once the traffic has stopped.
package chaos
