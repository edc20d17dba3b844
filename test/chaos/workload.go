package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// Workload is the clients: each has its own loopback source address (as
// round-robin DNS spreads real users), sends one request at a time, each
// to a random node of the rotation. The rotation is what a load balancer
// with readiness checks would use: the nodes whose /readyz answered 200 at
// the last probe (every 100 ms). A killed node leaves it by failing the
// probe; a restarted one joins once it has caught up.
type Workload struct {
	c  *Cluster
	tl *Timeline

	mu      sync.Mutex
	clients []*Client
	fresh   chan *Client // new clients, served first
	nextID  int

	rotation atomic.Pointer[[]*Node]
	arrivals atomic.Bool
	// NoReadiness puts every running node in rotation, ready or not: what
	// happens without a load balancer that checks /readyz.
	NoReadiness bool

	Requests, OK                  atomic.Int64
	Errors                        sync.Map // kind -> *atomic.Int64
	outcomes                      [Violation + 1]atomic.Int64
	violations                    []string
	unsettledEx                   []string
	vmu                           sync.Mutex
	Settle                        Durations // first seen -> seen on every node
	settledCount, verifyRoundsRun atomic.Int64

	http *http.Client
}

// Client is one simulated user.
type Client struct {
	ID   int
	Addr netip.Addr
	busy atomic.Bool
	ClientState
}

type srcKey struct{}

// NewWorkload prepares n clients (not yet sending).
func NewWorkload(c *Cluster, tl *Timeline) *Workload {
	w := &Workload{c: c, tl: tl, fresh: make(chan *Client, 100_000)}
	tr := &http.Transport{
		DisableKeepAlives: true, // each request a new connection, as many real clients
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			src := ctx.Value(srcKey{}).(netip.Addr)
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: time.Second}
			return d.DialContext(ctx, network, addr)
		},
		ResponseHeaderTimeout: 3 * time.Second,
	}
	w.http = &http.Client{Transport: tr, Timeout: 4 * time.Second}
	all := c.Nodes
	w.rotation.Store(&all)
	return w
}

// clientBase: chaos clients use 127.96.0.0 and up, away from the other
// tests' ranges (fleet.ClientAddr starts at 127.64.0.0).
const clientBase = 2 << 20

// Add creates a client; its first request goes before the others'.
func (w *Workload) Add() *Client {
	w.mu.Lock()
	cl := &Client{ID: w.nextID, Addr: fleet.ClientAddr(clientBase + w.nextID)}
	w.nextID++
	w.clients = append(w.clients, cl)
	w.mu.Unlock()
	select {
	case w.fresh <- cl:
	default:
	}
	return cl
}

// Clients returns the clients so far.
func (w *Workload) Clients() []*Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*Client(nil), w.clients...)
}

// SetArrivals turns the arrival of new clients on or off.
func (w *Workload) SetArrivals(on bool) { w.arrivals.Store(on) }

// Run drives `workers` request loops, the arrival of `rate` new clients a
// second (while arrivals are on), the rotation prober and the verifier,
// until ctx ends.
func (w *Workload) Run(ctx context.Context, workers int, rate float64, seed uint64) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(4 + workers)
	go func() { defer wg.Done(); w.probeRotation(ctx) }()
	go func() { defer wg.Done(); w.pollHealth(ctx) }()
	go func() { defer wg.Done(); w.verify(ctx) }()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if w.arrivals.Load() {
					w.Add()
				}
			}
		}
	}()
	for i := 0; i < workers; i++ {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		go func() { defer wg.Done(); w.worker(ctx, rng) }()
	}
	return &wg
}

func (w *Workload) worker(ctx context.Context, rng *rand.Rand) {
	idle := time.NewTimer(0)
	defer idle.Stop()
	for ctx.Err() == nil {
		cl := w.pick(rng)
		nodes := *w.rotation.Load()
		if cl == nil || len(nodes) == 0 {
			if cl != nil {
				cl.busy.Store(false)
			}
			idle.Reset(20 * time.Millisecond) // nothing to do yet: wait a little, bounded by ctx
			select {
			case <-ctx.Done():
				return
			case <-idle.C:
			}
			continue
		}
		w.Request(ctx, cl, nodes[rng.IntN(len(nodes))])
		cl.busy.Store(false)
	}
}

// pick returns a client not in flight, marked busy: a fresh one first,
// else a random one.
func (w *Workload) pick(rng *rand.Rand) *Client {
	select {
	case cl := <-w.fresh:
		if cl.busy.CompareAndSwap(false, true) {
			return cl
		}
	default:
	}
	w.mu.Lock()
	n := len(w.clients)
	w.mu.Unlock()
	for try := 0; try < 8 && n > 0; try++ {
		w.mu.Lock()
		cl := w.clients[rng.IntN(n)]
		w.mu.Unlock()
		if cl.busy.CompareAndSwap(false, true) {
			return cl
		}
	}
	return nil
}

