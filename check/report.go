package check

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Verdicts of a run.
const (
	VerdictSticky     = "sticky"     // no violation, and some client was served
	VerdictViolations = "violations" // at least one sticky violation
	VerdictNoData     = "no-data"    // no response named a replica: nothing was proved
)

// Report is the outcome of a run. Durations are nanoseconds in JSON.
type Report struct {
	Targets   []string      `json:"targets"`
	Host      string        `json:"host,omitempty"`
	Clients   int           `json:"clients"`
	KeepAlive bool          `json:"keepalive"`
	Pick      string        `json:"pick"`
	Rate      float64       `json:"rate"` // requests/s asked for; 0 = closed loop
	Duration  time.Duration `json:"duration_ns"`
	Elapsed   time.Duration `json:"elapsed_ns"` // first request sent to last answer
	Aborted   bool          `json:"aborted"`    // the run's context ended early

	Requests       uint64            `json:"requests"` // answered or failed
	OK             uint64            `json:"ok"`       // served a client (status < 400, replica named)
	Errors         uint64            `json:"errors"`
	ErrorsByKind   map[string]uint64 `json:"errors_by_kind"`
	RequestsPerSec float64           `json:"requests_per_sec"`

	// Latency of every request that got a response, from the time it was
	// meant to be sent (open loop) or was sent (closed loop) to the end of
	// its body.
	Latency Latency `json:"latency"`

	Replicas        []ReplicaReport `json:"replicas"`
	UnservedClients int             `json:"unserved_clients"` // never served at all

	Stickiness Stickiness `json:"stickiness"`
	Verdict    string     `json:"verdict"`
}

// Latency is a summary of the latency histogram.
type Latency struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
	Mean  time.Duration `json:"mean_ns"`
}

// ReplicaReport is one replica as seen from outside.
type ReplicaReport struct {
	Name     string `json:"name"`
	Clients  int    `json:"clients"`  // clients whose last response came from it
	Requests uint64 `json:"requests"` // responses it served
}

// Stickiness is the judged switches (see the package doc).
type Stickiness struct {
	Window           time.Duration `json:"window_ns"`
	Switches         uint64        `json:"switches"`          // a client served by another replica than before
	Violations       uint64        `json:"violations"`        // switches while the old replica still served
	ViolatingClients int           `json:"violating_clients"` // clients with at least one violation
	Unjudged         uint64        `json:"unjudged"`          // switches over Config.MaxSwitchRecords
	Examples         []Violation   `json:"examples,omitempty"`
}

// Violation is one example of a sticky violation.
type Violation struct {
	Client string        `json:"client"` // source address, or client-N without one
	From   string        `json:"from"`
	To     string        `json:"to"`
	At     time.Duration `json:"at_ns"` // since the start of the run
}

func (k *Checker) report(clients []*client, start, end time.Time, aborted bool) *Report {
	cfg := &k.cfg
	r := &Report{
		Targets: cfg.Targets, Host: cfg.Host, Clients: cfg.Clients, KeepAlive: cfg.KeepAlive,
		Pick: cfg.Pick.String(), Rate: cfg.Rate, Duration: cfg.Duration, Elapsed: end.Sub(start),
		Aborted: aborted, OK: k.ok.Load(), ErrorsByKind: map[string]uint64{},
	}
	for i := range k.kinds {
		n := k.kinds[i].Load()
		r.Errors += n
		if n > 0 {
			r.ErrorsByKind[Kind(i).String()] = n
		}
	}
	r.Requests = r.OK + r.Errors
	if r.Elapsed > 0 {
		r.RequestsPerSec = float64(r.Requests) / r.Elapsed.Seconds()
	}
	h := snapshot(k.hists)
	r.Latency = Latency{Count: h.n, P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99),
		Max: time.Duration(h.max), Mean: h.mean()}

	perReplica := map[*replica]int{}
	for _, c := range clients {
		if c.cur == nil {
			r.UnservedClients++
		} else {
			perReplica[c.cur]++
		}
	}
	for _, rep := range k.reps.all() {
		r.Replicas = append(r.Replicas, ReplicaReport{Name: rep.name, Clients: perReplica[rep], Requests: rep.served.Load()})
	}
	slices.SortFunc(r.Replicas, func(a, b ReplicaReport) int { return cmp.Compare(a.Name, b.Name) })

	j := judge(k.swlog.recs, k.clock, cfg.StickyWindow)
	r.Stickiness = Stickiness{Window: cfg.StickyWindow, Switches: k.switches.Load(), Violations: j.violations,
		ViolatingClients: len(j.clients), Unjudged: k.swlog.dropped}
	for _, e := range j.examples {
		name := fmt.Sprintf("client-%d", e.client)
		if k.sources != nil {
			name = k.sources[e.client].String()
		}
		r.Stickiness.Examples = append(r.Stickiness.Examples, Violation{Client: name, From: e.from.name, To: e.to.name, At: e.at})
	}
	switch {
	case r.Stickiness.Violations > 0:
		r.Verdict = VerdictViolations
	case r.OK == 0:
		r.Verdict = VerdictNoData
	default:
		r.Verdict = VerdictSticky
	}
	return r
}

