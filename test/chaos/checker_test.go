package chaos

import (
	"testing"
	"time"
)

// TestObserve: the checker's classification of moves, on a timeline of
// crashes and removals.
func TestObserve(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tl := NewTimeline()
	tl.Open(Crashed, "a", at(10))
	tl.Close(Crashed, "a", at(12)) // excused until 12 s + crashMargin
	tl.Open(Removed, "e", at(100))
	tl.Close(Removed, "e", at(101))
	tl.Open(Crashed, "c", at(200)) // still down
	tl.Open(MarkedDown, "n1/b", at(50))
	tl.Close(MarkedDown, "n1/b", at(51))
	tl.Open(MarkedDown, "n2/a", at(60))
	tl.Close(MarkedDown, "n2/a", at(61))

	type obs struct {
		got        string
		start, end float64
		settleAt   float64 // >0: settle the current binding at this time first
	}
	tests := []struct {
		name string
		obs  []obs
		want []Outcome
	}{
		{"stays", []obs{{"a", 1, 1.1, 0}, {"a", 2, 2.1, 0}}, []Outcome{First, Same}},
		{"moves before settling", []obs{{"a", 1, 1.1, 0}, {"b", 2, 2.1, 0}}, []Outcome{First, MoveUnsettled}},
		{"moves when settled", []obs{{"a", 1, 1.1, 0}, {"b", 3, 3.1, 2}}, []Outcome{First, Violation}},
		{"settled after the moving request began", []obs{{"a", 1, 1.1, 0}, {"b", 3, 3.1, 3.05}}, []Outcome{First, MoveUnsettled}},
		{"replica crashed meanwhile", []obs{{"a", 1, 1.1, 0}, {"b", 20, 20.1, 2}}, []Outcome{First, MoveCrashed}},
		{"moved within the crash margin", []obs{{"a", 13, 13.1, 0}, {"b", 14, 14.1, 13.5}}, []Outcome{First, MoveCrashed}},
		{"moved long after the crash", []obs{{"a", 30, 30.1, 0}, {"b", 40, 40.1, 31}}, []Outcome{First, Violation}},
		{"moved back after moving off a crash", []obs{{"a", 1, 1.1, 0}, {"b", 20, 20.1, 2}, {"a", 30, 30.1, 25}}, []Outcome{First, MoveCrashed, Violation}},
		{"replica removed", []obs{{"e", 99, 99.1, 0}, {"a", 100.5, 100.6, 99.5}}, []Outcome{First, MoveRemoved}},
		{"replica still down", []obs{{"c", 150, 150.1, 0}, {"a", 300, 300.1, 160}}, []Outcome{First, MoveCrashed}},
		{"the serving node held it down", []obs{{"b", 45, 45.1, 0}, {"a", 50.5, 50.6, 46}}, []Outcome{First, MoveMarkedDown}},
		{"another node held it down", []obs{{"a", 55, 55.1, 0}, {"b", 60.5, 60.6, 56}}, []Outcome{First, Violation}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c ClientState
			for i, o := range tt.obs {
				if o.settleAt > 0 {
					r, since, _ := c.Current()
					if !c.Settle(r, since, at(o.settleAt)) {
						t.Fatalf("step %d: settle refused", i)
					}
				}
				got, detail := c.Observe(tl, "n1", o.got, at(o.start), at(o.end))
				if got != tt.want[i] {
					t.Fatalf("step %d (%s at %v): %v, want %v (%s)", i, o.got, o.start, got, tt.want[i], detail)
				}
			}
		})
	}
}

// TestSettleRace: a settle computed for a binding the client has since
// left is dropped.
func TestSettleRace(t *testing.T) {
	t0 := time.Now()
	tl := NewTimeline()
	var c ClientState
	c.Observe(tl, "n1", "a", t0, t0)
	_, since, _ := c.Current()
	c.Observe(tl, "n1", "b", t0.Add(time.Second), t0.Add(time.Second))
	if c.Settle("a", since, t0.Add(2*time.Second)) {
		t.Fatal("settled a binding the client no longer has")
	}
	if _, _, settled := c.Current(); settled {
		t.Fatal("the current binding is marked settled")
	}
}
