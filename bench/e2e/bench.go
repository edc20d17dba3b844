package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/tetherproxy/tether/check"
	"github.com/tetherproxy/tether/internal/procstat"
)

// maxCells bounds a run: rows x rounds.
const maxCells = 200

// cell is one measurement: one row, one round.
type cell struct {
	Row        string        `json:"row"`
	Round      int           `json:"round"`
	RPS        float64       `json:"requests_per_sec"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	Requests   uint64        `json:"requests"`
	Errors     uint64        `json:"errors"`
	Violations uint64        `json:"violations"`
	ProxyCPU   time.Duration `json:"proxy_cpu_ns"`   // all of the row's proxy processes
	BackendCPU time.Duration `json:"backend_cpu_ns"` // the backends process
	ClientCPU  time.Duration `json:"client_cpu_ns"`  // this process: the load generator
}

func (o *options) validate() error {
	switch {
	case o.rounds < 1:
		return fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	case len(o.rows) == 0:
		return errors.New("-rows: none given")
	case len(o.rows)*o.rounds > maxCells:
		return fmt.Errorf("-rows x -rounds = %d cells: at most %d", len(o.rows)*o.rounds, maxCells)
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration %v: want > 0 and <= 10m", o.duration)
	case o.warmup < 0 || o.warmup > time.Minute:
		return fmt.Errorf("-warmup %v: want 0..1m", o.warmup)
	case o.backends < 1 || o.backends > 64:
		return fmt.Errorf("-backends %d: want 1..64", o.backends)
	case o.clients < 1 || o.clients > 4096:
		return fmt.Errorf("-clients %d: want 1..4096", o.clients)
	}
	for _, r := range o.rows {
		isBase := r == baseRow || r == tlsRow(baseRow) || r == shortRow(baseRow)
		if isBase && o.tetherBase == "" {
			return fmt.Errorf("-rows: %s needs -tether-base", r)
		}
		if !slices.Contains(allRows, r) && !isBase {
			return fmt.Errorf("-rows: unknown row %q (rows: %v)", r, allRows)
		}
	}
	return nil
}

// run is the benchmark: start everything, measure rows x rounds, write
// the table.
func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.workDir, "tether-bench-")
	if err != nil {
		return err
	}
	l := &lab{dir: dir, o: o}
	defer l.stopAll()
	fail := func(err error) error { return fmt.Errorf("%w (logs of the children in %s)", err, dir) }
	loadBefore := loadAvg()
	began := time.Now()

	bp, bs, err := startBackends(ctx, dir, o.backends)
	if err != nil {
		return fail(err)
	}
	l.started = append(l.started, bp)
	l.backends = bs

	var setups []*setup
	for _, key := range o.rows {
		s := l.newSetup(ctx, key)
		if s.err != nil {
			fmt.Fprintf(stderr, "bench: %s: %v\n", key, s.err)
		}
		setups = append(setups, s)
	}
	var runnable []*setup
	for _, s := range setups {
		if s.err == nil {
			runnable = append(runnable, s)
		}
	}
	var cells []cell
	for round := range o.rounds {
		// Rotate the order each round so no row always runs first (cold)
		// or right after the same neighbour.
		for i := range runnable {
			s := runnable[(i+round)%len(runnable)]
			if o.warmup > 0 {
				if _, err := measure(ctx, s, bp, o, o.warmup, round); err != nil {
					return fail(err)
				}
			}
			c, err := measure(ctx, s, bp, o, o.duration, round)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintf(stderr, "bench: round %d %-10s %8.0f req/s  p50 %-9v p99 %-9v errors %d violations %d\n",
				round+1, s.key, c.RPS, c.P50, c.P99, c.Errors, c.Violations)
			cells = append(cells, c)
		}
	}
	for _, s := range runnable {
		if len(s.sockets) > 0 {
			s.notes = append(s.notes, stickNote(ctx, s.sockets))
		}
	}
	md := markdown(tableInput{
		o: o, setups: setups, cells: cells, machine: machine(o.haproxy),
		date: began, elapsed: time.Since(began), loadBefore: loadBefore, loadAfter: loadAvg(),
	})
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(cells, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	l.stopAll()
	for _, s := range setups {
		if s.err != nil {
			fmt.Fprintf(stderr, "bench: logs of the children kept in %s\n", dir)
			return nil
		}
	}
	return os.RemoveAll(dir)
}

// measure runs the load once against s and takes the CPU the processes
// spent meanwhile.
func measure(ctx context.Context, s *setup, backends *proc, o options, d time.Duration, round int) (cell, error) {
	cfg := check.DefaultConfig()
	cfg.Targets = s.targets
	cfg.Clients = o.clients
	cfg.Duration = d
	cfg.Rate = o.rate
	cfg.KeepAlive = o.keepalive && !s.short
	cfg.Host = o.host
	cfg.Seed = 1 // the same target choices for every row
	cfg.TLS = s.tls
	k, err := check.New(ctx, cfg)
	if err != nil {
		return cell{}, err
	}
	p0, b0, c0 := procsCPU(s.procs), procsCPU([]*proc{backends}), selfCPU()
	r, err := k.Run(ctx)
	if err != nil {
		return cell{}, err
	}
	if r.Aborted {
		return cell{}, ctx.Err()
	}
	return cell{
		Row: s.key, Round: round, RPS: r.RequestsPerSec, P50: r.Latency.P50, P99: r.Latency.P99,
		Requests: r.Requests, Errors: r.Errors, Violations: r.Stickiness.Violations,
		ProxyCPU:   procsCPU(s.procs) - p0,
		BackendCPU: procsCPU([]*proc{backends}) - b0,
		ClientCPU:  selfCPU() - c0,
	}, nil
}

// procsCPU is the CPU time used so far by ps together; a process that
// cannot be read counts 0.
func procsCPU(ps []*proc) time.Duration {
	var sum time.Duration
	for _, p := range ps {
		if t, err := procstat.CPUTime(p.pid()); err == nil {
			sum += t
		}
	}
	return sum
}
