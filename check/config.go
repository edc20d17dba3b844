package check

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Bounds on a run. They keep a typo from turning the tool into a flood that
// runs for days.
const (
	MaxClients     = 65_536
	MaxDuration    = 24 * time.Hour
	MaxTimeout     = 10 * time.Minute
	MaxRate        = 10_000_000.0
	MaxBodyLimit   = 16 << 20
	MaxReplicas    = 4096
	MaxSwitchCap   = 10_000_000
	maxTargets     = 1024
	maxHeaderBytes = 256
)

// Pick is how a client chooses the target of each request.
type Pick int

const (
	// PickRandom chooses a target uniformly at random per request.
	PickRandom Pick = iota
	// PickRoundRobin cycles through the targets, client i starting at
	// target i mod len(targets), so the clients spread evenly.
	PickRoundRobin
)

// String returns "random" or "roundrobin".
func (p Pick) String() string {
	switch p {
	case PickRandom:
		return "random"
	case PickRoundRobin:
		return "roundrobin"
	}
	return fmt.Sprintf("pick(%d)", int(p))
}

// ParsePick parses "random" or "roundrobin" (also "round-robin", "rr").
func ParsePick(s string) (Pick, error) {
	switch strings.ToLower(s) {
	case "random":
		return PickRandom, nil
	case "roundrobin", "round-robin", "rr":
		return PickRoundRobin, nil
	}
	return 0, fmt.Errorf("%w: pick %q: want random or roundrobin", ErrConfig, s)
}

// DefaultSourceCIDR is where the clients' source addresses come from by
// default: a loopback block that no service listens on, so the addresses
// are clearly test clients in the proxy's logs.
var DefaultSourceCIDR = netip.MustParsePrefix("127.64.0.0/10")

// Resolver resolves a target's host name. net.DefaultResolver satisfies
// it. LookupNetIP may block up to ctx's deadline and is called from New
// only, once per distinct host name.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is one run's settings.
type Config struct {
	// Targets are the host:port addresses requests go to: the proxy nodes,
	// or the replicas themselves for a direct run. Required, at most 1024.
	Targets []string

	// AllowRemote permits targets that resolve outside loopback. Default
	// false.
	AllowRemote bool

	// Resolver resolves target host names; nil means net.DefaultResolver.
	Resolver Resolver

	// Clients is the number of simulated clients, each with its own source
	// address, transport and connections. Default 16, at most MaxClients.
	Clients int

	// Duration bounds the run: no request starts after it (in-flight ones
	// finish, within Timeout). Default 10s, at most MaxDuration.
	Duration time.Duration

	// Requests bounds the requests sent over all clients; 0 means no bound
	// other than Duration. Default 0.
	Requests int64

	// Rate is the total request rate over all clients, in requests per
	// second (open loop). 0 means closed loop: each client sends its next
	// request as soon as the previous one has answered. Default 0.
	Rate float64

	// Host is the Host header of every request; empty means the target's
	// host:port. A sticky proxy keys on it, so set it to the site under
	// test. Default "".
	Host string

	// Path is the request path with optional query. Default "/".
	Path string

	// SourceCIDR gives each client its source address: client i dials from
	// the (i+1)-th address of the prefix (the first, the network address,
	// is skipped unless the prefix holds at most two). The zero Prefix means
	// no binding: every client uses the system's choice, so a proxy that
	// keys on the client IP sees a single client. Default DefaultSourceCIDR.
	SourceCIDR netip.Prefix

	// TLS, when set, sends every request over HTTPS (HTTP/1.1) with this
	// client configuration: its RootCAs and ServerName decide what is
	// trusted. A client's TLS sessions are resumed across its connections
	// when ClientSessionCache is set. Default nil: plain HTTP.
	TLS *tls.Config

	// KeepAlive reuses connections across requests. Off, every request
	// opens and closes its own connection. Default true.
	KeepAlive bool

	// Pick chooses a target per request. Default PickRandom.
	Pick Pick

	// Header names the response header that says which replica served.
	// Ignored when BodyRegexp is set. Default "X-Backend".
	Header string

	// BodyRegexp, when set, finds the replica in the response body instead:
	// its first submatch, or the whole match when it has no group. At most
	// BodyLimit bytes of the body are searched. Default nil.
	BodyRegexp *regexp.Regexp

	// BodyLimit is how many body bytes BodyRegexp searches; the rest is
	// read and discarded. Default 64 KiB, at most MaxBodyLimit.
	BodyLimit int

	// Timeout bounds each request, from dial to the end of the body.
	// Default 5s, at most MaxTimeout.
	Timeout time.Duration

	// StickyWindow is how long after a client was moved off a replica that
	// replica must be seen serving for the move to be a violation (see the
	// package doc). Longer catches violations at low load; shorter forgives
	// a replica that restarts quickly. Default 1s.
	StickyWindow time.Duration

	// MaxReplicas bounds the distinct replica names tracked (each costs a
	// bitmap of Duration/1ms bits). Responses naming more are counted as
	// errors of kind replica_overflow. Default 64, at most MaxReplicas.
	MaxReplicas int

	// MaxSwitchRecords bounds the switches kept for judging at the end;
	// past it switches are counted but not judged (Report says how many).
	// Default 200,000, at most MaxSwitchCap.
	MaxSwitchRecords int

	// Seed seeds the random target choice; 0 means a random seed.
	Seed uint64

	// Logger receives warnings (nothing per request). Nil means
	// zerolog.Nop().
	Logger *zerolog.Logger

	// Now is the clock; nil means time.Now. It must carry a monotonic
	// reading (time.Now's does) since latencies are differences of it.
	Now func() time.Time
}

