package proxy

import (
	"net/http"
	"net/netip"
	"time"
)

// AccessLog receives one AccessEntry per request (Config.AccessLog).
//
// Contract: Log is called on the request's goroutine once the response is
// done, from many goroutines at once. It must not block (a full buffer
// drops the line) and must not keep e or e.Request after it returns: both
// are reused.
type AccessLog interface {
	Log(e *AccessEntry)
}

// AccessEntry is what the proxy knows about a finished request.
type AccessEntry struct {
	Request  *http.Request // method, URI, Host, proto, TLS, RemoteAddr, context
	Start    time.Time
	Duration time.Duration
	Client   netip.Addr // the address the binding is keyed by (before the prefix)
	Status   int
	BytesIn  int64  // request body bytes read
	BytesOut int64  // response body bytes written
	Pool     string // "" when no pool served the Host
	Backend  string // "" when no replica was tried
	// Outcome is the binding's: "hit", "new", "rebind" or "none" (no
	// replica chosen: a rejected request or no usable replica).
	Outcome string
}

// outcomeLog maps selection outcomes to the access log's four words.
var outcomeLog = [numOutcomes]string{
	outHit: "hit", outBind: "new", outRebindUnhealthy: "rebind", outRebindRemoved: "rebind",
	outRebindRefused: "rebind", outNone: "none",
}
