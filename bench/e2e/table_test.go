package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{9, 9, 1}, 9},
	}
	for _, tc := range tests {
		in := append([]float64(nil), tc.in...)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("median reordered its input: %v", tc.in)
			}
		}
	}
}

func TestMarkdown(t *testing.T) {
	ms := time.Millisecond
	cells := []cell{
		{Row: "direct", Round: 0, RPS: 10000, P50: 1 * ms, P99: 4 * ms, Requests: 50000},
		{Row: "direct", Round: 1, RPS: 12000, P50: 2 * ms, P99: 5 * ms, Requests: 60000},
		{Row: "direct", Round: 2, RPS: 11000, P50: 3 * ms, P99: 6 * ms, Requests: 55000},
		{Row: "haproxy-2", RPS: 5000, P50: 4 * ms, P99: 8 * ms, Requests: 25000, ProxyCPU: 1250 * ms, BackendCPU: 500 * ms},
		{Row: "haproxy-2", Round: 1, RPS: 3000, P50: 6 * ms, P99: 20 * ms, Requests: 15000, ProxyCPU: 1500 * ms},
		{Row: "haproxy-2", Round: 2, RPS: 4000, P50: 5 * ms, P99: 10 * ms, Requests: 20000, ProxyCPU: 1000 * ms, Violations: 2, Errors: 3},
	}
	setups := []*setup{
		{key: "direct", label: "direct"},
		{key: "tether-1", label: "tether, 1 node", err: errors.New("tether not runnable: bin/tether has no `serve` command yet")},
		{key: "haproxy-2", label: "HAProxy peers", procs: []*proc{{}}, notes: []string{"stick table process 1: 64 entries"}},
	}
	o := defaultOptions()
	o.note = "Shared machine."
	md := markdown(tableInput{o: o, setups: setups, cells: cells, machine: "test box", date: time.Unix(0, 0)})
	for _, want := range []string{
		"1970-01-01",
		"Machine: test box.",
		// direct: medians 11000 req/s, p50 2 ms, p99 5 ms; ratios to HAProxy's 4000, 5 ms, 10 ms.
		"| direct | 11000 | 2.00 ms | 5.00 ms | — | 2.75× | 0.40× | 0.50× | 1.00× | 1.00× | 1.00× | 0 of 165000 | — (one backend) |",
		// HAProxy: CPU per request 50, 100, 50 µs -> median 50.
		"| HAProxy peers | 4000 | 5.00 ms | 10.00 ms | 50 | 1.00× | 1.00× | 1.00× | 0.36× | 2.50× | 2.00× | 3 of 60000 | 2 |",
		"| tether, 1 node | tether not runnable: bin/tether has no `serve` command yet |",
		"against \"HAProxy peers\"",
		"- HAProxy peers: stick table process 1: 64 entries",
		"Shared machine.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*options)
		bad  string
	}{
		{"defaults", func(*options) {}, ""},
		{"no rounds", func(o *options) { o.rounds = 0 }, "-rounds"},
		{"unknown row", func(o *options) { o.rows = []string{"nginx"} }, "-rows"},
		{"too many cells", func(o *options) { o.rounds = 100 }, "cells"},
		{"zero duration", func(o *options) { o.duration = 0 }, "-duration"},
		{"no clients", func(o *options) { o.clients = 0 }, "-clients"},
		{"baseline row without binary", func(o *options) { o.rows = []string{baseRow} }, "-tether-base"},
		{"baseline row", func(o *options) { o.rows, o.tetherBase = []string{"tether-1", baseRow}, "/bin/old" }, ""},
		{"baseline HTTPS row without binary", func(o *options) { o.rows = []string{tlsRow(baseRow)} }, "-tether-base"},
		{"baseline HTTPS row", func(o *options) { o.rows, o.tetherBase = []string{tlsRow("tether-1"), tlsRow(baseRow)}, "/bin/old" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions()
			tc.mod(&o)
			err := o.validate()
			if (tc.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("validate: %v, want error naming %q", err, tc.bad)
			}
		})
	}
}

// A new-connection row is compared with HAProxy's new-connection row, not
// with the keep-alive reference, and not with direct (keep-alive).
func TestMarkdownShortRows(t *testing.T) {
	ms := time.Millisecond
	cells := []cell{
		{Row: "direct", RPS: 20000, P50: 1 * ms, P99: 2 * ms, Requests: 100000},
		{Row: "haproxy-2", RPS: 10000, P50: 2 * ms, P99: 4 * ms, Requests: 50000},
		{Row: shortRow("tether-1"), RPS: 6000, P50: 3 * ms, P99: 9 * ms, Requests: 30000, ProxyCPU: 2700 * ms},
		{Row: shortRow(tlsRef), RPS: 5000, P50: 4 * ms, P99: 12 * ms, Requests: 25000, ProxyCPU: 2500 * ms},
	}
	setups := []*setup{
		{key: "direct", label: "direct"},
		{key: "haproxy-2", label: "HAProxy peers", procs: []*proc{{}}},
		{key: shortRow("tether-1"), label: "tether short", procs: []*proc{{}}, short: true},
		{key: shortRow(tlsRef), label: "HAProxy short", procs: []*proc{{}}, short: true},
	}
	md := markdown(tableInput{o: defaultOptions(), setups: setups, cells: cells, machine: "test box", date: time.Unix(0, 0)})
	for _, want := range []string{
		"| tether short | 6000 | 3.00 ms | 9.00 ms | 90 | 1.20× | 0.75× | 0.75× | — | — | — |",
		"| HAProxy short | 5000 | 4.00 ms | 12.00 ms | 100 | 1.00× | 1.00× | 1.00× | — | — | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
}
