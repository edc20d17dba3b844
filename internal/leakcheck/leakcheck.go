// Package leakcheck is the goroutine leak check of the packages whose
// tests run gossip nodes: goleak, with the one goroutine of memberlist
// that outlives its Shutdown.
package leakcheck

import (
	"testing"

	"go.uber.org/goleak"
)

// Main runs the tests, then fails if goroutines are left. memberlist's
// Shutdown does not wait for a probe in flight: its goroutine ends by
// itself once the probe's ack timer (ProbeInterval) fires, which on a slow
// machine can be after goleak's last look (seen in CI: probeNode parked on
// its ack channel). Everything else must be gone.
func Main(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}
