// Package test holds tether's multi-node integration, fault and load tests:
// fleets of the built binary on loopback, driven through the external
// contract only (TETHER_* variables, signals, the proxy and the admin API).
package test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/tetherproxy/tether/test/fleet"
)

var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		// Benchmarks measure the binary as shipped, not the race detector.
		os.Setenv("FLEET_NORACE", "1")
	}
	dir, err := os.MkdirTemp("", "tether-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = fleet.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
