package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Health: active checks run one goroutine per replica (path, interval,
// timeout, rise/fall of its pool); passive checks mark a replica down the
// moment a connection to it fails, so the next requests of its clients
// move without waiting for the checks. Only active checks bring a replica
// back. A replica starts healthy: a new node serves at once, and a dead
// replica is found by its first refused connection or by Fall checks.

// startChecker starts b's checker with hc. Caller holds p.mu.
func (p *Proxy) startChecker(b *backend, hc HealthCheck) {
	ctx, cancel := context.WithCancel(context.Background())
	b.hc, b.stop, b.done = hc, cancel, make(chan struct{})
	go p.runChecker(ctx, b, hc, b.done)
}

// stopChecker stops b's checker and waits for it. Caller holds p.mu.
func (p *Proxy) stopChecker(b *backend) {
	if b.stop == nil {
		return
	}
	b.stop()
	<-b.done
	b.stop, b.done = nil, nil
}

func (p *Proxy) runChecker(ctx context.Context, b *backend, hc HealthCheck, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	passed, failed := 0, 0
	downs := b.downs.Load()
	for {
		err := p.probe(ctx, b, hc)
		if ctx.Err() != nil {
			return
		}
		res := &checkResult{at: time.Now()}
		if err != nil {
			res.err = err.Error()
		}
		b.lastCheck.Store(res)
		if d := b.downs.Load(); d != downs {
			downs, passed = d, 0 // marked down passively: count rise anew
		}
		if err == nil {
			passed, failed = passed+1, 0
			if passed >= hc.Rise && !b.healthy.Load() {
				p.setHealthy(b, true, fmt.Sprintf("%d checks passed", passed))
			}
		} else {
			passed, failed = 0, failed+1
			if failed >= hc.Fall && b.healthy.Load() {
				p.setHealthy(b, false, fmt.Sprintf("%d checks failed, last: %v", failed, err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe runs one check: a GET of hc.Path (2xx or 3xx passes) or, without a
// path, a TCP connect.
func (p *Proxy) probe(ctx context.Context, b *backend, hc HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	if hc.Path == "" {
		addr := b.url.Host
		if b.url.Port() == "" {
			port := "80"
			if b.url.Scheme == "https" {
				port = "443"
			}
			addr = net.JoinHostPort(b.url.Hostname(), port)
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	u := *b.url
	u.Path, u.RawPath = hc.Path, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "tether-health-check")
	res, err := p.checker.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode >= 400 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// markDown is the passive check: a failed connection marks b down at once.
func (p *Proxy) markDown(b *backend, why string) {
	b.downs.Add(1)
	p.setHealthy(b, false, why)
}

// setHealthy changes b's state and says so (warn: operators want to know).
func (p *Proxy) setHealthy(b *backend, up bool, why string) {
	if b.healthy.Swap(up) == up {
		return
	}
	b.lastWhy.Store(&why)
	v := 0.0
	state := "down"
	if up {
		v, state = 1, "up"
	}
	b.m.healthy.Set(v)
	p.log.Warn().Str("pool", b.pool).Str("backend", b.name).Str("url", b.url.String()).
		Str("state", state).Str("reason", why).Msg("backend " + state)
}
