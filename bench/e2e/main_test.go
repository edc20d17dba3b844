package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain lets the test binary play the backends role too, as the real
// binary does: startBackends re-executes os.Executable().
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "backends" {
		os.Exit(serveBackends())
	}
	goleak.VerifyTestMain(m)
}
