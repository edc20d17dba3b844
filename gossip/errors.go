package gossip

import "errors"

// Errors of the gossip shell. Decoding errors wrap ErrMalformed or
// ErrOverCap; both are counted against the sender and never stop the node.
var (
	// ErrMalformed: a message that does not decode (truncated, wrong msgpack
	// type, index out of range, trailing bytes, invalid key).
	ErrMalformed = errors.New("gossip: malformed message")
	// ErrOverCap: a count or length over one of this node's caps
	// (Config.Caps), or over what the bytes left could hold.
	ErrOverCap = errors.New("gossip: message over cap")
	// ErrVersion: a wire version this node does not speak.
	ErrVersion = errors.New("gossip: unknown wire version")
	// ErrType: a message type this node does not know.
	ErrType = errors.New("gossip: unknown message type")
	// ErrClosed: the node is shut down.
	ErrClosed = errors.New("gossip: node closed")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("gossip: node already started")
	// ErrBusy: too many CountLive calls in flight.
	ErrBusy = errors.New("gossip: too many counts in flight")
	// ErrConfig: an invalid Config field; the message names it.
	ErrConfig = errors.New("gossip: invalid config")
)