// DefaultConfig returns the defaults; Targets must still be set.
func DefaultConfig() Config {
	return Config{
		Clients:          16,
		Duration:         10 * time.Second,
		Path:             "/",
		SourceCIDR:       DefaultSourceCIDR,
		KeepAlive:        true,
		Pick:             PickRandom,
		Header:           "X-Backend",
		BodyLimit:        64 << 10,
		Timeout:          5 * time.Second,
		StickyWindow:     time.Second,
		MaxReplicas:      64,
		MaxSwitchRecords: 200_000,
	}
}

func configErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// validate checks every field and the targets' syntax; it does not resolve
// names (New does).
func (c *Config) validate() error {
	if len(c.Targets) == 0 {
		return configErr("targets", "at least one host:port is required")
	}
	if len(c.Targets) > maxTargets {
		return configErr("targets", "%d targets, at most %d", len(c.Targets), maxTargets)
	}
	for _, t := range c.Targets {
		host, port, err := net.SplitHostPort(t)
		if err != nil || host == "" || port == "" {
			return configErr("targets", "%q is not host:port", t)
		}
	}
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return configErr("clients", "%d, want 1..%d", c.Clients, MaxClients)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return configErr("duration", "%v, want > 0 and <= %v", c.Duration, MaxDuration)
	case c.Requests < 0:
		return configErr("requests", "%d, want >= 0 (0 = bounded by duration only)", c.Requests)
	case c.Rate < 0 || c.Rate > MaxRate || c.Rate != c.Rate:
		return configErr("rate", "%v, want 0 (closed loop) .. %v requests/s", c.Rate, MaxRate)
	case c.Timeout <= 0 || c.Timeout > MaxTimeout:
		return configErr("timeout", "%v, want > 0 and <= %v", c.Timeout, MaxTimeout)
	case c.StickyWindow <= 0 || c.StickyWindow > time.Hour:
		return configErr("sticky-window", "%v, want > 0 and <= 1h", c.StickyWindow)
	case c.BodyLimit < 1 || c.BodyLimit > MaxBodyLimit:
		return configErr("body-limit", "%d, want 1..%d bytes", c.BodyLimit, MaxBodyLimit)
	case c.MaxReplicas < 1 || c.MaxReplicas > MaxReplicas:
		return configErr("max-replicas", "%d, want 1..%d", c.MaxReplicas, MaxReplicas)
	case c.MaxSwitchRecords < 0 || c.MaxSwitchRecords > MaxSwitchCap:
		return configErr("max-switch-records", "%d, want 0..%d", c.MaxSwitchRecords, MaxSwitchCap)
	case c.Pick != PickRandom && c.Pick != PickRoundRobin:
		return configErr("pick", "%v, want random or roundrobin", c.Pick)
	case !strings.HasPrefix(c.Path, "/"):
		return configErr("path", "%q must start with /", c.Path)
	case strings.ContainsAny(c.Host, " \t\r\n/"):
		return configErr("host", "%q is not a host name", c.Host)
	}
	if c.BodyRegexp == nil {
		if c.Header == "" || len(c.Header) > maxHeaderBytes || !validHeaderName(c.Header) {
			return configErr("header", "%q is not a header name", c.Header)
		}
	}
	if c.SourceCIDR.IsValid() {
		if n := prefixSize(c.SourceCIDR); n < uint64(c.Clients) {
			return configErr("source-cidr", "%v holds %d usable addresses, %d clients need one each",
				c.SourceCIDR, n, c.Clients)
		}
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 5.1).
func validHeaderName(s string) bool {
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return http.CanonicalHeaderKey(s) != ""
}
