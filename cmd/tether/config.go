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
	AdminHosts      string `env:"TETHER_ADMIN_ALLOWED_HOSTS" flag:"admin-allowed-hosts" help:"names the admin's Host header may carry besides IP addresses and localhost (DNS-rebinding protection), comma-separated, *.suffix allowed: e.g. tether-admin,*.tether-gossip"`
	Backends        string `env:"TETHER_BACKENDS" flag:"backends" help:"default pool: name=url,name=url"`
	RoutesFile      string `env:"TETHER_ROUTES_FILE" flag:"routes-file" help:"YAML file of per-Host pools, weights, health checks (reloaded on SIGHUP)"`
	GossipBind      string `env:"TETHER_GOSSIP_BIND" envDefault:"127.0.0.1:7946" flag:"gossip-bind" help:"memberlist bind address: IP:port (0.0.0.0 = all interfaces; not loopback: TETHER_GOSSIP_KEY required)"`
	GossipAdvertise string `env:"TETHER_GOSSIP_ADVERTISE" flag:"gossip-advertise" help:"address peers use to reach this node: IP:port (default: the bind address, or the first private one)"`
	Join            string `env:"TETHER_JOIN" flag:"join" help:"peers to join: host:port,... (a DNS name joins every address it resolves to, re-resolved while the node has no peers)"`
	GossipKey       string `env:"TETHER_GOSSIP_KEY" flag:"gossip-key" help:"base64 AES key for gossip (16, 24 or 32 bytes)" secret:"true"`
	TTL             string `env:"TETHER_TTL" envDefault:"30m" flag:"ttl" help:"binding time-to-live"`
	PushInterval    string `env:"TETHER_PUSH_INTERVAL" envDefault:"20ms" flag:"push-interval" help:"push budget window: when busy, at most TETHER_PUSH_BURST change groups per peer per interval (idle: at once)"`
	PushBurst       string `env:"TETHER_PUSH_BURST" envDefault:"20" flag:"push-burst" help:"change groups per peer per push interval; fewer = fewer, larger messages (a busy node also shares 1,000 groups/s among its peers, see bench/SCALE.md)"`
	DataDir         string `env:"TETHER_DATA_DIR" flag:"data-dir" help:"write-ahead log and snapshots; empty = epoch mode"`
	MaxBindings     string `env:"TETHER_MAX_BINDINGS" envDefault:"4000000" flag:"max-bindings" help:"bindings one node holds at most; past it one is evicted: expired first, then unused ones, then a flood's newest (0 = no cap)"`
	Forwarding      string `env:"TETHER_FORWARDING" envDefault:"fast" flag:"forwarding" help:"fast (plain GET/HEAD read by tether's own connection loop and sent on its own keep-alive client, the rest through net/http's server and httputil.ReverseProxy) or stdlib (everything through net/http's server and httputil.ReverseProxy)"`
	TrustedProxies  string `env:"TETHER_TRUSTED_PROXIES" flag:"trusted-proxies" help:"CIDRs whose X-Forwarded-For is believed, comma-separated"`
	// The edge (edgeconfig.go).
	TLSListen       string `env:"TETHER_TLS_LISTEN" flag:"tls-listen" help:"TLS (HTTPS, HTTP/2) proxy address, host:port; empty = none"`
	TLSCert         string `env:"TETHER_TLS_CERT" flag:"tls-cert" help:"PEM certificate (chain allowed) for clients without SNI or with an unknown name"`
	TLSKey          string `env:"TETHER_TLS_KEY" flag:"tls-key" help:"PEM private key of TETHER_TLS_CERT"`
	TLSMinVersion   string `env:"TETHER_TLS_MIN_VERSION" envDefault:"1.2" flag:"tls-min-version" help:"1.2 or 1.3"`
	TLSTicketRotate string `env:"TETHER_TLS_TICKET_ROTATE" envDefault:"1h" flag:"tls-ticket-rotate" help:"age at which the fleet's TLS session ticket key is replaced (1m..24h)"`
	TLSTicketKeep   string `env:"TETHER_TLS_TICKET_KEEP" envDefault:"3" flag:"tls-ticket-keep" help:"TLS session ticket keys kept (1..16): a ticket resumes for about keep x rotate"`
	HTTPSRedirect   string `env:"TETHER_HTTPS_REDIRECT" envDefault:"false" flag:"https-redirect" help:"the plain listener answers 308 to https (needs TETHER_TLS_LISTEN)"`
	ProxyProtocol   string `env:"TETHER_PROXY_PROTOCOL" envDefault:"off" flag:"proxy-protocol" help:"on: connections from TETHER_TRUSTED_PROXIES must send a PROXY v1/v2 header, others must not"`
	AccessLog       string `env:"TETHER_ACCESS_LOG" envDefault:"off" flag:"access-log" help:"off, stdout, stderr or a file path (reopened on SIGUSR1)"`
	AccessLogFormat string `env:"TETHER_ACCESS_LOG_FORMAT" envDefault:"json" flag:"access-log-format" help:"json or combined"`
	ClientPrefix    string `env:"TETHER_CLIENT_PREFIX" envDefault:"32,64" flag:"client-prefix" help:"bits of the client's IPv4,IPv6 address that key its binding"`
	LogLevel        string `env:"TETHER_LOG_LEVEL" envDefault:"info" flag:"log-level" help:"trace, debug, info, warn or error"`
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
	AdminHosts  []string // extra names allowed in the admin's Host header

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
	PushBurst      int    // gossip.Config.PushBurst
	DataDir        string // "" = epoch mode
	MaxBindings    int    // stickydb.Config.MaxBindings; 0 = no cap
	Forwarding     string // proxy.Config.Forwarding
	TrustedProxies proxy.Trusted

	LogLevel  zerolog.Level
	LogFormat string // json or console

	Edge   edgeConfig // TLS, PROXY protocol, access log, client prefix
	Limits limits     // limits.go
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
// flag.ErrHelp is returned for -h. serve and validate both start here, so
// a check added to parse (or to configChecks) holds for both.
func loadConfig(args []string, environ map[string]string, hostname func() (string, error), out io.Writer) (Config, error) {
	s, err := readSettings("tether serve", args, environ, out)
	if err != nil {
		return Config{}, err
	}
	return s.config(hostname)
}

