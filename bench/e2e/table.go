package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// summary is one row's medians over its rounds.
type summary struct {
	rounds                     int
	rps                        float64
	p50, p99                   time.Duration
	proxyUS, backendUS, client float64 // CPU µs per request
	requests, errors, viol     uint64
}

// median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func perRequestUS(cpu time.Duration, requests uint64) float64 {
	if requests == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(requests)
}

// summarize takes the medians of row's cells.
func summarize(row string, cells []cell) (summary, bool) {
	var s summary
	var rps, p50, p99, px, bk, cl []float64
	for _, c := range cells {
		if c.Row != row {
			continue
		}
		s.rounds++
		rps = append(rps, c.RPS)
		p50 = append(p50, float64(c.P50))
		p99 = append(p99, float64(c.P99))
		px = append(px, perRequestUS(c.ProxyCPU, c.Requests))
		bk = append(bk, perRequestUS(c.BackendCPU, c.Requests))
		cl = append(cl, perRequestUS(c.ClientCPU, c.Requests))
		s.requests += c.Requests
		s.errors += c.Errors
		s.viol += c.Violations
	}
	if s.rounds == 0 {
		return s, false
	}
	s.rps, s.p50, s.p99 = median(rps), time.Duration(median(p50)), time.Duration(median(p99))
	s.proxyUS, s.backendUS, s.client = median(px), median(bk), median(cl)
	return s, true
}

// tableInput is everything the markdown needs.
type tableInput struct {
	o                     options
	setups                []*setup
	cells                 []cell
	machine               string
	date                  time.Time
	elapsed               time.Duration
	loadBefore, loadAfter string
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// markdown renders the results table and its legend.
func markdown(in tableInput) string {
	var b strings.Builder
	o := in.o
	sums := map[string]summary{}
	for _, s := range in.setups {
		if sm, ok := summarize(s.key, in.cells); ok {
			sums[s.key] = sm
		}
	}
	ref, hasRef := sums[o.ref]
	direct, hasDirect := sums["direct"]
	refLabel := o.ref
	for _, s := range in.setups {
		if s.key == o.ref {
			refLabel = s.label
		}
	}
	loop := "closed loop"
	if o.rate > 0 {
		loop = fmt.Sprintf("open loop at %g req/s", o.rate)
	}
	ka := "keep-alive"
	if !o.keepalive {
		ka = "a new connection per request"
	}
	fmt.Fprintf(&b, "### End-to-end benchmark, %s\n\n", in.date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s.\n\n", in.machine)
	fmt.Fprintf(&b, "Load: `tether check`'s engine, %d clients, each its own source IP (127.64.0.1 on), %s, %s, "+
		"`Host: %s`, random target per request; %d demobackend replicas in one separate process, shared by every row. "+
		"%d round(s), rows interleaved (order rotated each round), %v measured after %v of warm-up per row and round; "+
		"medians quoted. Run took %v; load average %s before, %s after.\n\n",
		o.clients, ka, loop, o.host, o.backends, o.rounds, o.duration, o.warmup,
		in.elapsed.Round(time.Second), in.loadBefore, in.loadAfter)
	b.WriteString("| setup | req/s | p50 | p99 | proxy CPU µs/req | req/s ×HAProxy | p50 ×HAProxy | p99 ×HAProxy " +
		"| req/s ×direct | p50 ×direct | p99 ×direct | errors | sticky violations | backend CPU µs/req |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range in.setups {
		sm, ok := sums[s.key]
		if !ok {
			why := "not run"
			if s.err != nil {
				why = strings.ReplaceAll(s.err.Error(), "|", "/")
				if len(why) > 240 {
					why = why[:240] + "…"
				}
			}
			fmt.Fprintf(&b, "| %s | %s | | | | | | | | | | | | |\n", s.label, why)
			continue
		}
		cpu := "—"
		if len(s.procs) > 0 {
			cpu = fmt.Sprintf("%.0f", sm.proxyUS)
		}
		rr, r50, r99 := "—", "—", "—"
		rf, ok := ref, hasRef
		switch {
		case strings.HasSuffix(s.key, "-tls"):
			rf, ok = sums[tlsRow(tlsRef)] // HTTPS rows against HTTPS
		case strings.HasSuffix(s.key, "-short"):
			rf, ok = sums[shortRow(tlsRef)] // short connections against short
		}
		if ok {
			rr, r50, r99 = ratio(sm.rps, rf.rps), ratio(float64(sm.p50), float64(rf.p50)), ratio(float64(sm.p99), float64(rf.p99))
		}
		dr, d50, d99 := "—", "—", "—"
		if hasDirect && !strings.HasSuffix(s.key, "-short") { // direct is keep-alive
			dr, d50, d99 = ratio(sm.rps, direct.rps), ratio(float64(sm.p50), float64(direct.p50)), ratio(float64(sm.p99), float64(direct.p99))
		}
		viol := fmt.Sprint(sm.viol)
		if s.key == "direct" {
			viol = "— (one backend)"
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d of %d | %s | %.0f |\n",
			s.label, sm.rps, ms(sm.p50), ms(sm.p99), cpu, rr, r50, r99, dr, d50, d99,
			sm.errors, sm.requests, viol, sm.backendUS)
	}
	fmt.Fprintf(&b, "\n×HAProxy: against \"%s\" (HTTPS rows: against HAProxy's HTTPS row; new-connection rows: against HAProxy's); ×direct: against the backend without a proxy. "+
		"Proxy CPU: user+system time of the row's proxy processes (all of them, all threads; /proc/PID/stat, 10 ms ticks) "+
		"over the requests of the measurement. Backend CPU is the same for every row by design; the load generator "+
		"shares the machine (it used %s µs/req in the median row).\n", refLabel, clientCPU(sums))
	for _, s := range in.setups {
		for _, n := range s.notes {
			fmt.Fprintf(&b, "\n- %s: %s", s.label, n)
		}
	}
	if o.note != "" {
		fmt.Fprintf(&b, "\n\n%s", o.note)
	}
	b.WriteString("\n")
	return b.String()
}

func clientCPU(sums map[string]summary) string {
	var xs []float64
	for _, s := range sums {
		xs = append(xs, s.client)
	}
	return fmt.Sprintf("%.0f", median(xs))
}

// machine describes the host: CPU model and count, kernel, Go, HAProxy.
func machine(haproxy string) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	hv := "not installed"
	if out, err := exec.Command(haproxy, "-v").Output(); err == nil {
		hv = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		if f := strings.Fields(hv); len(f) >= 3 {
			hv = f[2]
		}
	}
	return fmt.Sprintf("%s, %d CPUs, Linux %s, %s, HAProxy %s", model, runtime.NumCPU(), kernel, runtime.Version(), hv)
}

// loadAvg is the 1-minute load average, to show how busy the machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
