package chaos

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Window kinds: why a replica may lose its clients.
const (
	Crashed    = "crashed"     // the replica process was down
	Removed    = "removed"     // the replica was not in the routes file
	MarkedDown = "marked-down" // one node's health checks held the replica down (key: node/replica)
)

// Excuse margins: how long after a replica came back (or was put back in
// the routes) a node may still move a client off it. A crashed replica is
// down on a node until `rise` checks passed; a reload is applied within
// milliseconds of SIGHUP, or when a paused node resumes.
const (
	crashMargin  = 3*healthInterval*healthRise + 2*time.Second
	removeMargin = 2 * time.Second
	downMargin   = time.Second // the health poll's period and latency
)

type window struct{ from, to time.Time } // to zero: still open

// Timeline records when each replica was crashed or out of the routes.
// Safe for concurrent use.
type Timeline struct {
	mu sync.Mutex
	w  map[string][]window // kind+"/"+replica
}

func NewTimeline() *Timeline { return &Timeline{w: map[string][]window{}} }

// Open starts a window for the replica.
func (t *Timeline) Open(kind, replica string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := kind + "/" + replica
	t.w[k] = append(t.w[k], window{from: at})
}

// Close ends the replica's open window at `at` plus the kind's margin.
func (t *Timeline) Close(kind, replica string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	margin := crashMargin
	switch kind {
	case Removed:
		margin = removeMargin
	case MarkedDown:
		margin = downMargin
	}
	ws := t.w[kind+"/"+replica]
	for i := range ws {
		if ws[i].to.IsZero() {
			ws[i].to = at.Add(margin)
		}
	}
}

// Excused reports whether a window of the kind for the replica overlaps
// [from, to].
func (t *Timeline) Excused(kind, replica string, from, to time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.w[kind+"/"+replica] {
		if !w.from.After(to) && (w.to.IsZero() || !w.to.Before(from)) {
			return true
		}
	}
	return false
}

// Outcome of one observation of a client's replica.
type Outcome int

const (
	Same           Outcome = iota // the replica it had
	First                         // its first replica
	MoveCrashed                   // moved off a replica that crashed meanwhile (allowed)
	MoveRemoved                   // moved off a replica taken out of the routes (allowed)
	MoveMarkedDown                // moved by a node whose health checks held the replica down, though it ran (allowed, counted)
	MoveUnsettled                 // moved before its binding was on every node (allowed, counted)
	Violation                     // moved off a healthy replica whose binding every node held
)

var outcomeNames = [...]string{"same", "first", "moved: replica crashed", "moved: replica removed",
	"moved: node's health checks failed, replica up", "moved: binding not yet on every node", "VIOLATION"}

func (o Outcome) String() string { return outcomeNames[o] }

// ClientState is what the checker knows of one client: the replica it is
// on, since when, and whether its binding has been seen on every node.
// The workload sends at most one request per client at a time, so a
// client's observations are ordered.
type ClientState struct {
	mu        sync.Mutex
	cur       string
	since     time.Time // start of the request that first saw cur
	lastStart time.Time // start of the last request that saw cur
	settledAt time.Time // zero until every node was seen holding cur
}

// Observe takes one successful request (start..end), served through node,
// that reached replica `got`, classifies it and updates the state. Moves
// are judged against the span from the start of the last request that saw
// the old replica to the end of this one: whatever moved the client
// happened in between, and on the node that served the moving request
// (a binding changes only in a request of its client).
func (c *ClientState) Observe(tl *Timeline, node, got string, start, end time.Time) (Outcome, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.cur == "":
		c.cur, c.since, c.lastStart = got, start, start
		return First, ""
	case got == c.cur:
		c.lastStart = start
		return Same, ""
	}
	from := c.cur
	var o Outcome
	switch {
	case tl.Excused(Crashed, from, c.lastStart, end):
		o = MoveCrashed
	case tl.Excused(Removed, from, c.lastStart, end):
		o = MoveRemoved
	case tl.Excused(MarkedDown, node+"/"+from, c.lastStart, end):
		o = MoveMarkedDown
	case c.settledAt.IsZero() || !c.settledAt.Before(start):
		o = MoveUnsettled
	default:
		o = Violation
	}
	detail := fmt.Sprintf("%s -> %s (on %s since %s, on every node since %s, last seen %s, moved by the request of %s..%s)",
		from, got, from, c.since.Format("15:04:05.000"), fmtTime(c.settledAt), c.lastStart.Format("15:04:05.000"),
		start.Format("15:04:05.000"), end.Format("15:04:05.000"))
	c.cur, c.since, c.lastStart, c.settledAt = got, start, start, time.Time{}
	return o, detail
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("15:04:05.000")
}

// Current returns the client's replica and since when it has had it.
func (c *ClientState) Current() (replica string, since time.Time, settled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, c.since, !c.settledAt.IsZero()
}

// Settle records that every node held `replica` for the client by `at`,
// unless the client moved meanwhile (since changed).
func (c *ClientState) Settle(replica string, since, at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != replica || !c.since.Equal(since) || !c.settledAt.IsZero() {
		return false
	}
	c.settledAt = at
	return true
}

// Durations summarises a sample of durations.
type Durations struct {
	mu sync.Mutex
	d  []time.Duration
}

func (d *Durations) Add(v time.Duration) {
	d.mu.Lock()
	d.d = append(d.d, v)
	d.mu.Unlock()
}

// Summary is "n=…, p50 …, p99 …, max …".
func (d *Durations) Summary() string {
	d.mu.Lock()
	s := append([]time.Duration(nil), d.d...)
	d.mu.Unlock()
	if len(s) == 0 {
		return "n=0"
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50 %v p99 %v max %v", len(s), q(0.5).Round(time.Millisecond),
		q(0.99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// Max is the largest sample (0 when empty).
func (d *Durations) Max() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	var m time.Duration
	for _, v := range d.d {
		m = max(m, v)
	}
	return m
}

// Len is the number of samples.
func (d *Durations) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.d)
}
