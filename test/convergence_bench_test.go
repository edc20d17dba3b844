package test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// BenchmarkConvergence (issue 4) measures, on a 3-node fleet of processes,
// how long a new binding takes from the client's response on one node until
// each other node's admin API shows it, idle and under a background load of
// new bindings (binds/s spread over the nodes). Both other nodes are asked
// at once, seen_by:
//   - wait: one blocking GET ...?wait=10s each, sent before the bind and
//     waiting at the node; the node answers when the binding is merged, so
//     the figure is the arrival plus one response over loopback (about
//     half the API round trip);
//   - poll: GETs back to back from the client's response on, as fast as
//     the API answers; the figure adds up to one API round trip
//     (api-rtt-p50-ms) to the arrival.
//
// Idle means idle: the next measured bind waits out a quiet spell (25 ms).
// Reported: p50, p99, max in ms, from the client's response; a negative
// figure means the node had the binding before the client had its
// response (pushed while the response came back from the replica), and
// before-response-% says how often that was.
func BenchmarkConvergence(b *testing.B) {
	for _, sc := range []struct {
		load int
		wait bool
	}{{0, true}, {0, false}, {1000, true}, {1000, false}} {
		load, seenBy := sc.load, map[bool]string{true: "wait", false: "poll"}[sc.wait]
		b.Run(fmt.Sprintf("binds_per_s=%d/seen_by=%s", load, seenBy), func(b *testing.B) {
			_, spec := backends(b, "a", "b", "c")
			f := fleet.Start(b, bin, fleet.Options{Nodes: 3, Backends: spec})
			stop := func() int64 { return 0 }
			if load > 0 {
				stop = churn(f, load)
			}
			poll := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
			var lat []time.Duration
			ctx := context.Background()
			// What one poll costs: the admin API's round trip for a binding
			// it holds, so the figures below can be read net of it.
			rtt := apiRoundTrip(b, ctx, f, poll)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := fleet.NewClient(fleet.ClientAddr(200_000+i), false)
				from := f.Nodes[i%3]
				// Both other nodes are asked at once, each until it shows
				// the binding: a node's figure does not include waiting for
				// the other. Waiting requests go out before the bind, so
				// that they wait at the node when the binding arrives.
				var wg sync.WaitGroup
				seen := make([]time.Time, 2)
				errs := make([]error, 2)
				responded := make(chan struct{}) // closed at the client's response
				for j := 1; j < 3; j++ {
					to := f.Nodes[(i+j)%3]
					url := "http://" + to.Admin + "/api/v1/bindings/" + appHost + "/" + c.Addr.String()
					if sc.wait {
						url += "?wait=10s"
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if !sc.wait {
							<-responded // polls start at the client's response
						}
						start := time.Now()
						for {
							resp, err := poll.Get(url)
							if err == nil {
								resp.Body.Close()
								if resp.StatusCode == http.StatusOK {
									seen[j-1] = time.Now()
									return
								}
							}
							if time.Since(start) > 10*time.Second {
								errs[j-1] = fmt.Errorf("binding of %s not on %s after 10s", c.Addr, to.Name)
								return
							}
						}
					}()
				}
				if load == 0 {
					time.Sleep(25 * time.Millisecond) // a quiet spell (benchmark pacing, not a wait for a condition)
				} else if sc.wait {
					time.Sleep(3 * time.Millisecond) // the waiting requests reach the nodes (pacing)
				}
				if _, err := c.Backend(ctx, from.Proxy, appHost); err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				close(responded)
				c.Close()
				wg.Wait()
				got := make([]time.Duration, 2)
				for j := range got {
					if errs[j] != nil {
						b.Fatal(errs[j])
					}
					// Negative when the node had the binding before the
					// client had its response: it was pushed while the
					// response was on its way back from the replica.
					got[j] = seen[j].Sub(now)
				}
				lat = append(lat, got...)
			}
			b.StopTimer()
			stop()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			early := 0
			for _, d := range lat {
				if d < 0 {
					early++
				}
			}
			b.ReportMetric(100*float64(early)/float64(len(lat)), "before-response-%")
			b.ReportMetric(float64(rtt.Microseconds())/1000, "api-rtt-p50-ms")
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(1), "max-ms")
		})
	}
}

// apiRoundTrip binds one client on node 0 and returns the median of 200
// polls of it on node 1's admin API (after it has arrived there): the
// round trip every convergence figure includes once.
func apiRoundTrip(b *testing.B, ctx context.Context, f *fleet.Fleet, poll *http.Client) time.Duration {
	c := fleet.NewClient(fleet.ClientAddr(199_999), false)
	defer c.Close()
	if _, err := c.Backend(ctx, f.Nodes[0].Proxy, appHost); err != nil {
		b.Fatal(err)
	}
	url := "http://" + f.Nodes[1].Admin + "/api/v1/bindings/" + appHost + "/" + c.Addr.String()
	var rtts []time.Duration
	for deadline := time.Now().Add(10 * time.Second); len(rtts) < 200; {
		t0 := time.Now()
		resp, err := poll.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				rtts = append(rtts, time.Since(t0))
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the binding of %s never showed on %s (%d polls answered)", c.Addr, f.Nodes[1].Name, len(rtts))
		}
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// churn makes perSecond new bindings a second, spread over the nodes, each
// from a new source address (open loop, 16 workers), until stop; it returns
// the requests served.
func churn(f *fleet.Fleet, perSecond int) (stop func() int64) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var served atomic.Int64
	const workers = 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * workers / time.Duration(perSecond))
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				c := fleet.NewClient(fleet.ClientAddr(300_000+w*50_000+k%50_000), false)
				if _, err := c.Backend(ctx, f.Nodes[(w+k)%len(f.Nodes)].Proxy, appHost); err == nil {
					served.Add(1)
				}
				c.Close()
			}
		}()
	}
	return func() int64 { cancel(); wg.Wait(); return served.Load() }
}