// readSettings merges the environment and the flags in args, unparsed.
func readSettings(name string, args []string, environ map[string]string, out io.Writer) (settings, error) {
	var s settings
	if err := env.ParseWithOptions(&s, env.Options{Environment: environ}); err != nil {
		return s, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	fs := settingsFlags(name, &s, out)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, err
		}
		return s, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("%w: unexpected arguments %q", ErrConfig, fs.Args())
	}
	return s, nil
}

// settingsFlags binds one flag per setting to s, defaulting to the value s
// holds (the environment's).
func settingsFlags(name string, s *settings, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		name := f.Tag.Get("flag")
		fs.StringVar(v.Field(i).Addr().Interface().(*string), name, v.Field(i).String(),
			f.Tag.Get("help")+" ["+f.Tag.Get("env")+"]")
		if f.Tag.Get("secret") != "" {
			fs.Lookup(name).DefValue = "" // keep secrets from the environment out of -h
		}
	}
	return fs
}

// configChecks are checks of a parsed Config that read more than the
// settings (certificate files, say): a file that owns such a setting
// appends its check from init. loadConfig runs them after parse, so serve
// and `tether validate` (and so ExecReload's validate) run the same ones.
var configChecks []func(Config) error

// config parses s and runs configChecks.
func (s settings) config(hostname func() (string, error)) (Config, error) {
	c, err := s.parse(hostname)
	if err != nil {
		return c, err
	}
	for _, check := range configChecks {
		if err := check(c); err != nil {
			return c, err
		}
	}
	return c, nil
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
		if err := checkHostPort(a.value, false); err != nil {
			return c, bad(a.field, a.value, "%v", err)
		}
	}
	// memberlist takes IP addresses only: a name would bind all
	// interfaces (bind) or stop the start (advertise).
	if err := checkIPPort(s.GossipBind); err != nil {
		return c, bad("GossipBind", s.GossipBind, "%v", err)
	}
	if s.GossipAdvertise != "" {
		if err := checkIPPort(s.GossipAdvertise); err != nil || strings.HasPrefix(s.GossipAdvertise, ":") {
			if err == nil {
				err = errors.New("no IP address")
			}
			return c, bad("GossipAdvertise", s.GossipAdvertise, "%v", err)
		}
	}
	if host, _, _ := net.SplitHostPort(s.AdminListen); !isLoopback(host) && s.AdminToken == "" {
		return c, bad("AdminListen", s.AdminListen, "not a loopback address, so TETHER_ADMIN_TOKEN (--admin-token) is required")
	}
	for _, h := range splitList(s.AdminHosts) {
		if strings.ContainsAny(h, "/: ") || strings.Contains(h[1:], "*") || (h[0] == '*' && !strings.HasPrefix(h, "*.")) {
			return c, bad("AdminHosts", s.AdminHosts, "%q: want a host name or *.suffix (no scheme, port or path)", h)
		}
		c.AdminHosts = append(c.AdminHosts, strings.ToLower(h))
	}
	if s.AdminToken != "" && len(s.AdminToken) < 16 {
		return c, bad("AdminToken", s.AdminToken, "shorter than 16 characters")
	}
	for _, j := range splitList(s.Join) {
		if err := checkHostPort(j, true); err != nil {
			return c, bad("Join", s.Join, "peer %q: %v (like node-b:7946)", j, err)
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
	if c.PushBurst, err = strconv.Atoi(strings.TrimSpace(s.PushBurst)); err != nil || c.PushBurst < 1 || c.PushBurst > 1000 {
		return c, bad("PushBurst", s.PushBurst, "want a whole number from 1 to 1000")
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
	switch lvl := strings.ToLower(strings.TrimSpace(s.LogLevel)); lvl {
	case "trace", "debug", "info", "warn", "error":
		c.LogLevel, _ = zerolog.ParseLevel(lvl)
	default:
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
	if c.Edge, err = s.parseEdge(c); err != nil {
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

// checkHostPort accepts host:port; the host may be empty ("all
// interfaces") unless needHost.
func checkHostPort(s string, needHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if needHost && host == "" {
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

// checkIPPort accepts IP:port, or :port for all interfaces.
func checkIPPort(s string) error {
	if err := checkHostPort(s, false); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(s)
	if _, err := netip.ParseAddr(host); err != nil && host != "" {
		return fmt.Errorf("%q is not an IP address (memberlist takes no names here)", host)
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
