package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestCheckGossipExposure(t *testing.T) {
	key := []byte("0123456789abcdef")
	for _, tc := range []struct {
		bind string
		key  []byte
		warn bool
	}{
		{"127.0.0.1:7946", nil, false},
		{"[::1]:7946", nil, false},
		{"localhost:7946", nil, false},
		{"0.0.0.0:7946", nil, true},
		{":7946", nil, true},
		{"[::]:7946", nil, true},
		{"10.0.0.1:7946", nil, true},
		{"10.0.0.1:7946", key, false},
		{"0.0.0.0:7946", key, false},
	} {
		t.Run(tc.bind, func(t *testing.T) {
			var buf bytes.Buffer
			err := checkGossipExposure(Config{GossipBind: tc.bind, GossipKey: tc.key}, zerolog.New(&buf))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			lines := strings.Count(buf.String(), "\n")
			if tc.warn && (lines != 1 || !strings.Contains(buf.String(), `"level":"warn"`) || !strings.Contains(buf.String(), "TETHER_GOSSIP_KEY")) {
				t.Errorf("want one warning naming TETHER_GOSSIP_KEY, got %q", buf.String())
			}
			if !tc.warn && lines != 0 {
				t.Errorf("want no log line, got %q", buf.String())
			}
		})
	}
}
