package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
)

// roleEnv makes this binary (or its test binary) serve the backends
// instead of driving the benchmark: one process for all replicas, so their
// CPU is measured apart from the load generator and the proxies.
const (
	roleEnv      = "TETHER_BENCH_ROLE"
	backendsEnv  = "TETHER_BENCH_BACKENDS"
	readyFileEnv = "TETHER_BENCH_READY_FILE"
)

// serveBackends is the backends role: it starts the replicas on loopback,
// writes "name=url,..." to the ready file (atomically), and serves until
// SIGTERM (or the driver's death: see startProc).
func serveBackends() int {
	n, err := strconv.Atoi(os.Getenv(backendsEnv))
	ready := os.Getenv(readyFileEnv)
	if err != nil || n < 1 || n > 64 || ready == "" {
		fmt.Fprintf(os.Stderr, "backends: %s=%q (want 1..64) %s=%q (want a path)\n",
			backendsEnv, os.Getenv(backendsEnv), readyFileEnv, ready)
		return 2
	}
	var list []string
	var running []*demobackend.Running
	for i := range n {
		b, err := demobackend.Start(fmt.Sprintf("b%d", i+1), "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "backends:", err)
			return 1
		}
		running = append(running, b)
		list = append(list, b.Name()+"="+b.URL)
	}
	tmp := ready + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(list, ",")), 0o600); err != nil || os.Rename(tmp, ready) != nil {
		fmt.Fprintln(os.Stderr, "backends: cannot write", ready, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, b := range running {
		_ = b.Shutdown(sctx)
	}
	return 0
}

// backend is one replica as the driver knows it.
type backend struct{ name, url, addr string }

// startBackends runs the backends role in a child process (this same
// binary) and returns it with the replicas it serves.
func startBackends(ctx context.Context, dir string, n int) (*proc, []backend, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	ready := filepath.Join(dir, "backends.ready")
	p, err := startProc(dir, "backends", []string{
		roleEnv + "=backends", fmt.Sprintf("%s=%d", backendsEnv, n), readyFileEnv + "=" + ready,
	}, self)
	if err != nil {
		return nil, nil, err
	}
	var got []byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got, err = os.ReadFile(ready); err == nil {
			break
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.stop(time.Second)
			return nil, nil, fmt.Errorf("backends did not start: %s", p.tail(5))
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	var bs []backend
	for _, kv := range strings.Split(string(got), ",") {
		name, url, ok := strings.Cut(kv, "=")
		if !ok {
			p.stop(time.Second)
			return nil, nil, fmt.Errorf("backends wrote %q", got)
		}
		bs = append(bs, backend{name: name, url: url, addr: strings.TrimPrefix(url, "http://")})
	}
	return p, bs, nil
}