// WriteJSON writes r as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for a human.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	loop := "closed loop"
	if r.Rate > 0 {
		loop = fmt.Sprintf("open loop at %g/s", r.Rate)
	}
	ka := "keep-alive"
	if !r.KeepAlive {
		ka = "no keep-alive"
	}
	fmt.Fprintf(&b, "tether check: %d clients -> %s (%s, %s, %s) for %v",
		r.Clients, strings.Join(r.Targets, ","), r.Pick, ka, loop, r.Duration)
	if r.Host != "" {
		fmt.Fprintf(&b, ", Host %s", r.Host)
	}
	if r.Aborted {
		b.WriteString(" [aborted]")
	}
	fmt.Fprintf(&b, "\n  requests    %d in %.2fs = %.1f/s, ok %d, errors %d\n",
		r.Requests, r.Elapsed.Seconds(), r.RequestsPerSec, r.OK, r.Errors)
	l := r.Latency
	fmt.Fprintf(&b, "  latency     p50 %v  p90 %v  p99 %v  max %v  mean %v  (%d responses)\n",
		round(l.P50), round(l.P90), round(l.P99), round(l.Max), round(l.Mean), l.Count)
	if r.Errors > 0 {
		b.WriteString("  errors     ")
		for i := range numKinds {
			if n := r.ErrorsByKind[i.String()]; n > 0 {
				fmt.Fprintf(&b, " %s %d", i, n)
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("  replicas   ")
	for _, rep := range r.Replicas {
		fmt.Fprintf(&b, " %s: %d clients, %d requests;", rep.Name, rep.Clients, rep.Requests)
	}
	if len(r.Replicas) == 0 {
		b.WriteString(" none named")
	}
	if r.UnservedClients > 0 {
		fmt.Fprintf(&b, " %d clients never served", r.UnservedClients)
	}
	s := r.Stickiness
	fmt.Fprintf(&b, "\n  stickiness  %d switches, %d violations by %d clients (window %v)",
		s.Switches, s.Violations, s.ViolatingClients, s.Window)
	if s.Unjudged > 0 {
		fmt.Fprintf(&b, ", %d switches not judged (over the record cap)", s.Unjudged)
	}
	b.WriteString("\n")
	for _, e := range s.Examples {
		fmt.Fprintf(&b, "    at %8.3fs %s moved %s -> %s while %s still served\n", e.At.Seconds(), e.Client, e.From, e.To, e.From)
	}
	switch r.Verdict {
	case VerdictSticky:
		b.WriteString("  verdict     STICKY: no client left a replica that was still up\n")
	case VerdictViolations:
		b.WriteString("  verdict     NOT STICKY\n")
	default:
		b.WriteString("  verdict     NO DATA: no response named a replica\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// round shortens a duration for display.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
