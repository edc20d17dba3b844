package stickydb

import "errors"

// Errors returned by the core. Every one is a value the shell can count; none
// is fatal to the database.
var (
	// ErrInvalidKey: the client address is not a valid IP, or the host is
	// empty, too long, upper-case or holds a character a Host cannot hold.
	ErrInvalidKey = errors.New("stickydb: invalid key")
	// ErrInvalidBinding: a replica or origin name is empty or too long.
	ErrInvalidBinding = errors.New("stickydb: invalid binding")
	// ErrNotFound: no live binding for the key.
	ErrNotFound = errors.New("stickydb: binding not found")
	// ErrMalformed: a change group whose numbers do not add up (sequence
	// numbers not contiguous, From/To not matching the events, an epoch <= 0,
	// an event that claims another node created it).
	ErrMalformed = errors.New("stickydb: malformed change group")
	// ErrTooManyEvents: a change group over Config.MaxGroupEvents.
	ErrTooManyEvents = errors.New("stickydb: too many events in a group")
	// ErrSeqJump: a group or vector that claims a sequence number its
	// origin cannot have reached: more than Config.MaxSeqJump plus
	// Config.MaxEventRate per second since its epoch began.
	ErrSeqJump = errors.New("stickydb: sequence jump over cap")
	// ErrFutureEpoch: an epoch later than now + Config.MaxFutureEpoch.
	ErrFutureEpoch = errors.New("stickydb: epoch in the future")
	// ErrOriginFull: an origin owns Config.MaxBindingsPerOrigin bindings
	// already; its new bindings are refused.
	ErrOriginFull = errors.New("stickydb: bindings per origin over cap")
	// ErrExpiryOverCap: an event whose expiry lies further ahead than
	// TTL + MaxSkew from the receiver's clock.
	ErrExpiryOverCap = errors.New("stickydb: expiry beyond TTL")
	// ErrTooManyNames: more than 65,535 distinct replica or node names.
	ErrTooManyNames = errors.New("stickydb: too many distinct names")
	// ErrTruncated: the requested events are no longer in the log; the
	// requester must be sent a full copy.
	ErrTruncated = errors.New("stickydb: range truncated")
	// ErrEpoch: an epoch that is not later than the current one.
	ErrEpoch = errors.New("stickydb: epoch must increase")
	// ErrGeneration: a binding whose generation is over MaxGeneration
	// (received), or a local rebind or delete of a key at MaxGeneration.
	ErrGeneration = errors.New("stickydb: generation at its bound")
)
