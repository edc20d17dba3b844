package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/rs/zerolog"
	"github.com/tetherproxy/tether/proxy"
)

// settings are the external settings as given (DESIGN.md, External
// contract): the environment first (caarlos0/env), then flags of the same
// meaning, which win. All are strings here, so that every bad value is
// reported the same way, by parse in Config.
//
// To add a setting: a field here (env, flag, help), a field in Config, and
// its parsing in parse.
type settings struct {
	NodeName        string `env:"TETHER_NODE_NAME" flag:"node-name" help:"unique, stable node name (default: the hostname)"`
	Listen          string `env:"TETHER_LISTEN" envDefault:":8080" flag:"listen" help:"proxy address, host:port"`
	AdminListen     string `env:"TETHER_ADMIN_LISTEN" envDefault:"127.0.0.1:9090" flag:"admin-listen" help:"admin UI, API and /metrics address, host:port"`
	AdminToken      string `env:"TETHER_ADMIN_TOKEN" flag:"admin-token" help:"admin bearer token; required when admin is not on loopback" secret:"true"`
	Backends        string `env:"TETHER_BACKENDS" flag:"backends" help:"default pool: name=url,name=url"`
	RoutesFile      string `env:"TETHER_ROUTES_FILE" flag:"routes-file" help:"YAML file of per-Host pools, weights, health checks (reloaded on SIGHUP)"`
	GossipBind      string `env:"TETHER_GOSSIP_BIND" envDefault:"127.0.0.1:7946" flag:"gossip-bind" help:"memberlist bind host:port (not loopback: TETHER_GOSSIP_KEY required)"`
	GossipAdvertise string `env:"TETHER_GOSSIP_ADVERTISE" flag:"gossip-advertise" help:"address peers use to reach this node, host:port"`
	Join            string `env:"TETHER_JOIN" flag:"join" help:"peers to join: host:port,host:port"`
	GossipKey       string `env:"TETHER_GOSSIP_KEY" flag:"gossip-key" help:"base64 AES key for gossip (16, 24 or 32 bytes)" secret:"true"`
	TTL             string `env:"TETHER_TTL" envDefault:"30m" flag:"ttl" help:"binding time-to-live"`
	PushInterval    string `env:"TETHER_PUSH_INTERVAL" envDefault:"20ms" flag:"push-interval" help:"least gap between two change groups to one peer"`
	DataDir         string `env:"TETHER_DATA_DIR" flag:"data-dir" help:"write-ahead log and snapshots; empty = epoch mode"`
	MaxBindings     string `env:"TETHER_MAX_BINDINGS" envDefault:"4000000" flag:"max-bindings" help:"bindings one node holds at most; past it the one closest to expiry is evicted (0 = no cap)"`
	Forwarding      string `env:"TETHER_FORWARDING" envDefault:"fast" flag:"forwarding" help:"fast (plain GET/HEAD on tether's own keep-alive client, the rest through httputil.ReverseProxy) or stdlib (everything through httputil.ReverseProxy)"`
	TrustedProxies  string `env:"TETHER_TRUSTED_PROXIES" flag:"trusted-proxies" help:"CIDRs whose X-Forwarded-For is believed, comma-separated"`
	LogLevel        string `env:"TETHER_LOG_LEVEL" envDefault:"info" flag:"log-level" help:"debug, info, warn or error"`
	LogFormat       string `env:"TETHER_LOG_FORMAT" envDefault:"json" flag:"log-format" help:"json or console"`

	// Limits against hostile clients (limits.go, docs/security.md).
	MaxConns          string `env:"TETHER_MAX_CONNS" envDefault:"0" flag:"max-conns" help:"client connections open at once at most (0 = half of the open-files limit left after a reserve)"`
	MaxConnsPerSource string `env:"TETHER_MAX_CONNS_PER_SOURCE" envDefault:"256" flag:"max-conns-per-source" help:"client connections from one address (IPv6: one /64) at most; trusted proxies are exempt (0 = no cap)"`
	BodyTimeout       string `env:"TETHER_BODY_TIMEOUT" envDefault:"30s" flag:"body-timeout" help:"cut a request body idle this long, or slower than 256 B/s after it (0 = off)"`
	WriteTimeout      string `env:"TETHER_WRITE_TIMEOUT" envDefault:"30s" flag:"write-timeout" help:"cut a response the client does not read for this long (0 = off)"`
	TunnelIdleTimeout string `env:"TETHER_TUNNEL_IDLE_TIMEOUT" envDefault:"10m" flag:"tunnel-idle-timeout" help:"close an upgraded connection (WebSocket) with no traffic for this long (0 = never)"`
	BindBurst         string `env:"TETHER_BIND_BURST" envDefault:"100" flag:"bind-burst" help:"new bindings one client address (IPv6: one /64) may make at once; past it the client is served unbound (0 = no quota)"`
	BindRate          string `env:"TETHER_BIND_RATE" envDefault:"1" flag:"bind-rate" help:"new bindings per second one client address regains after its burst"`
	AllowTrace        string `env:"TETHER_ALLOW_TRACE" envDefault:"false" flag:"allow-trace" help:"forward TRACE requests"`
	GossipInsecure    string `env:"TETHER_GOSSIP_INSECURE" envDefault:"false" flag:"gossip-insecure" help:"allow gossip on a non-loopback address without TETHER_GOSSIP_KEY (anyone reaching it joins the fleet)"`
}

