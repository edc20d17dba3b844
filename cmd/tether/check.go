package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/tetherproxy/tether/check"
)

// Exit codes of `tether check`.
const (
	checkExitSticky     = 0 // no violation
	checkExitViolations = 1 // at least one sticky violation
	checkExitUsage      = 2 // bad flags or refused targets
	checkExitNoData     = 3 // nothing was proved: no response named a replica
)

func init() {
	commands["check"] = command{"load a proxy fleet and prove from outside that clients stay sticky", func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return checkMain(ctx, args, os.Stdout, os.Stderr)
	}, func(w io.Writer) { _, _, _ = parseCheckFlags([]string{"-h"}, w) }}
}

// checkMain is `tether check`; it returns the exit code.
func checkMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, asJSON, err := parseCheckFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		checkError(stderr, err)
		return checkExitUsage
	}
	k, err := check.New(ctx, cfg)
	if err != nil {
		checkError(stderr, err)
		if errors.Is(err, check.ErrResolve) {
			return checkExitNoData
		}
		return checkExitUsage
	}
	stopProgress := startProgress(k, stdout)
	r, err := k.Run(ctx)
	stopProgress()
	if err != nil {
		checkError(stderr, err)
		return checkExitNoData
	}
	if asJSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		checkError(stderr, err)
	}
	switch r.Verdict {
	case check.VerdictViolations:
		return checkExitViolations
	case check.VerdictNoData:
		return checkExitNoData
	}
	return checkExitSticky
}

func parseCheckFlags(args []string, stderr io.Writer) (cfg check.Config, asJSON bool, err error) {
	cfg = check.DefaultConfig()
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var targets, cidr, pick, bodyRE string
	fs.StringVar(&targets, "targets", "", "`host:port,...` to send requests to (proxy nodes; required)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "simulated clients, each with its own source address")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to send requests (at most 24h)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total requests/s over all clients, open loop (0 = closed loop)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after this many requests (0 = duration only)")
	fs.StringVar(&cfg.Host, "host", "", "Host header (default: the target's host:port)")
	fs.StringVar(&cfg.Path, "path", cfg.Path, "request path")
	fs.StringVar(&cidr, "source-cidr", cfg.SourceCIDR.String(), "client source addresses, one per client (\"none\" = the system's choice)")
	fs.BoolVar(&cfg.KeepAlive, "keepalive", cfg.KeepAlive, "reuse connections (--keepalive=false: one connection per request)")
	fs.StringVar(&pick, "pick", cfg.Pick.String(), "target choice per request: random or roundrobin")
	fs.StringVar(&cfg.Header, "header", cfg.Header, "response header naming the replica that served")
	fs.StringVar(&bodyRE, "body-regexp", "", "find the replica in the body instead: first submatch of this `regexp`")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout")
	fs.DurationVar(&cfg.StickyWindow, "sticky-window", cfg.StickyWindow,
		"a move off a replica is a violation if that replica serves anyone within this window after")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the random target choice (0 = random)")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "permit targets outside loopback")
	fs.BoolVar(&asJSON, "json", false, "write the report as JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: tether check --targets host:port,... [flags]

Sends load from many simulated clients (each with its own source address)
and reports throughput, latency, errors and sticky violations: a client
moved to another replica while its replica still served other clients.
Exit code 0 sticky, 1 violations, 2 usage error, 3 nothing proved.

`)
		fs.PrintDefaults()
	}
	if err = fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Targets = append(cfg.Targets, t)
		}
	}
	if len(cfg.Targets) == 0 {
		return cfg, false, errors.New("--targets: at least one host:port is required")
	}
	switch strings.ToLower(cidr) {
	case "", "none":
		cfg.SourceCIDR = netip.Prefix{}
	default:
		if cfg.SourceCIDR, err = netip.ParsePrefix(cidr); err != nil {
			return cfg, false, fmt.Errorf("--source-cidr: %v", err)
		}
	}
	if cfg.Pick, err = check.ParsePick(pick); err != nil {
		return cfg, false, err
	}
	if bodyRE != "" {
		headerSet := false
		fs.Visit(func(f *flag.Flag) { headerSet = headerSet || f.Name == "header" })
		if headerSet {
			return cfg, false, errors.New("--header and --body-regexp: give one or the other")
		}
		if cfg.BodyRegexp, err = regexp.Compile(bodyRE); err != nil {
			return cfg, false, fmt.Errorf("--body-regexp: %v", err)
		}
	}
	return cfg, asJSON, nil
}

// startProgress draws a live status line on w while the check runs, when
// w is a terminal; the returned func stops it and clears the line.
func startProgress(k *check.Checker, w io.Writer) (stop func()) {
	f, ok := w.(*os.File)
	if !ok {
		return func() {}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(f, "\r\033[K", k.Progress().String())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// checkError prints err once prefixed "tether check:", whether or not it
// comes from package check (whose errors already start "check:").
func checkError(w io.Writer, err error) {
	fmt.Fprintln(w, "tether check:", strings.TrimPrefix(err.Error(), "check: "))
}
