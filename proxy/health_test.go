package proxy

import (
	"testing"
	"time"
)

// The active checker records when it last checked a replica and how that
// went, passed or failed; the admin's Backends page shows it.
func TestLastCheckRecorded(t *testing.T) {
	bs := startBackends(t, "a")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a")}}, nil)
	waitFor(t, "a first passed check", 5*time.Second, func() bool {
		s := r.status(DefaultPool, "a")
		return !s.LastCheck.IsZero() && s.LastCheckError == ""
	})
	passed := r.status(DefaultPool, "a").LastCheck
	if err := bs["a"].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed check", 5*time.Second, func() bool {
		s := r.status(DefaultPool, "a")
		return s.LastCheck.After(passed) && s.LastCheckError != ""
	})
	if s := r.status(DefaultPool, "a"); time.Since(s.LastCheck) > time.Minute {
		t.Fatalf("last check %v: not a wall-clock time", s.LastCheck)
	}
}

// Traffic reads the per-replica counters the request path feeds.
func TestTraffic(t *testing.T) {
	bs := startBackends(t, "a")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a")}}, nil)
	c := clientFrom(t, clientIP(1))
	for range 3 {
		if code, _, _ := r.get(c, "app.example", "/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if code, _, _ := r.get(c, "app.example", "/status/404"); code != 404 {
		t.Logf("demo backend answered %d to /status/404", code)
	}
	tr := r.p.Traffic()
	if len(tr) != 1 || tr[0].Name != "a" || tr[0].Pool != DefaultPool {
		t.Fatalf("traffic %+v", tr)
	}
	a := tr[0]
	total := uint64(0)
	for _, n := range a.Classes {
		total += n
	}
	if a.Classes[2] < 3 || total != 4 || a.Count != 4 || len(a.Bounds) == 0 || len(a.Bounds) != len(a.Cumulative) {
		t.Fatalf("traffic %+v: want 4 requests, 3+ of them 2xx, and a histogram", a)
	}
	if a.Cumulative[len(a.Cumulative)-1] > a.Count {
		t.Fatalf("cumulative %v over count %d", a.Cumulative, a.Count)
	}
}
