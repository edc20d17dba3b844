package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		line string
		want time.Duration
		err  bool
	}{
		{"plain", "1234 (haproxy) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 2 0 100 0 0", 3800 * time.Millisecond, false},
		{"name with spaces and parens", "99 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 100 * time.Millisecond, false},
		{"truncated", "99 (x) R 1 2 3", 0, true},
		{"no name", "99 x R", 0, true},
		{"not a number", "99 (x) R 1 2 3 4 5 6 7 8 9 10 a 3 0", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tc.line))
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseStatCPU = %v, %v; want %v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestCPUTimeOfSelfGrows(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's accounting (10 ms ticks) moves, bounded.
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if after, err := CPUTime(os.Getpid()); err == nil && after > before {
			return
		}
	}
	t.Fatalf("CPU time did not grow from %v in 5 s of spinning (%d)", before, x)
}
