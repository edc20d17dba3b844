package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchRuns runs the real harness, briefly: backends in a child
// process, direct, HAProxy with peers (when installed), and a "tether"
// that is not runnable, which must be reported as such, not crash the run.
func TestBenchRuns(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "tether")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'tether: unknown command \"serve\"' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	o.tether = fake
	o.tetherBase = filepath.Join(dir, "tether-old")
	if err := os.Link(fake, o.tetherBase); err != nil {
		t.Fatal(err)
	}
	o.rows = []string{"direct", "tether-1", baseRow, "haproxy-2"}
	o.rounds = 2
	o.duration = 300 * time.Millisecond
	o.warmup = 100 * time.Millisecond
	o.clients = 8
	o.out = filepath.Join(dir, "RESULTS.md")
	o.jsonOut = filepath.Join(dir, "cells.json")
	o.workDir = dir
	_, haproxyErr := exec.LookPath("haproxy")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), o, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	md, err := os.ReadFile(o.out)
	if err != nil || string(md) != stdout.String() {
		t.Fatalf("RESULTS.md differs from stdout (%v)", err)
	}
	t.Logf("\n%s\n%s", stderr.String(), md)
	wants := []string{
		"| direct (one backend, no proxy) | ",
		"| tether, 1 node | tether not runnable: " + fake + " has no `serve` command yet |",
		"| tether, 1 node, baseline (tether-old) | tether not runnable: " + o.tetherBase + " has no `serve` command yet |",
	}
	if haproxyErr == nil {
		// 8 clients and the readiness probe, in both processes' tables.
		wants = append(wants, "| HAProxy, 2 processes (peers) | ", "stick table process 1: 9 entries, process 2: 9 entries")
	} else {
		t.Logf("haproxy not installed (%v): its row is only checked to be reported as not runnable", haproxyErr)
		wants = append(wants, "haproxy not runnable")
	}
	for _, w := range wants {
		if !strings.Contains(string(md), w) {
			t.Errorf("results lack %q", w)
		}
	}
	if strings.Contains(string(md), "| direct (one backend, no proxy) | 0 |") {
		t.Error("direct row measured nothing")
	}
	if _, err := os.Stat(o.jsonOut); err != nil {
		t.Error(err)
	}
}
