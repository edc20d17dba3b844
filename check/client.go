package check

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// maxLabel bounds a replica name taken from a response, so a hostile
// server cannot make the replica table large.
const maxLabel = 256

// client is one simulated client. Only its own goroutine touches it while
// the run lasts.
type client struct {
	id   int32
	src  netip.Addr // invalid: no source binding
	tr   *http.Transport
	reqs []*http.Request // the Checker's templates, shared read-only
	rng  *rand.Rand
	next int // round-robin position
	cur  *replica
	hist *histogram
	buf  []byte // body bytes searched by BodyRegexp
}

func newClient(k *Checker, id int, seed uint64) *client {
	cfg := &k.cfg
	d := &net.Dialer{Timeout: cfg.Timeout}
	c := &client{id: int32(id), hist: k.hists[id%len(k.hists)], next: id % len(cfg.Targets)}
	if k.sources != nil {
		c.src = k.sources[id]
		d.LocalAddr = &net.TCPAddr{IP: c.src.AsSlice()}
	}
	c.tr = &http.Transport{
		Proxy:               nil, // never an HTTP_PROXY from the environment: the client is what is measured
		DialContext:         d.DialContext,
		DisableKeepAlives:   !cfg.KeepAlive,
		DisableCompression:  true,
		MaxIdleConns:        len(cfg.Targets),
		MaxIdleConnsPerHost: 1, // one request in flight per client
		IdleConnTimeout:     90 * time.Second,
	}
	if cfg.TLS != nil {
		c.tr.TLSClientConfig = cfg.TLS.Clone() // HTTP/1.1: no ForceAttemptHTTP2
		c.tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	c.reqs = k.reqs
	c.rng = rand.New(rand.NewPCG(seed, uint64(id)))
	if cfg.BodyRegexp != nil {
		c.buf = make([]byte, cfg.BodyLimit)
	}
	return c
}

// pick returns the index of the next request's target.
func (c *client) pick(p Pick) int {
	n := len(c.reqs)
	if n == 1 {
		return 0
	}
	if p == PickRoundRobin {
		i := c.next
		c.next = (c.next + 1) % n
		return i
	}
	return c.rng.IntN(n)
}

// label reads the body of resp and returns the replica that served it, ""
// when the response names none.
func (k *Checker) label(c *client, resp *http.Response) (string, error) {
	var label string
	if re := k.cfg.BodyRegexp; re != nil {
		n, err := io.ReadFull(resp.Body, c.buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return "", err
		}
		if m := re.FindSubmatch(c.buf[:n]); m != nil {
			label = string(bytes.TrimSpace(m[min(1, len(m)-1)]))
		}
	} else if v := resp.Header[k.header]; len(v) > 0 {
		label = v[0]
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if len(label) > maxLabel {
		label = label[:maxLabel]
	}
	return label, nil
}

// runClient sends c's requests until the deadline, the request bound or
// the end of ctx.
func (k *Checker) runClient(ctx context.Context, c *client, start, deadline time.Time) {
	var (
		interval time.Duration
		next     time.Time
		timer    *time.Timer
	)
	if k.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(k.cfg.Clients) / k.cfg.Rate)
		next = start.Add(interval * time.Duration(c.id) / time.Duration(k.cfg.Clients))
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	for ctx.Err() == nil {
		intended := k.now()
		if !intended.Before(deadline) {
			return // a client far behind its schedule stops at the deadline too
		}
		if interval > 0 {
			if !next.Before(deadline) {
				return
			}
			if wait := next.Sub(intended); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
			intended, next = next, next.Add(interval)
		}
		if k.cfg.Requests > 0 && k.sent.Add(1) > k.cfg.Requests {
			return
		}
		k.do(ctx, c, start, intended)
	}
}

// do sends one request and records its outcome.
func (k *Checker) do(ctx context.Context, c *client, start, intended time.Time) {
	req := c.reqs[c.pick(k.cfg.Pick)]
	rctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	sent := k.now()
	resp, err := c.tr.RoundTrip(req.WithContext(rctx))
	if err != nil {
		k.fail(classify(ctx, err))
		return
	}
	label, err := k.label(c, resp)
	_ = resp.Body.Close()
	got := k.now()
	if err != nil {
		k.fail(classify(ctx, err))
		return
	}
	c.hist.record(got.Sub(intended))
	if kind := statusKind(resp.StatusCode); kind >= 0 {
		k.fail(kind)
		return
	}
	if label == "" {
		k.fail(KindUnlabelled)
		return
	}
	rep := c.cur
	if rep == nil || rep.name != label {
		if rep = k.reps.get(label); rep == nil {
			k.fail(KindReplicaOverflow)
			return
		}
	}
	rep.served.Add(1)
	rep.markUp(k.clock.slot(sent.Sub(start)))
	if c.cur != nil && c.cur != rep {
		k.switches.Add(1)
		k.swlog.add(switchRec{client: c.id, from: c.cur, to: rep, at: got.Sub(start)})
	}
	c.cur = rep
	k.ok.Add(1)
}

func (k *Checker) fail(kind Kind) {
	k.kinds[kind].Add(1)
}
