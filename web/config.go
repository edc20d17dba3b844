package web

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Errors of package web.
var (
	// ErrConfig: a Config field is out of range; the message names it.
	ErrConfig = errors.New("web: invalid config")
	// ErrNoToken: the admin listener would accept connections from other
	// machines but no token is set.
	ErrNoToken = errors.New("web: refusing to serve the admin API on a non-loopback address without a token (set TETHER_ADMIN_TOKEN, or listen on 127.0.0.1)")
	// ErrNoCore: Sources.Core is nil.
	ErrNoCore = errors.New("web: Sources.Core is required")
)

// Config holds the admin listener's settings.
type Config struct {
	// Listen is the admin address, host:port. Default "127.0.0.1:9090".
	// A host that is not a loopback address or "localhost" (including an
	// empty host, 0.0.0.0 and ::) requires Token.
	Listen string

	// Token is the shared secret operators present as
	// "Authorization: Bearer <token>" or through the login form. Empty means
	// no authentication, allowed only on loopback. At least 16 bytes when
	// set, so that it cannot be guessed online.
	Token string

	// AllowedHosts are extra names the Host and Origin headers may carry
	// (DNS-rebinding protection), e.g. "admin.example.com" or
	// "*.internal.example.com". IP literals, "localhost", "*.localhost" and
	// the host of Listen are always allowed.
	AllowedHosts []string

	// SecureCookie marks the session cookie Secure. Set it when a TLS proxy
	// sits in front of the admin listener; cookies on requests that arrive
	// over TLS are always Secure. Default false.
	SecureCookie bool

	// SessionTTL is how long a login lasts (on the node it was made on;
	// logout ends it sooner). Default 1h.
	SessionTTL time.Duration

	// Refresh is the live-refresh period of the pages. Default 2s.
	Refresh time.Duration

	// PageSize is the default bindings page size; MaxPageSize the largest a
	// request may ask for. Defaults 50 and 1,000 (the core caps at 10,000).
	PageSize    int
	MaxPageSize int

	// DigestMargin is the margin passed to Digest for /api/v1/vector
	// (entries this close to expiry are left out, so nodes compared a moment
	// apart agree). A request may override it with ?margin=. Default 5s.
	DigestMargin time.Duration

	// CountTTL is how long the per-replica binding counts (a walk of the
	// whole table) are reused. Default 5s.
	CountTTL time.Duration

	// FailedAuthRate and FailedAuthBurst bound wrong tokens per source
	// address (IPv6: per /64), per second: past them every token, right
	// or wrong, gets 429 until the source regains one. Defaults 5, 20.
	FailedAuthRate  float64
	FailedAuthBurst int

	// ReadHeaderTimeout, WriteTimeout and IdleTimeout bound one connection.
	// Defaults 5s, 30s, 2m.
	ReadHeaderTimeout time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration

	// Registry receives the admin's collectors and is what /metrics serves.
	// Other packages (proxy, gossip) register theirs on the same registry.
	// nil: a new registry with the Go and process collectors.
	Registry *prometheus.Registry

	// Logger; nil means zerolog.Nop().
	Logger *zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:9090",
		SessionTTL:        time.Hour,
		Refresh:           2 * time.Second,
		PageSize:          50,
		MaxPageSize:       1000,
		DigestMargin:      5 * time.Second,
		CountTTL:          5 * time.Second,
		FailedAuthRate:    5,
		FailedAuthBurst:   20,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// minTokenLen keeps tokens out of reach of online guessing.
const minTokenLen = 16

func (c *Config) validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, a...))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("Listen", "%q is not host:port: %v", c.Listen, err)
	}
	if c.Token != "" {
		if err := CheckToken(c.Token); err != nil {
			return bad("Token", "%v", err)
		}
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return bad("Token", "must not contain white space")
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ :") {
			return bad("AllowedHosts", "%q is not a host name (no scheme, port or path)", h)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SessionTTL", c.SessionTTL}, {"Refresh", c.Refresh}, {"CountTTL", c.CountTTL},
		{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"WriteTimeout", c.WriteTimeout}, {"IdleTimeout", c.IdleTimeout}} {
		if d.v <= 0 {
			return bad(d.name, "must be > 0, got %v", d.v)
		}
	}
	if c.DigestMargin < 0 {
		return bad("DigestMargin", "must be >= 0, got %v", c.DigestMargin)
	}
	if c.PageSize < 1 || c.MaxPageSize < c.PageSize || c.MaxPageSize > 10_000 {
		return bad("PageSize/MaxPageSize", "need 1 <= PageSize <= MaxPageSize <= 10000, got %d, %d", c.PageSize, c.MaxPageSize)
	}
	if c.FailedAuthRate <= 0 || c.FailedAuthBurst < 1 {
		return bad("FailedAuthRate/FailedAuthBurst", "must be > 0")
	}
	if c.Token == "" && !loopbackListen(c.Listen) {
		return fmt.Errorf("%w (listen %q)", ErrNoToken, c.Listen)
	}
	return nil
}

// loopbackListen reports whether addr's host only accepts connections
// from this machine. An empty host, a wildcard or any name but localhost
// is treated as reachable from outside.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
