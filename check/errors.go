package check

import "errors"

// Errors returned by New and Run.
var (
	// ErrConfig: a Config field is out of range or malformed; the message
	// names the field.
	ErrConfig = errors.New("check: invalid config")
	// ErrRemoteTarget: a target resolves to an address outside loopback and
	// Config.AllowRemote is not set.
	ErrRemoteTarget = errors.New("check: target outside loopback")
	// ErrResolve: a target's host name could not be resolved.
	ErrResolve = errors.New("check: cannot resolve target")
	// ErrRan: Run was called a second time on one Checker.
	ErrRan = errors.New("check: checker already ran")
)
