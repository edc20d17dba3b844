package main

import (
	"testing"
	"time"
)

// TestHarnessSmall runs the harness at a small size so that it does not
// rot between `make scale` runs: a 3-node fleet at a low rate must converge
// on every probe and settle, a joiner must get every binding, and a small
// table must snapshot and recover whole.
func TestHarnessSmall(t *testing.T) {
	o := fleetOpts{rate: 300, window: 2 * time.Second, idle: 500 * time.Millisecond, warmup: 300 * time.Millisecond,
		probeEvery: 50 * time.Millisecond, joiner: 20_000, perBindCPU: bindCPU(), logf: t.Logf}
	r, err := runFleet(3, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Probes == 0 || r.ProbesLost != 0 || !r.Settled || r.P99Ms <= 0 || r.WireBytes <= 0 || r.MsgsPerNode <= 0 {
		t.Fatalf("fleet: %+v", r)
	}
	if r.Notes != "" || r.JoinerHeld < r.JoinerBindings || r.JoinerBindings < 20_000 {
		t.Fatalf("joiner: %+v", r)
	}
	tr, err := runTable(50_000, t.TempDir(), 300*time.Millisecond, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if tr.BytesPerBind <= 0 || tr.Recovered < 50_000 || tr.FindScanned != 50_000 || tr.Ops == 0 {
		t.Fatalf("table: %+v", tr)
	}
}