// Request sends one GET through node for the client and judges the answer.
func (w *Workload) Request(ctx context.Context, cl *Client, n *Node) (Outcome, error) {
	w.Requests.Add(1)
	start := time.Now()
	backend, err := w.get(ctx, cl, n)
	end := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			w.countErr(err)
		}
		return 0, err
	}
	w.OK.Add(1)
	o, detail := cl.Observe(w.tl, n.Name, backend, start, end)
	w.outcomes[o].Add(1)
	switch o {
	case Violation:
		w.vmu.Lock()
		w.violations = append(w.violations, fmt.Sprintf("client %s via %s: %s", cl.Addr, n.Name, detail))
		w.vmu.Unlock()
	case MoveUnsettled:
		w.vmu.Lock()
		if len(w.unsettledEx) < 5 {
			w.unsettledEx = append(w.unsettledEx, fmt.Sprintf("client %s via %s: %s", cl.Addr, n.Name, detail))
		}
		w.vmu.Unlock()
	}
	return o, nil
}

type statusErr int

func (e statusErr) Error() string { return fmt.Sprintf("status %d", int(e)) }

func (w *Workload) get(ctx context.Context, cl *Client, n *Node) (string, error) {
	ctx = context.WithValue(ctx, srcKey{}, cl.Addr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Proxy+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = AppHost
	resp, err := w.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", statusErr(resp.StatusCode)
	}
	b := resp.Header.Get("X-Backend")
	if b == "" {
		return "", errors.New("no X-Backend")
	}
	return b, nil
}

func (w *Workload) countErr(err error) {
	kind := "other"
	var se statusErr
	var ne net.Error
	switch {
	case errors.As(err, &se):
		kind = se.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		kind = "reset"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = "timeout"
	case strings.Contains(err.Error(), "Client.Timeout"):
		kind = "timeout"
	}
	v, _ := w.Errors.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// ErrorCounts returns the errors by kind.
func (w *Workload) ErrorCounts() map[string]int64 {
	out := map[string]int64{}
	w.Errors.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Int64).Load(); return true })
	return out
}

// Outcome returns how many observations had outcome o.
func (w *Workload) Outcome(o Outcome) int64 { return w.outcomes[o].Load() }

// Violations returns the violations so far, and a few unsettled moves as
// examples.
func (w *Workload) Violations() (violations, unsettled []string) {
	w.vmu.Lock()
	defer w.vmu.Unlock()
	return append([]string(nil), w.violations...), append([]string(nil), w.unsettledEx...)
}

// probeRotation keeps the rotation to the nodes that answer /readyz.
func (w *Workload) probeRotation(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var in []*Node
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range w.c.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !n.Down() && (w.NoReadiness || n.Ready(ctx, 500*time.Millisecond)) {
					mu.Lock()
					in = append(in, n)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		w.rotation.Store(&in)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Rotation returns the nodes in rotation.
func (w *Workload) Rotation() []*Node { return *w.rotation.Load() }

// verify looks up, on every node, the bindings of the clients not yet
// settled, and settles those every node holds. A node that is down or
// paused cannot answer, so nothing settles while one is.
func (w *Workload) verify(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.verifyRound(ctx, 300)
	}
}

// verifyRound checks up to limit unsettled clients.
func (w *Workload) verifyRound(ctx context.Context, limit int) {
	w.verifyRoundsRun.Add(1)
	for _, n := range w.c.Nodes {
		if n.Down() {
			return
		}
	}
	type job struct {
		cl      *Client
		replica string
		since   time.Time
	}
	var jobs []job
	for _, cl := range w.Clients() {
		r, since, settled := cl.Current()
		if r != "" && !settled && time.Since(since) > 20*time.Millisecond {
			jobs = append(jobs, job{cl, r, since})
			if len(jobs) == limit {
				break
			}
		}
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, n := range w.c.Nodes {
				if ctx.Err() != nil {
					return
				}
				var b struct {
					Replica string `json:"replica"`
					Deleted bool   `json:"deleted"`
				}
				if err := n.JSON("/api/v1/bindings/"+AppHost+"/"+j.cl.Addr.String(), &b); err != nil || b.Deleted || b.Replica != j.replica {
					return
				}
			}
			at := time.Now()
			if j.cl.Settle(j.replica, j.since, at) {
				w.settledCount.Add(1)
				w.Settle.Add(at.Sub(j.since))
			}
		}()
	}
	wg.Wait()
}

// Settled returns how many bindings were seen on every node.
func (w *Workload) Settled() int64 { return w.settledCount.Load() }

// WaitSettled verifies until every client's binding is on every node, or
// fails after the timeout.
func (w *Workload) WaitSettled(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		w.verifyRound(ctx, 1<<30)
		left := 0
		for _, cl := range w.Clients() {
			if r, _, settled := cl.Current(); r != "" && !settled {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d clients' bindings not on every node after %v", left, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pollHealth reads every node's view of the replicas' health (admin API,
// every 200 ms) into the timeline: a move made by a node whose health
// checks held the old replica down is that node's judgement, not a lost
// binding, even when the replica ran (a starved node's checks time out).
func (w *Workload) pollHealth(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	down := map[string]bool{} // node/replica
	for {
		for _, n := range w.c.Nodes {
			if n.Down() {
				continue
			}
			polled := time.Now()
			var bs []struct {
				Name    string `json:"name"`
				Healthy bool   `json:"healthy"`
			}
			if err := n.JSON("/api/v1/backends", &bs); err != nil {
				continue
			}
			for _, b := range bs {
				k := n.Name + "/" + b.Name
				switch {
				case !b.Healthy && !down[k]:
					down[k] = true
					w.tl.Open(MarkedDown, k, polled.Add(-time.Second)) // marked since the last poll at most, plus slack
				case b.Healthy && down[k]:
					down[k] = false
					w.tl.Close(MarkedDown, k, time.Now())
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
