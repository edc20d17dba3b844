package check

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		field string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no targets", func(c *Config) { c.Targets = nil }, "targets"},
		{"target without port", func(c *Config) { c.Targets = []string{"127.0.0.1"} }, "targets"},
		{"zero clients", func(c *Config) { c.Clients = 0 }, "clients"},
		{"too many clients", func(c *Config) { c.Clients = MaxClients + 1 }, "clients"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"endless duration", func(c *Config) { c.Duration = MaxDuration + 1 }, "duration"},
		{"negative requests", func(c *Config) { c.Requests = -1 }, "requests"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"zero window", func(c *Config) { c.StickyWindow = 0 }, "sticky-window"},
		{"bad header", func(c *Config) { c.Header = "X Backend" }, "header"},
		{"empty header", func(c *Config) { c.Header = "" }, "header"},
		{"empty header with regexp", func(c *Config) { c.Header = ""; c.BodyRegexp = regexp.MustCompile("x") }, ""},
		{"relative path", func(c *Config) { c.Path = "x" }, "path"},
		{"host with slash", func(c *Config) { c.Host = "a/b" }, "host"},
		{"cidr too small", func(c *Config) { c.SourceCIDR = netip.MustParsePrefix("127.0.0.1/32"); c.Clients = 2 }, "source-cidr"},
		{"no cidr", func(c *Config) { c.SourceCIDR = netip.Prefix{} }, ""},
		{"bad pick", func(c *Config) { c.Pick = 7 }, "pick"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Targets = []string{"127.0.0.1:1"}
			tc.mod(&c)
			_, err := New(context.Background(), c)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("err %v, want ErrConfig naming %q", err, tc.field)
			}
		})
	}
}

func TestLoopbackSourceToRemoteTarget(t *testing.T) {
	c := DefaultConfig()
	c.Targets = []string{"192.0.2.1:80"}
	c.AllowRemote = true
	if _, err := New(context.Background(), c); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "source-cidr") {
		t.Fatalf("err %v, want a source-cidr error", err)
	}
	c.SourceCIDR = netip.Prefix{}
	if _, err := New(context.Background(), c); err != nil {
		t.Fatalf("remote target without source binding: %v", err)
	}
}

func TestSourceFamilyMustMatchTarget(t *testing.T) {
	c := DefaultConfig()
	c.Targets = []string{"[::1]:80"}
	if _, err := New(context.Background(), c); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "address family") {
		t.Fatalf("IPv4 sources to an IPv6 target: %v", err)
	}
	c.SourceCIDR = netip.Prefix{}
	if _, err := New(context.Background(), c); err != nil {
		t.Fatalf("IPv6 target without source binding: %v", err)
	}
}

func TestParsePick(t *testing.T) {
	for in, want := range map[string]Pick{"random": PickRandom, "RoundRobin": PickRoundRobin, "rr": PickRoundRobin} {
		if got, err := ParsePick(in); err != nil || got != want {
			t.Errorf("ParsePick(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParsePick("hash"); !errors.Is(err, ErrConfig) {
		t.Errorf("ParsePick(hash) err %v", err)
	}
}

func TestSlotClock(t *testing.T) {
	c := newSlotClock(10 * time.Second)
	if c.width != time.Millisecond || c.slot(1500*time.Microsecond) != 1 || c.slot(-time.Second) != 0 || c.slot(time.Hour) != c.n-1 {
		t.Fatalf("short run clock %+v", c)
	}
	long := newSlotClock(MaxDuration + MaxTimeout + time.Hour)
	if long.n > maxSlots+2 || long.width <= time.Millisecond {
		t.Fatalf("long run clock %d slots of %v", long.n, long.width)
	}
}