// Config is the validated configuration a node runs with. Other parts
// (gossip, recovery, admin) read their settings from it.
type Config struct {
	NodeName    string
	Listen      string // host:port
	AdminListen string // host:port
	AdminToken  string

	// Routes from Backends and RoutesFile; both are kept for reloads.
	Routes     proxy.Routes
	Backends   string
	RoutesFile string

	GossipBind      string   // host:port
	GossipAdvertise string   // host:port or ""
	Join            []string // host:port or host
	GossipKey       []byte   // nil, or 16, 24 or 32 bytes

	TTL            time.Duration
	PushInterval   time.Duration
	DataDir        string // "" = epoch mode
	MaxBindings    int    // stickydb.Config.MaxBindings; 0 = no cap
	Forwarding     string // proxy.Config.Forwarding
	TrustedProxies proxy.Trusted

	LogLevel  zerolog.Level
	LogFormat string // json or console

	Limits limits // limits.go
}

// ErrConfig marks a configuration error (exit code 2).
var ErrConfig = errors.New("invalid configuration")

// settingError names the variable, its flag and the bad value.
type settingError struct {
	env, flag, value, msg string
	secret                bool
}

func (e *settingError) Error() string {
	v := strconv.Quote(e.value)
	if e.secret {
		v = "(value hidden)"
	}
	return fmt.Sprintf("%s (--%s) %s: %s", e.env, e.flag, v, e.msg)
}

func (e *settingError) Unwrap() error { return ErrConfig }

// loadConfig reads the environment, then the flags in args, and validates
// everything. hostname supplies the default node name. Help goes to out;
// flag.ErrHelp is returned for -h.
func loadConfig(args []string, environ map[string]string, hostname func() (string, error), out io.Writer) (Config, error) {
	var s settings
	if err := env.ParseWithOptions(&s, env.Options{Environment: environ}); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	fs := flag.NewFlagSet("tether serve", flag.ContinueOnError)
	fs.SetOutput(out)
	v := reflect.ValueOf(&s).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		name := f.Tag.Get("flag")
		fs.StringVar(v.Field(i).Addr().Interface().(*string), name, v.Field(i).String(),
			f.Tag.Get("help")+" ["+f.Tag.Get("env")+"]")
		if f.Tag.Get("secret") != "" {
			fs.Lookup(name).DefValue = "" // keep secrets from the environment out of -h
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected arguments %q", ErrConfig, fs.Args())
	}
	return s.parse(hostname)
}

// bad builds the error for field (a settings field name).
func bad(field, value, format string, args ...any) error {
	f, _ := reflect.TypeOf(settings{}).FieldByName(field)
	return &settingError{env: f.Tag.Get("env"), flag: f.Tag.Get("flag"), value: value,
		msg: fmt.Sprintf(format, args...), secret: f.Tag.Get("secret") != ""}
}

