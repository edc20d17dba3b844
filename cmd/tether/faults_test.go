//go:build !faultinject

package main

import "testing"

// TestNoFaultHook: a normal build carries no fault injection; only
// `-tags faultinject` (the chaos suite) sets the hook.
func TestNoFaultHook(t *testing.T) {
	if installFaults != nil {
		t.Fatal("the fault-injection hook is set in a normal build")
	}
}
