package main

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestGossipKeyRequiredOffLoopback(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZg=="
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"default loopback", nil, ""},
		{"public no key", map[string]string{"TETHER_GOSSIP_BIND": "0.0.0.0:7946"}, "TETHER_GOSSIP_KEY"},
		{"public address no key", map[string]string{"TETHER_GOSSIP_BIND": "192.0.2.1:7946"}, "TETHER_GOSSIP_INSECURE=true overrides"},
		{"public with key", map[string]string{"TETHER_GOSSIP_BIND": "0.0.0.0:7946", "TETHER_GOSSIP_KEY": key}, ""},
		{"public insecure", map[string]string{"TETHER_GOSSIP_BIND": ":7946", "TETHER_GOSSIP_INSECURE": "true"}, ""},
		{"insecure not a bool", map[string]string{"TETHER_GOSSIP_INSECURE": "yes please"}, "TETHER_GOSSIP_INSECURE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := loadConfig(nil, env, hostname, io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}

func TestLimitsSettings(t *testing.T) {
	c, err := loadConfig(nil, baseEnv(), hostname, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.MaxConns != 0 || l.MaxConnsPerSource != 256 || l.BodyTimeout != 30*time.Second || l.WriteTimeout != 30*time.Second ||
		l.TunnelIdleTimeout != 10*time.Minute || l.AllowTrace || l.GossipInsecure || l.BindBurst != 100 || l.BindRate != 1 {
		t.Fatalf("defaults: %+v", l)
	}
	for _, bad := range []struct{ k, v string }{
		{"TETHER_MAX_CONNS", "-1"}, {"TETHER_MAX_CONNS_PER_SOURCE", "x"}, {"TETHER_BODY_TIMEOUT", "-3s"},
		{"TETHER_WRITE_TIMEOUT", "soon"}, {"TETHER_TUNNEL_IDLE_TIMEOUT", "5"}, {"TETHER_ALLOW_TRACE", "maybe"},
		{"TETHER_ADMIN_TOKEN", "aaaaaaaaaaaaaaaa"}, {"TETHER_BIND_BURST", "-5"}, {"TETHER_BIND_RATE", "0"}, {"TETHER_BIND_RATE", "NaN"},
	} {
		env := baseEnv()
		env[bad.k] = bad.v
		if _, err := loadConfig(nil, env, hostname, io.Discard); err == nil || !strings.Contains(err.Error(), bad.k) {
			t.Errorf("%s=%s: %v", bad.k, bad.v, err)
		}
	}
}

// TETHER_MAX_BINDINGS above stickydb's per-origin default raises that cap
// too: a node that alone made more bindings than 4M was refused its own
// ones past it (and its peers its events), whatever the table's cap said.
func TestMaxBindingsRaisesThePerOriginCap(t *testing.T) {
	for _, tc := range []struct {
		max, want int
	}{{10_000_000, 10_000_000}, {1_000, 4_000_000}, {0, 4_000_000}} {
		env := baseEnv()
		env["TETHER_MAX_BINDINGS"] = strconv.Itoa(tc.max)
		cfg, err := loadConfig(nil, env, hostname, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		n := &node{cfg: cfg, now: time.Now}
		if err := startStore(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		if got := n.db.Config().MaxBindingsPerOrigin; got != tc.want {
			t.Errorf("TETHER_MAX_BINDINGS=%d: per-origin cap %d, want %d", tc.max, got, tc.want)
		}
	}
}