func (s settings) parse(hostname func() (string, error)) (Config, error) {
	c := Config{
		NodeName: strings.TrimSpace(s.NodeName), Listen: s.Listen, AdminListen: s.AdminListen,
		AdminToken: s.AdminToken, Backends: s.Backends, RoutesFile: s.RoutesFile,
		GossipBind: s.GossipBind, GossipAdvertise: s.GossipAdvertise, DataDir: s.DataDir,
	}
	if c.NodeName == "" {
		h, err := hostname()
		if err != nil || h == "" {
			return c, bad("NodeName", s.NodeName, "empty, and the hostname is unknown (%v)", err)
		}
		c.NodeName = h
	}
	if err := checkNodeName(c.NodeName); err != nil {
		return c, bad("NodeName", c.NodeName, "%v", err)
	}
	for _, a := range []struct{ field, value string }{
		{"Listen", s.Listen}, {"AdminListen", s.AdminListen}, {"GossipBind", s.GossipBind},
	} {
		if err := checkHostPort(a.value, true); err != nil {
			return c, bad(a.field, a.value, "%v", err)
		}
	}
	if s.GossipAdvertise != "" {
		if err := checkHostPort(s.GossipAdvertise, true); err != nil {
			return c, bad("GossipAdvertise", s.GossipAdvertise, "%v", err)
		}
	}
	if host, _, _ := net.SplitHostPort(s.AdminListen); !isLoopback(host) && s.AdminToken == "" {
		return c, bad("AdminListen", s.AdminListen, "not a loopback address, so TETHER_ADMIN_TOKEN (--admin-token) is required")
	}
	if s.AdminToken != "" && len(s.AdminToken) < 16 {
		return c, bad("AdminToken", s.AdminToken, "shorter than 16 characters")
	}
	for _, j := range splitList(s.Join) {
		if err := checkHostPort(j, false); err != nil {
			return c, bad("Join", s.Join, "peer %q: %v", j, err)
		}
		c.Join = append(c.Join, j)
	}
	if s.GossipKey != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s.GossipKey))
		if err != nil {
			return c, bad("GossipKey", s.GossipKey, "not base64")
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return c, bad("GossipKey", s.GossipKey, "decodes to %d bytes; want 16, 24 or 32", n)
		}
		c.GossipKey = k
	}
	var err error
	if c.TTL, err = positiveDuration(s.TTL); err != nil {
		return c, bad("TTL", s.TTL, "%v", err)
	}
	if c.PushInterval, err = positiveDuration(s.PushInterval); err != nil {
		return c, bad("PushInterval", s.PushInterval, "%v", err)
	}
	if c.PushInterval >= c.TTL {
		return c, bad("PushInterval", s.PushInterval, "must be shorter than TETHER_TTL (%v)", c.TTL)
	}
	if c.MaxBindings, err = strconv.Atoi(strings.TrimSpace(s.MaxBindings)); err != nil || c.MaxBindings < 0 {
		return c, bad("MaxBindings", s.MaxBindings, "want a whole number >= 0 (0 = no cap)")
	}
	switch c.Forwarding = strings.ToLower(strings.TrimSpace(s.Forwarding)); c.Forwarding {
	case proxy.ForwardFast, proxy.ForwardStdlib:
	default:
		return c, bad("Forwarding", s.Forwarding, "want fast or stdlib")
	}
	if s.DataDir != "" {
		if fi, err := os.Stat(s.DataDir); err == nil && !fi.IsDir() {
			return c, bad("DataDir", s.DataDir, "not a directory")
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return c, bad("DataDir", s.DataDir, "%v", err)
		}
	}
	for _, p := range splitList(s.TrustedProxies) {
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			a, err2 := netip.ParseAddr(p)
			if err2 != nil {
				return c, bad("TrustedProxies", s.TrustedProxies, "%q is not a CIDR (like 10.0.0.0/8) or an address", p)
			}
			pf = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, pf.Masked())
	}
	if c.LogLevel, err = zerolog.ParseLevel(strings.ToLower(s.LogLevel)); err != nil || s.LogLevel == "" {
		return c, bad("LogLevel", s.LogLevel, "want trace, debug, info, warn or error")
	}
	switch c.LogFormat = strings.ToLower(s.LogFormat); c.LogFormat {
	case "json", "console":
	default:
		return c, bad("LogFormat", s.LogFormat, "want json or console")
	}
	if err := s.parseLimits(&c); err != nil {
		return c, err
	}
	if c.Routes, err = loadRoutes(c); err != nil {
		return c, err
	}
	return c, nil
}

// loadRoutes reads TETHER_BACKENDS and the routes file; the error names
// whichever is wrong. Serve calls it again on SIGHUP.
func loadRoutes(c Config) (proxy.Routes, error) {
	if _, err := proxy.ParseBackends(c.Backends); err != nil {
		return proxy.Routes{}, bad("Backends", c.Backends, "%v", err)
	}
	r, err := proxy.LoadRoutes(c.Backends, c.RoutesFile)
	if err != nil {
		if c.RoutesFile != "" {
			return r, bad("RoutesFile", c.RoutesFile, "%v", err)
		}
		return r, bad("Backends", c.Backends, "%v", err)
	}
	return r, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New("not a duration (like 30m, 20ms)")
	}
	if d <= 0 {
		return 0, errors.New("must be > 0")
	}
	return d, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkHostPort accepts host:port (host may be empty for "all
// interfaces"); with needPort false, a bare host too.
func checkHostPort(s string, needPort bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if needPort || s == "" || strings.ContainsAny(s, " /") {
			return errors.New("want host:port")
		}
		return nil
	}
	if !needPort && host == "" {
		return errors.New("no host")
	}
	if strings.ContainsAny(host, " /") {
		return errors.New("bad host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func checkNodeName(n string) error {
	if len(n) > 128 {
		return errors.New("longer than 128 bytes")
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}
