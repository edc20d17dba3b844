// Package netns runs tether fleets in which every node, every replica and
// the clients are separate hosts: Linux network namespaces joined by veth
// pairs to a bridge that lives in a namespace of its own (the "switch"),
// on the private network 10.214.0.0/16. Nothing listens on loopback and no
// packet leaves the machine: the bridge has no link to the host's
// interfaces, and the root namespace gets no address or interface.
//
// A Lab makes the namespaces (names start with Prefix and the test
// process's pid) and removes them in its cleanup, ending the processes
// still inside; New first removes the leftovers of runs whose process died
// (a panic, a kill -9). Faults are real link faults: LinkDown takes a
// host's port on the bridge down (its packets vanish, nothing is refused),
// Limit shapes a host's link with tc's token bucket (tbf) both ways.
//
// Processes run with `ip netns exec`; the test process itself reaches into
// a namespace by running socket-creating code on a locked OS thread that
// joined it (Host.Do, Host.Dialer, Host.Listen): a socket belongs to the
// namespace it was created in for its whole life.
//
// The tests need root and iproute2 (`make test` installs it when missing);
// where namespaces cannot be made, they fail and say why.
package netns
