package gossip_test

import (
	"context"
	"encoding/base64"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tetherproxy/tether/gossip"
	"github.com/tetherproxy/tether/stickydb"
)

// Example shows how cmd/tether wires a node: the DB, the gossip node over
// it, the store the proxy writes through, readiness and shutdown.
func Example() {
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	db, err := stickydb.New(stickydb.DefaultConfig("node-a"), time.Now()) // TETHER_NODE_NAME, TETHER_TTL
	if err != nil {
		panic(err)
	}

	cfg := gossip.DefaultConfig()
	cfg.BindAddr = "127.0.0.1:0"             // TETHER_GOSSIP_BIND (default 0.0.0.0:7946)
	cfg.AdvertiseAddr = ""                   // TETHER_GOSSIP_ADVERTISE
	cfg.Join = splitList("")                 // TETHER_JOIN: "host:port,host:port"
	cfg.Key, _ = decodeKey("")               // TETHER_GOSSIP_KEY, base64 of 16/24/32 bytes
	cfg.PushInterval = 20 * time.Millisecond // TETHER_PUSH_INTERVAL
	cfg.Logger = &log
	cfg.Persister = nil // package recovery's writer when TETHER_DATA_DIR is set

	node, err := gossip.New(cfg, db)
	if err != nil {
		panic(err) // a bad setting: the error names the field
	}
	if err := node.Start(); err != nil {
		panic(err)
	}
	defer node.Close() // leaves gracefully: peers see a leave, not a failure

	store := node.Store() // hand to the proxy: Touch, BindIfAbsent, Rebind, Refresh, Delete
	k, _ := stickydb.NewKey(netip.MustParseAddr("10.1.2.3"), "app.example")
	_, _, _ = store.BindIfAbsent(k, "backend-a", time.Now()) // pushed to every peer at once

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = node.WaitReady(ctx) // /readyz: node.Ready()
	_ = node.Members()      // /api/v1/members
	_ = node.Stats()        // /metrics
	// Output:
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}
