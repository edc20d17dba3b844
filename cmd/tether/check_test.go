package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/tetherproxy/tether/check"
	"github.com/tetherproxy/tether/internal/demobackend"
)

func TestCheckCommand(t *testing.T) {
	var addrs []string
	for _, n := range []string{"b1", "b2"} {
		b, err := demobackend.Start(n, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		addrs = append(addrs, b.Addr())
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().String()
	_ = closed.Close()
	short := []string{"--clients", "4", "--requests", "40", "--duration", "10s"}
	// A move is judged by what the old replica served in the 1 ms slots
	// after it: 40 requests can all fall in one slot on a fast machine,
	// which leaves no evidence (seen: 36 switches, 0 violations).
	long := []string{"--clients", "4", "--requests", "2000", "--duration", "10s"}
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string // a substring, "" = any
		stderr  string
		verdict string // JSON verdict when --json
	}{
		{"one replica is sticky", append([]string{"--targets", addrs[0]}, short...), 0, "STICKY", "", ""},
		{"two replicas in turn are not", append([]string{"--targets", addrs[0] + "," + addrs[1], "--pick", "roundrobin"}, long...),
			1, "NOT STICKY", "", ""},
		{"json", append([]string{"--targets", addrs[0] + "," + addrs[1], "--json"}, long...), 1, "", "", check.VerdictViolations},
		{"body regexp", append([]string{"--targets", addrs[0], "--body-regexp", `served by (\w+)`, "--json"}, short...),
			0, "", "", check.VerdictSticky},
		{"nothing answers", append([]string{"--targets", dead, "--timeout", "200ms"}, short...), 3, "NO DATA", "", ""},
		{"no targets", []string{"--clients", "3"}, 2, "", "--targets", ""},
		{"bad duration", []string{"--targets", addrs[0], "--duration", "0s"}, 2, "", "duration", ""},
		{"remote target", []string{"--targets", "192.0.2.1:80"}, 2, "", "outside loopback", ""},
		{"header and regexp", []string{"--targets", addrs[0], "--header", "X-B", "--body-regexp", "x"}, 2, "", "one or the other", ""},
		{"bad pick", []string{"--targets", addrs[0], "--pick", "hash"}, 2, "", "pick", ""},
		{"bad cidr", []string{"--targets", addrs[0], "--source-cidr", "127.0.0.1"}, 2, "", "source-cidr", ""},
		{"unknown flag", []string{"--targets", addrs[0], "--frobnicate"}, 2, "", "frobnicate", ""},
		{"help", []string{"-h"}, 0, "", "usage: tether check", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := checkMain(context.Background(), tc.args, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.stderr) {
				t.Fatalf("stdout %q (want %q), stderr %q (want %q)", out.String(), tc.stdout, errOut.String(), tc.stderr)
			}
			if tc.verdict != "" {
				var r check.Report
				want := uint64(40)
				if slices.Contains(tc.args, "2000") {
					want = 2000
				}
				if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Verdict != tc.verdict || r.Requests != want {
					t.Fatalf("JSON report %v: %+v", err, r)
				}
			}
		})
	}
}
