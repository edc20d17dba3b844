package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func hostname() (string, error) { return "host-a", nil }

func baseEnv() map[string]string {
	return map[string]string{"TETHER_BACKENDS": "a=http://127.0.0.1:8081,b=http://127.0.0.1:8082"}
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(nil, baseEnv(), hostname, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "host-a" || c.Listen != ":8080" || c.AdminListen != "127.0.0.1:9090" ||
		c.GossipBind != "127.0.0.1:7946" || c.TTL != 30*time.Minute || c.PushInterval != 20*time.Millisecond || c.PushBurst != 20 ||
		c.LogLevel != zerolog.InfoLevel || c.LogFormat != "json" || c.DataDir != "" || c.GossipKey != nil ||
		c.MaxBindings != 4_000_000 {
		t.Fatalf("defaults: %+v", c)
	}
	if len(c.Routes.Pools) != 1 || len(c.Routes.Pools[0].Backends) != 2 {
		t.Fatalf("routes: %+v", c.Routes)
	}
}

func TestConfigFlagsWin(t *testing.T) {
	env := baseEnv()
	env["TETHER_LISTEN"] = "127.0.0.1:1111"
	env["TETHER_TTL"] = "5m"
	env["TETHER_NODE_NAME"] = "from-env"
	env["TETHER_MAX_BINDINGS"] = "10"
	key := "MDEyMzQ1Njc4OWFiY2RlZg==" // 16 bytes
	c, err := loadConfig([]string{"--listen", "127.0.0.1:2222", "-ttl=7m", "--gossip-key", key,
		"--join", "10.0.0.1:7946, node-b:7946", "--trusted-proxies", "10.0.0.0/8,192.0.2.7",
		"--admin-listen", "0.0.0.0:9090", "--admin-token", "3f9c2a7e1b4d8065c7e2", "--max-bindings", "0"}, env, hostname, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:2222" || c.TTL != 7*time.Minute || c.NodeName != "from-env" || len(c.GossipKey) != 16 ||
		len(c.Join) != 2 || c.Join[1] != "node-b:7946" || len(c.TrustedProxies) != 2 || c.TrustedProxies[1].Bits() != 32 ||
		c.MaxBindings != 0 {
		t.Fatalf("got %+v", c)
	}
	if _, err := loadConfig([]string{"-h"}, env, hostname, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if _, err := loadConfig([]string{"--nope"}, env, hostname, io.Discard); !errors.Is(err, ErrConfig) {
		t.Fatalf("unknown flag: %v", err)
	}
}

// Every bad setting stops the start with its variable, flag and value named.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("pools: [\n"), 0o600)
	dupYAML := filepath.Join(dir, "dup.yaml")
	os.WriteFile(dupYAML, []byte("pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]}\n"), 0o600)
	unreadable := filepath.Join(dir, "missing.yaml")
	aFile := filepath.Join(dir, "file")
	os.WriteFile(aFile, nil, 0o600)
	for _, tc := range []struct {
		name, key, value string
		want             []string // all must appear in the message
	}{
		{"bad url", "TETHER_BACKENDS", "a=ftp://x", []string{"TETHER_BACKENDS", "--backends", "ftp://x", "scheme"}},
		{"dup backend", "TETHER_BACKENDS", "a=http://x,a=http://y", []string{"TETHER_BACKENDS", `duplicate backend name "a"`}},
		{"no backends", "TETHER_BACKENDS", "", []string{"TETHER_BACKENDS", "no pools"}},
		{"unreadable routes", "TETHER_ROUTES_FILE", unreadable, []string{"TETHER_ROUTES_FILE", "--routes-file", "missing.yaml"}},
		{"invalid routes", "TETHER_ROUTES_FILE", badYAML, []string{"TETHER_ROUTES_FILE", "bad.yaml"}},
		{"dup in routes", "TETHER_ROUTES_FILE", dupYAML, []string{"TETHER_ROUTES_FILE", `duplicate backend name "a"`}},
		{"bad cidr", "TETHER_TRUSTED_PROXIES", "10.0.0.0/8,10.0.0.0/33", []string{"TETHER_TRUSTED_PROXIES", "--trusted-proxies", "10.0.0.0/33"}},
		{"ttl zero", "TETHER_TTL", "0s", []string{"TETHER_TTL", "--ttl", `"0s"`, "> 0"}},
		{"ttl negative", "TETHER_TTL", "-5m", []string{"TETHER_TTL", `"-5m"`}},
		{"ttl garbage", "TETHER_TTL", "forever", []string{"TETHER_TTL", `"forever"`, "not a duration"}},
		{"push zero", "TETHER_PUSH_INTERVAL", "0", []string{"TETHER_PUSH_INTERVAL", "--push-interval"}},
		{"push over ttl", "TETHER_PUSH_INTERVAL", "1h", []string{"TETHER_PUSH_INTERVAL", "shorter than TETHER_TTL"}},
		{"push burst zero", "TETHER_PUSH_BURST", "0", []string{"TETHER_PUSH_BURST", "--push-burst", `"0"`, "1 to 1000"}},
		{"push burst garbage", "TETHER_PUSH_BURST", "many", []string{"TETHER_PUSH_BURST", `"many"`}},
		{"key not base64", "TETHER_GOSSIP_KEY", "not*base64", []string{"TETHER_GOSSIP_KEY", "--gossip-key", "not base64", "(value hidden)"}},
		{"key length", "TETHER_GOSSIP_KEY", "c2hvcnQ=", []string{"TETHER_GOSSIP_KEY", "5 bytes"}},
		{"admin public no token", "TETHER_ADMIN_LISTEN", "0.0.0.0:9090", []string{"TETHER_ADMIN_LISTEN", "--admin-listen", "0.0.0.0:9090", "TETHER_ADMIN_TOKEN"}},
		{"admin all interfaces no token", "TETHER_ADMIN_LISTEN", ":9090", []string{"TETHER_ADMIN_LISTEN", `":9090"`}},
		{"admin bad addr", "TETHER_ADMIN_LISTEN", "localhost", []string{"TETHER_ADMIN_LISTEN", "host:port"}},
		{"admin allowed hosts", "TETHER_ADMIN_ALLOWED_HOSTS", "ok.example,http://x", []string{"TETHER_ADMIN_ALLOWED_HOSTS", "--admin-allowed-hosts", `"http://x"`}},
		{"short token", "TETHER_ADMIN_TOKEN", "abc", []string{"TETHER_ADMIN_TOKEN", "shorter than 16", "(value hidden)"}},
		{"listen bad", "TETHER_LISTEN", "8080", []string{"TETHER_LISTEN", "--listen", `"8080"`}},
		{"listen bad port", "TETHER_LISTEN", ":99999", []string{"TETHER_LISTEN", "99999"}},
		{"gossip bind", "TETHER_GOSSIP_BIND", "0.0.0.0", []string{"TETHER_GOSSIP_BIND", "--gossip-bind"}},
		{"gossip advertise", "TETHER_GOSSIP_ADVERTISE", "10.0.0.1:x", []string{"TETHER_GOSSIP_ADVERTISE", `bad port`}},
		{"join", "TETHER_JOIN", "a:1,b:notaport", []string{"TETHER_JOIN", "--join", `peer "b:notaport"`}},
		{"join without port", "TETHER_JOIN", "10.0.0.1:7946,node-b", []string{"TETHER_JOIN", "--join", `peer "node-b"`, "host:port"}},
		{"join without host", "TETHER_JOIN", ":7946", []string{"TETHER_JOIN", "no host"}},
		{"gossip bind name", "TETHER_GOSSIP_BIND", "localhost:7946", []string{"TETHER_GOSSIP_BIND", "not an IP address"}},
		{"gossip advertise name", "TETHER_GOSSIP_ADVERTISE", "node-a.example:7946", []string{"TETHER_GOSSIP_ADVERTISE", "not an IP address"}},
		{"gossip advertise no ip", "TETHER_GOSSIP_ADVERTISE", ":7946", []string{"TETHER_GOSSIP_ADVERTISE", "no IP address"}},
		{"log level fatal", "TETHER_LOG_LEVEL", "fatal", []string{"TETHER_LOG_LEVEL", "trace, debug, info, warn or error"}},
		{"max bindings negative", "TETHER_MAX_BINDINGS", "-1", []string{"TETHER_MAX_BINDINGS", "--max-bindings", `"-1"`, ">= 0"}},
		{"max bindings garbage", "TETHER_MAX_BINDINGS", "lots", []string{"TETHER_MAX_BINDINGS", `"lots"`}},
		{"data dir is a file", "TETHER_DATA_DIR", aFile, []string{"TETHER_DATA_DIR", "--data-dir", "not a directory"}},
		{"node name", "TETHER_NODE_NAME", "has space", []string{"TETHER_NODE_NAME", "--node-name", `"has space"`}},
		{"log level", "TETHER_LOG_LEVEL", "loud", []string{"TETHER_LOG_LEVEL", "--log-level", `"loud"`}},
		{"log format", "TETHER_LOG_FORMAT", "xml", []string{"TETHER_LOG_FORMAT", "--log-format", `"xml"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := baseEnv()
			env[tc.key] = tc.value
			_, err := loadConfig(nil, env, hostname, io.Discard)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("%s=%q: got %v, want a config error", tc.key, tc.value, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s=%q: message %q lacks %q", tc.key, tc.value, err.Error(), w)
				}
			}
			if strings.Contains(tc.key, "KEY") || strings.Contains(tc.key, "TOKEN") {
				if strings.Contains(err.Error(), tc.value) {
					t.Errorf("secret %s leaked in %q", tc.key, err.Error())
				}
			}
			// The same value given as a flag is reported the same way.
			flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(tc.key, "TETHER_"), "_", "-"))
			if _, err := loadConfig([]string{"--" + flagName + "=" + tc.value}, baseEnv(), hostname, io.Discard); !errors.Is(err, ErrConfig) {
				t.Errorf("--%s=%q: got %v", flagName, tc.value, err)
			}
		})
	}
}
