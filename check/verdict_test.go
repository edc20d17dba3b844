package check

import (
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	clock := newSlotClock(10 * time.Second)
	ms := time.Millisecond
	tests := []struct {
		name    string
		upAt    []time.Duration // when the replica left was seen serving (send time)
		at      time.Duration   // when the switch was seen
		window  time.Duration
		violate bool
	}{
		{"never seen again: replica gone", []time.Duration{10 * ms, 99 * ms}, 100 * ms, time.Second, false},
		{"served right after", []time.Duration{102 * ms}, 100 * ms, time.Second, true},
		{"served in the same ms only", []time.Duration{100*ms + 500*time.Microsecond}, 100 * ms, time.Second, false},
		{"served within window", []time.Duration{1099 * ms}, 100 * ms, time.Second, true},
		{"served after window", []time.Duration{1200 * ms}, 100 * ms, time.Second, false},
		{"served just after window, same bitmap word", []time.Duration{1110 * ms}, 100 * ms, time.Second, false},
		{"served on the window's last slot", []time.Duration{1100 * ms}, 100 * ms, time.Second, true},
		{"served on the first slot after the switch's", []time.Duration{101 * ms}, 100 * ms, time.Second, true},
		{"served before only", []time.Duration{50 * ms}, 100 * ms, time.Second, false},
		{"far slot in another word", []time.Duration{900 * ms}, 3 * ms, time.Second, true},
		{"at the end of the run", []time.Duration{9999 * ms}, 9998 * ms, time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := newReplicaTable(clock, 4)
			a, b := tbl.get("a"), tbl.get("b")
			for _, u := range tc.upAt {
				a.markUp(clock.slot(u))
			}
			b.markUp(clock.slot(tc.at + 5*ms)) // the new replica serving says nothing about the old
			j := judge([]switchRec{{client: 3, from: a, to: b, at: tc.at}}, clock, tc.window)
			if got := j.violations == 1; got != tc.violate {
				t.Fatalf("violation %v, want %v", got, tc.violate)
			}
			if tc.violate && (!j.clients[3] || len(j.examples) != 1) {
				t.Fatalf("violating client not recorded: %+v", j)
			}
		})
	}
}

func TestReplicaTableLimit(t *testing.T) {
	tbl := newReplicaTable(newSlotClock(time.Second), 2)
	a := tbl.get("a")
	if tbl.get("a") != a || tbl.get("b") == nil || tbl.get("c") != nil {
		t.Fatal("table must intern names and refuse the third")
	}
	if n := len(tbl.all()); n != 2 {
		t.Fatalf("%d replicas", n)
	}
}
