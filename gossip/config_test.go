package gossip

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

func TestConfigValidate(t *testing.T) {
	db, err := stickydb.New(stickydb.DefaultConfig("me"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, db); err != nil {
		t.Fatalf("zero config (all defaults): %v", err)
	}
	if _, err := New(DefaultConfig(), nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("nil db: %v", err)
	}
	tests := []struct {
		field string
		mod   func(c *Config)
	}{
		{"BindAddr", func(c *Config) { c.BindAddr = "no-port" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "localhost:7946" }},
		{"AdvertiseAddr", func(c *Config) { c.AdvertiseAddr = "1.2.3.4" }},
		{"Join", func(c *Config) { c.Join = []string{"nohostport"} }},
		{"Key", func(c *Config) { c.Key = []byte("short") }},
		{"Label", func(c *Config) { c.Label = strings.Repeat("x", 256) }},
		{"PushInterval", func(c *Config) { c.PushInterval = -time.Second }},
		{"PushBurst", func(c *Config) { c.PushBurst = -1 }},
		{"HeartbeatInterval", func(c *Config) { c.HeartbeatInterval = time.Minute }},
		{"MaxUDPBytes", func(c *Config) { c.MaxUDPBytes = 100 }},
		{"ChunkRecords", func(c *Config) { c.ChunkRecords = 1 << 20 }},
		{"Caps", func(c *Config) { c.Caps.MaxPairs = -1 }},
		{"Caps.MaxEvents", func(c *Config) { c.Caps.MaxEvents = 1 << 20 }},
		{"RequestRate", func(c *Config) { c.RequestRate = -1 }},
		{"Memberlist.ProbeInterval", func(c *Config) { c.Memberlist.ProbeTimeout = time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			_, err := New(c, db)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want ErrConfig naming %s", err, tt.field)
			}
		})
	}
}

func TestStartCloseIdempotent(t *testing.T) {
	n := unstartedNode(t, "solo")
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	ctxWait(t, n, 5*time.Second) // a fleet of one, no seeds: ready at once
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	m := unstartedNode(t, "never")
	if err := m.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
}
