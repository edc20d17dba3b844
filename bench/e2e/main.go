// Command e2e is the end-to-end part of `make bench`: on loopback, in one
// run, it sends the same load from the same clients (tether check's load
// engine, in this process) to a backend directly, to one tether node, to a
// 3-node tether fleet, and to HAProxy (one process, and two sharing a stick
// table through `peers`), interleaved over rounds, and writes a markdown
// table of medians: requests/s, p50, p99, their ratios to HAProxy and to
// direct, sticky violations, and CPU time per request from each proxy
// process's own accounting (/proc/PID/stat).
//
// The backends (internal/demobackend replicas) run in one child process —
// this binary again, with TETHER_BENCH_ROLE=backends — shared by every row,
// so each row pays the same backend cost and that cost is measured apart
// from the proxies and from the load generator.
//
// See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the flags.
type options struct {
	tether       string
	tetherBase   string // a second tether binary for the baseline row ("" = none)
	haproxy      string
	rows         []string
	ref          string // the HAProxy row ratios are taken against
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	clients      int
	rate         float64
	keepalive    bool
	backends     int
	host         string
	readyTimeout time.Duration
	out          string
	jsonOut      string
	note         string
	workDir      string // where the children's configs and logs go ("" = the system's temp dir)
}

func defaultOptions() options {
	return options{
		tether: "bin/tether", haproxy: "haproxy", rows: allRows, ref: "haproxy-2",
		rounds: 3, duration: 5 * time.Second, warmup: time.Second, clients: 64,
		keepalive: true, backends: 3, host: "bench.test", readyTimeout: 20 * time.Second,
		out: "bench/RESULTS.md",
	}
}

func main() {
	if os.Getenv(roleEnv) == "backends" {
		os.Exit(serveBackends())
	}
	o := defaultOptions()
	rows := strings.Join(o.rows, ",")
	flag.StringVar(&o.tether, "tether", o.tether, "tether binary (`tether serve` is started with TETHER_* variables)")
	flag.StringVar(&o.tetherBase, "tether-base", "", "a second tether binary, run as one more row (\"tether-1-base\", after tether-1; \"tether-1-base-tls\" and \"tether-1-base-short\" after tether-1-tls and tether-1-short): before/after in one run")
	flag.StringVar(&o.haproxy, "haproxy", o.haproxy, "haproxy binary")
	flag.StringVar(&rows, "rows", rows, "rows to run, of "+strings.Join(allRows, ","))
	flag.StringVar(&o.ref, "ref", o.ref, "the HAProxy row that ratios are taken against")
	flag.IntVar(&o.rounds, "rounds", o.rounds, "interleaved rounds (the median is quoted), at least 1")
	flag.DurationVar(&o.duration, "duration", o.duration, "measured load per row and round")
	flag.DurationVar(&o.warmup, "warmup", o.warmup, "unmeasured load before each measurement")
	flag.IntVar(&o.clients, "clients", o.clients, "simulated clients, each its own source IP")
	flag.Float64Var(&o.rate, "rate", o.rate, "open-loop total requests/s (0 = closed loop)")
	flag.BoolVar(&o.keepalive, "keepalive", o.keepalive, "client keep-alive")
	flag.IntVar(&o.backends, "backends", o.backends, "demo backend replicas")
	flag.StringVar(&o.host, "host", o.host, "Host header of every request")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", o.readyTimeout, "how long a proxy may take to start serving")
	flag.StringVar(&o.out, "out", o.out, "markdown file to write (\"\" = stdout only)")
	flag.StringVar(&o.jsonOut, "json", "", "also write every measurement as JSON to this file")
	flag.StringVar(&o.note, "note", "", "a caveat printed under the table (e.g. a shared machine)")
	flag.StringVar(&o.workDir, "workdir", "", "parent of the run's directory of configs and logs (default: the temp dir)")
	flag.Parse()
	o.rows = strings.Split(rows, ",")
	if o.tetherBase != "" && !slices.Contains(o.rows, baseRow) {
		i := slices.Index(o.rows, "tether-1") + 1 // 0 when absent: first
		o.rows = slices.Insert(o.rows, i, baseRow)
		for _, variant := range []func(string) string{tlsRow, shortRow} {
			if i := slices.Index(o.rows, variant("tether-1")); i >= 0 && !slices.Contains(o.rows, variant(baseRow)) {
				o.rows = slices.Insert(o.rows, i+1, variant(baseRow))
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
