// Package faultnet is a fault-injecting memberlist transport for tests and
// the chaos suite, in the spirit of etcd raft's test network (drop, cut,
// isolate), but around real sockets: it wraps a memberlist.NodeAwareTransport
// (normally memberlist's own NetTransport on 127.0.0.1) and decides, per
// outgoing packet or stream, whether it is delivered, delayed or lost.
//
// # Model
//
// A Network holds the fault settings shared by every Transport wrapped from
// it, so one call cuts a link or raises the loss rate for the whole fleet.
// Faults act on the sending side only; since every node of a test fleet is
// wrapped, cutting A<->B stops both directions.
//
//   - Packet loss (SetPacketLoss): a UDP packet is dropped with probability p.
//   - Stream loss (SetStreamLoss): a TCP stream is black-holed with
//     probability p: the dial succeeds, writes succeed and vanish, reads wait
//     for the deadline. A reliable user message is lost without the sender
//     knowing, as when a connection dies after the write returns.
//   - Delay (SetDelay): each packet waits a uniform random time in
//     [min, max] before it leaves, so packets overtake one another
//     (reordering); a stream dial waits the same way, in the caller.
//   - Cut / Isolate: packets to the far side are dropped and dials refused,
//     as a firewall that rejects.
//
// The destination of a packet is known by node name when memberlist gives
// one, else by the address each wrapped transport registered.
//
// Randomness comes from one seeded generator, so a failing run can be
// repeated with the same seed (timing still varies). Every decision is
// counted (Stats) so a test can tell that faults really happened.
//
// Incoming packets are relayed through the wrapper so that a test can count
// what a node received from a given address (Received), for example to show
// that a stranger's packets did arrive and were refused by memberlist.
package faultnet
