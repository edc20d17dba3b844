package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// ErrConfig: a Config that New cannot run with.
var ErrConfig = errors.New("proxy: invalid config")

// Config holds the proxy's settings. Zero durations and sizes take the
// defaults of DefaultConfig.
type Config struct {
	// Bindings is the sticky database. Required.
	Bindings Bindings
	// Routes are the pools served at start. Required (see Routes.Validate).
	Routes Routes
	// TrustedProxies are the peers whose X-Forwarded-For / Forwarded headers
	// are believed (see ClientIP). Empty trusts nobody.
	TrustedProxies Trusted
	// ClientPrefix is how much of the client's address keys its binding
	// (see ClientPrefix). Default 32,64; the zero value uses the whole
	// address.
	ClientPrefix ClientPrefix
	// AccessLog, if not nil, gets one entry per request.
	AccessLog AccessLog

	// Logger gets the start-up summary (info), backend state changes (warn)
	// and one line per request (debug only). nil means zerolog.Nop().
	Logger *zerolog.Logger
	// CatchUp, when set, blocks until the node has caught up with its peers
	// (gossip readiness) or ctx ends. A request arriving before that waits
	// for it (at most CatchUpWait): the fleet may have bound the client
	// already, or rebound it since the binding this node restored from
	// disk, and a restarted node that went by what it has would move the
	// client. Once caught up, no request waits. Called concurrently.
	CatchUp func(ctx context.Context) error
	// CatchUpWait bounds that wait; after it the request is served by
	// rendezvous hashing (a restart never refuses traffic). Default 2s.
	CatchUpWait time.Duration

	// Now is the clock bindings are stamped with. nil means time.Now.
	// Latencies are always measured with the monotonic clock.
	Now func() time.Time
	// Registerer receives the proxy's metrics. nil registers nothing.
	Registerer prometheus.Registerer

	// DialTimeout bounds opening a connection to a replica; a replica that
	// does not answer in time counts as refusing. Default 2s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a replica's response
	// headers once the request is sent (then 504). Default 60s; raise it
	// for long-polling applications.
	ResponseHeaderTimeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool per replica. It should be
	// about the number of concurrent requests a replica sees, or connections
	// are closed and reopened under load. Default 1024.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes a pooled replica connection unused this long.
	// Default 90s.
	IdleConnTimeout time.Duration
	// FlushInterval is ReverseProxy.FlushInterval: 0 flushes only streamed
	// responses (no Content-Length, event streams) at once, -1 flushes
	// after every write. Default 0.
	FlushInterval time.Duration
	// BufferSize is the size of the pooled copy buffers. Default 32 KiB.
	BufferSize int
	// Forwarding is how requests reach replicas. "fast" (the default):
	// GET and HEAD requests without a body or an upgrade, to http://
	// replicas, go over tether's own HTTP/1.1 client (fastpath.go: the
	// same request and response ReverseProxy would send, a keep-alive
	// pool per replica, no goroutine handoffs); every other request goes
	// through httputil.ReverseProxy and http.Transport. "stdlib": every
	// request goes through httputil.ReverseProxy. A FlushInterval above 0
	// implies "stdlib".
	Forwarding string

	// Server settings for NewServer, against slow or idle clients.
	// ReadHeaderTimeout default 10s, IdleTimeout (keep-alive) default 120s,
	// MaxHeaderBytes default 64 KiB. ReadTimeout/WriteTimeout default 0
	// (none), since requests and responses may stream for long.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration

	// Rules refuse CONNECT, TRACE (unless allowed) and Connection headers
	// with too many options, before routing (hardening.go).
	Rules RequestRules
	// BindQuota bounds the new bindings one client address makes
	// (bindquota.go).
	BindQuota BindQuota
	// Timeouts bound slow request bodies and unread responses; each is
	// renewed as bytes flow (hardening.go).
	Timeouts Timeouts
}

// DefaultConfig returns the defaults documented on Config, without
// Bindings and Routes.
func DefaultConfig() Config {
	return Config{
		DialTimeout:           2 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		BufferSize:            32 << 10,
		Forwarding:            ForwardFast,
		ReadHeaderTimeout:     10 * time.Second,
		IdleTimeout:           120 * time.Second,
		MaxHeaderBytes:        64 << 10,
		CatchUpWait:           2 * time.Second,
		ClientPrefix:          DefaultClientPrefix,
		Rules:                 RequestRules{MaxConnectionTokens: 16},
		BindQuota:             BindQuota{Burst: 100, PerSecond: 1, MaxSources: 65536},
		Timeouts:              Timeouts{BodyIdle: 30 * time.Second, MinBodyRate: 256, WriteIdle: 30 * time.Second},
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.CatchUpWait == 0 {
		c.CatchUpWait = d.CatchUpWait
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.ResponseHeaderTimeout == 0 {
		c.ResponseHeaderTimeout = d.ResponseHeaderTimeout
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = d.MaxIdleConnsPerHost
	}
	if c.IdleConnTimeout == 0 {
		c.IdleConnTimeout = d.IdleConnTimeout
	}
	if c.BufferSize == 0 {
		c.BufferSize = d.BufferSize
	}
	if c.Forwarding == "" {
		c.Forwarding = d.Forwarding
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.BindQuota.Burst == 0 {
		c.BindQuota.Burst = d.BindQuota.Burst
	}
	if c.BindQuota.PerSecond == 0 {
		c.BindQuota.PerSecond = d.BindQuota.PerSecond
	}
	if c.BindQuota.MaxSources == 0 {
		c.BindQuota.MaxSources = d.BindQuota.MaxSources
	}
	if c.Rules.MaxConnectionTokens == 0 {
		c.Rules.MaxConnectionTokens = d.Rules.MaxConnectionTokens
	}
	if c.Timeouts.BodyIdle == 0 {
		c.Timeouts.BodyIdle = d.Timeouts.BodyIdle
	}
	if c.Timeouts.MinBodyRate == 0 {
		c.Timeouts.MinBodyRate = d.Timeouts.MinBodyRate
	}
	if c.Timeouts.WriteIdle == 0 {
		c.Timeouts.WriteIdle = d.Timeouts.WriteIdle
	}
	if c.Logger == nil {
		l := zerolog.Nop()
		c.Logger = &l
	}
}

func (c *Config) validate() error {
	switch {
	case c.Bindings == nil:
		return fmt.Errorf("%w: Bindings is nil", ErrConfig)
	case c.DialTimeout < 0, c.ResponseHeaderTimeout < 0, c.IdleConnTimeout < 0,
		c.ReadHeaderTimeout < 0, c.IdleTimeout < 0, c.ReadTimeout < 0, c.WriteTimeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrConfig)
	case c.MaxIdleConnsPerHost < 0:
		return fmt.Errorf("%w: MaxIdleConnsPerHost %d < 0", ErrConfig, c.MaxIdleConnsPerHost)
	case c.BufferSize < 512:
		return fmt.Errorf("%w: BufferSize %d < 512", ErrConfig, c.BufferSize)
	case c.MaxHeaderBytes < 1024:
		return fmt.Errorf("%w: MaxHeaderBytes %d < 1024", ErrConfig, c.MaxHeaderBytes)
	case c.Forwarding != ForwardFast && c.Forwarding != ForwardStdlib:
		return fmt.Errorf("%w: Forwarding %q: want %q or %q", ErrConfig, c.Forwarding, ForwardFast, ForwardStdlib)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("%w: TrustedProxies holds an invalid prefix", ErrConfig)
		}
	}
	return c.Routes.Validate()
}
