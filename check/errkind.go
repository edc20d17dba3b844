package check

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// Kind is the class of a failed request.
type Kind int

// The kinds of failure, in report order. Only append: the JSON report names
// them by String, and tests index by value.
const (
	KindConnect         Kind = iota // the connection could not be opened (refused, unreachable, no route)
	KindTimeout                     // Config.Timeout passed (dial, headers or body)
	KindReset                       // the connection closed or reset mid-request
	KindStatus4xx                   // a 4xx response
	KindStatus5xx                   // a 5xx response (a proxy's 502/503/504 included)
	KindUnlabelled                  // a 1xx-3xx response that names no replica
	KindReplicaOverflow             // a response naming one replica more than Config.MaxReplicas
	KindCanceled                    // the run was aborted (its context canceled) mid-request
	KindOther                       // anything else (malformed response, ...)
	numKinds
)

var kindNames = [numKinds]string{
	"connect", "timeout", "reset", "status_4xx", "status_5xx",
	"unlabelled", "replica_overflow", "canceled", "other",
}

// String returns the kind's report name, e.g. "status_5xx".
func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return "unknown"
	}
	return kindNames[k]
}

// classify names the kind of a transport or body-read error. runCtx is the
// run's context: when it is done the request was aborted by the user, not
// failed by the server.
func classify(runCtx context.Context, err error) Kind {
	if runCtx.Err() != nil && errors.Is(err, context.Canceled) {
		return KindCanceled
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return KindConnect
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return KindConnect
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return KindReset
	}
	return KindOther
}

// statusKind returns the kind of a response status, or -1 when it can
// serve a client (1xx-3xx).
func statusKind(code int) Kind {
	switch {
	case code >= 500:
		return KindStatus5xx
	case code >= 400:
		return KindStatus4xx
	}
	return -1
}
