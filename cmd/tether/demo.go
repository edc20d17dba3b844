package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tetherproxy/tether/internal/demobackend"
)

func init() {
	commands["demo"] = command{"run a local fleet: 3 nodes and 3 demo backends on loopback", runDemo,
		func(w io.Writer) { fs, _, _ := demoFlags(w); fs.PrintDefaults() }}
}

// demoPlan is where the demo listens. Fixed ports make the printed
// addresses stable from one run to the next; --base moves them all.
type demoPlan struct {
	nodes, backends int
	base            int // node i: proxy base+1+i, admin base+101+i, gossip base+201+i; backend j: base+301+j
}

func (p demoPlan) proxy(i int) string   { return "127.0.0.1:" + strconv.Itoa(p.base+1+i) }
func (p demoPlan) admin(i int) string   { return "127.0.0.1:" + strconv.Itoa(p.base+101+i) }
func (p demoPlan) gossip(i int) string  { return "127.0.0.1:" + strconv.Itoa(p.base+201+i) }
func (p demoPlan) backend(j int) string { return "127.0.0.1:" + strconv.Itoa(p.base+301+j) }

func demoFlags(w io.Writer) (fs *flag.FlagSet, base *int, level *string) {
	fs = flag.NewFlagSet("tether demo", flag.ContinueOnError)
	fs.SetOutput(w)
	base = fs.Int("base", 8080, "port base: proxies on base+1.., admin on base+101.., gossip on base+201.., backends on base+301..")
	level = fs.String("log-level", "warn", "log level of the nodes (logs go to stderr): trace, debug, info, warn or error")
	return fs, base, level
}

func runDemo(args []string) int {
	fs, base, level := demoFlags(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, demoPlan{nodes: 3, backends: 3, base: *base}, *level, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tether demo:", err)
		return 1
	}
	return 0
}

// demo runs the fleet until ctx ends: the backends first, then the nodes,
// each a full `serve` in this process, joining each other over gossip.
func demo(ctx context.Context, p demoPlan, level string, out, logs io.Writer) error {
	for i := 0; i < p.nodes; i++ {
		for _, a := range []string{p.proxy(i), p.admin(i), p.gossip(i)} {
			if err := portFree(a); err != nil {
				return fmt.Errorf("%s is taken (try --base): %w", a, err)
			}
		}
	}
	var pool []string
	for j := 0; j < p.backends; j++ {
		name := "replica-" + string(rune('a'+j))
		b, err := demobackend.Start(name, p.backend(j))
		if err != nil {
			return fmt.Errorf("backend %s: %w (try --base)", name, err)
		}
		defer b.Close()
		pool = append(pool, name+"="+b.URL)
	}
	var gossipAddrs []string
	for i := 0; i < p.nodes; i++ {
		gossipAddrs = append(gossipAddrs, p.gossip(i))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, p.nodes)
	readyCh := make(chan *node, p.nodes)
	for i := 0; i < p.nodes; i++ {
		env := map[string]string{
			"TETHER_NODE_NAME":    "node" + strconv.Itoa(i+1),
			"TETHER_LISTEN":       p.proxy(i),
			"TETHER_ADMIN_LISTEN": p.admin(i),
			"TETHER_GOSSIP_BIND":  p.gossip(i),
			"TETHER_JOIN":         strings.Join(gossipAddrs, ","),
			"TETHER_BACKENDS":     strings.Join(pool, ","),
			"TETHER_LOG_LEVEL":    level,
			"TETHER_LOG_FORMAT":   "console",
		}
		cfg, err := loadConfig(nil, env, os.Hostname, io.Discard)
		if err != nil {
			return err
		}
		log := newLogger(cfg, logs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx, cfg, log, nil, func(n *node) { readyCh <- n }); err != nil {
				errs <- fmt.Errorf("%s: %w", cfg.NodeName, err)
				cancel()
			}
		}()
	}
	started := 0
	for started < p.nodes {
		select {
		case <-readyCh:
			started++
		case err := <-errs:
			wg.Wait()
			return err
		case <-ctx.Done():
			wg.Wait()
			return nil
		}
	}
	fmt.Fprintf(out, "tether demo: %d nodes, %d demo backends on loopback\n\n", p.nodes, p.backends)
	for i := 0; i < p.nodes; i++ {
		fmt.Fprintf(out, "  node%d   proxy http://%s   admin http://%s\n", i+1, p.proxy(i), p.admin(i))
	}
	fmt.Fprintln(out)
	for _, b := range pool {
		name, url, _ := strings.Cut(b, "=")
		fmt.Fprintf(out, "  backend %-10s %s\n", name, url)
	}
	fmt.Fprintf(out, `
Every request lands on one replica and stays there, whichever node serves it:
  for port in %[1]d %[2]d %[3]d %[1]d; do curl -s http://127.0.0.1:$port/; done
Another client (another source address) may get another replica, and keeps it:
  curl -s --interface 127.0.0.2 http://127.0.0.1:%[2]d/
Open http://%[4]s in a browser for bindings, vectors, members and backends.
Ctrl-C stops everything.
`, p.base+1, p.base+2, p.base+3, p.admin(0))
	select {
	case <-ctx.Done():
	case err := <-errs:
		cancel()
		wg.Wait()
		return err
	}
	wg.Wait()
	fmt.Fprintln(out, "tether demo: stopped")
	return nil
}

func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}
