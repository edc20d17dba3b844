package gossip

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Every member sees every other member's Config.Meta (tether's admin
// address); a Meta over memberlist's limit is a configuration error.
func TestMemberMeta(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{node: func(i int, cfg *Config) { cfg.Meta = []byte(fmt.Sprintf("meta-%d", i)) }})
	for i, n := range c.nodes {
		eventually(t, 10*time.Second, func() bool {
			for _, m := range n.Members() {
				if m.Name == nodeName(1-i) && string(m.Meta) == fmt.Sprintf("meta-%d", 1-i) {
					return true
				}
			}
			return false
		}, func() string { return fmt.Sprintf("%s sees %+v", n.Name(), n.Members()) })
	}
	cfg := testConfig(t)
	cfg.Meta = []byte(strings.Repeat("x", 513))
	if err := cfg.validate(time.Minute); err == nil || !strings.Contains(err.Error(), "Meta") {
		t.Fatalf("513-byte Meta: %v", err)
	}
}
