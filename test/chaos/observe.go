package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// nodeView is what /api/v1/vector says of a node's replicated state.
type nodeView struct {
	Digest struct {
		Count int    `json:"count"`
		Sum   string `json:"sum"`
	} `json:"digest"`
	Vector map[string][]struct {
		Epoch int64  `json:"epoch"`
		Seq   uint64 `json:"seq"`
	} `json:"vector"`
}

// state is the comparable part: digest and the vector, canonical.
func (v nodeView) state() string {
	b, _ := json.Marshal(v.Vector) // map keys are sorted
	return fmt.Sprintf("%d/%s %s", v.Digest.Count, v.Digest.Sum, b)
}

// short describes the state in a line: digest, then per origin its epoch
// count and the last sequence of its newest epoch.
func (v nodeView) short() string {
	origins := make([]string, 0, len(v.Vector))
	for o := range v.Vector {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%s", v.Digest.Count, v.Digest.Sum[:min(6, len(v.Digest.Sum))])
	for _, o := range origins {
		ps := v.Vector[o]
		fmt.Fprintf(&b, " %s:%d/%d", o, len(ps), ps[len(ps)-1].Seq)
	}
	return b.String()
}

// Converged reports whether every node answers and all hold the same live
// database (digest) and vector; else a description of the difference.
func (c *Cluster) Converged() (bool, string) {
	views := make([]string, len(c.Nodes))
	shorts := make([]string, len(c.Nodes))
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v nodeView
			if errs[i] = n.JSON("/api/v1/vector", &v); errs[i] == nil {
				views[i], shorts[i] = v.state(), v.short()
			}
		}()
	}
	wg.Wait()
	same := true
	var desc []string
	for i, n := range c.Nodes {
		if errs[i] != nil {
			same = false
			desc = append(desc, n.Name+": "+errs[i].Error())
			continue
		}
		desc = append(desc, n.Name+": "+shorts[i])
		if views[i] != views[0] {
			same = false
		}
	}
	return same, strings.Join(desc, "\n  ")
}

// WaitConverged polls until Converged, every node ready, and returns how
// long it took, or an error with the last difference after timeout.
func (c *Cluster) WaitConverged(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	d, _, err := c.WaitConvergedWhy(ctx, timeout)
	return d, err
}

// WaitConvergedWhy is WaitConverged that also says what still differed a
// second in (empty when it converged sooner): a slow convergence's cause.
func (c *Cluster) WaitConvergedWhy(ctx context.Context, timeout time.Duration) (time.Duration, string, error) {
	start := time.Now()
	var last, why string
	for {
		if why == "" && time.Since(start) > time.Second {
			why = last + "\n  " + c.diagnose()
		}
		ready := true
		for _, n := range c.Nodes {
			if !n.Ready(ctx, 3*time.Second) {
				ready, last = false, n.Name+" not ready"
				break
			}
		}
		if ready {
			var ok bool
			if ok, last = c.Converged(); ok {
				return time.Since(start), why, nil
			}
		}
		if time.Since(start) > timeout {
			return 0, why, fmt.Errorf("not converged within %v:\n  %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return 0, why, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Resources are a node's process figures from /metrics.
type Resources struct {
	Goroutines float64
	RSS        float64 // bytes
}

// Metrics reads /metrics of a node into name{labels} -> value.
func Metrics(n *fleet.Node) (map[string]float64, error) {
	code, body, err := n.Get("/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %d", n.Name, code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// ReadResources reads goroutines and resident memory of a node.
func ReadResources(n *fleet.Node) (Resources, error) {
	m, err := Metrics(n)
	if err != nil {
		return Resources{}, err
	}
	return Resources{Goroutines: m["go_goroutines"], RSS: m["process_resident_memory_bytes"]}, nil
}

// panicRe matches what a Go process writes when it dies of a bug.
var panicRe = regexp.MustCompile(`(?m)^(panic: |fatal error: |WARNING: DATA RACE|goroutine \d+ \[running\]:)`)

// Panics returns, for every panic, fatal error or data race in the node's
// log, the node's name, the matching line and up to panicLines lines after
// it (the stacks a race report or a panic prints), so that a failed run
// shows where without its logs.
func Panics(n *fleet.Node) []string {
	log := n.Log()
	var out []string
	for _, loc := range panicRe.FindAllStringIndex(log, -1) {
		lines := strings.SplitN(log[loc[0]:], "\n", panicLines+1)
		if len(lines) > panicLines {
			lines = lines[:panicLines]
		}
		out = append(out, n.Name+": "+strings.Join(lines, "\n"))
	}
	return out
}

// panicLines bounds the excerpt of each panic or race report.
const panicLines = 60

// ProbeReplication binds a fresh client through one node and measures how
// long until every other node holds its binding (admin API, polled every
// 2 ms): the replication window of a healthy fleet.
func (w *Workload) ProbeReplication(ctx context.Context, id int, via *Node) (time.Duration, error) {
	cl := &Client{ID: -1, Addr: fleet.ClientAddr(probeBase + id)}
	start := time.Now()
	if _, err := w.get(ctx, cl, via); err != nil {
		return 0, err
	}
	path := "/api/v1/bindings/" + AppHost + "/" + cl.Addr.String()
	for _, n := range w.c.Nodes {
		if n == via {
			continue
		}
		for {
			code, _, err := n.Get(path)
			if err == nil && code == http.StatusOK {
				break
			}
			if time.Since(start) > 10*time.Second {
				return 0, fmt.Errorf("probe %s: not on %s after 10s", cl.Addr, n.Name)
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	return time.Since(start), nil
}

// probeBase: probe clients, apart from the workload's.
const probeBase = 3 << 20

// diagnose says, per node, which peers membership sees alive and which
// gaps are open (origin, range, stage, who was asked, age): why a fleet
// has not converged yet.
func (c *Cluster) diagnose() string {
	var out []string
	for _, n := range c.Nodes {
		var members []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		var gaps []struct {
			At         int64  `json:"at"`
			Origin     string `json:"origin"`
			From, To   uint64
			Asked      string `json:"asked"`
			Stage      string `json:"stage"`
			AnsweredBy string `json:"answered_by"`
		}
		if err := n.JSON("/api/v1/members", &members); err != nil {
			out = append(out, n.Name+": "+err.Error())
			continue
		}
		_ = n.JSON("/api/v1/gaps", &gaps)
		var alive, other []string
		for _, m := range members {
			if m.State == "alive" {
				alive = append(alive, m.Name)
			} else {
				other = append(other, m.Name+"="+m.State)
			}
		}
		var open []string
		for _, g := range gaps {
			if g.AnsweredBy == "" && len(open) < 4 {
				open = append(open, fmt.Sprintf("%s %d-%d %s@%s %v ago", g.Origin, g.From, g.To, g.Stage, g.Asked,
					time.Since(time.UnixMilli(g.At)).Round(100*time.Millisecond)))
			}
		}
		out = append(out, fmt.Sprintf("%s: alive %v %v; open gaps %v", n.Name, alive, other, open))
	}
	return strings.Join(out, "\n  ")
}
