package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/tetherproxy/tether/stickydb"
	"github.com/tetherproxy/tether/web"
)

func init() {
	commands["drain"] = command{"drain a replica fleet-wide; --wait: until no node holds a live binding to it",
		func(args []string) int {
			return drainMain(context.Background(), args, env.ToMap(os.Environ()), os.Stdout, os.Stderr)
		},
		func(w io.Writer) { fs, _ := drainFlags(w, nil); fs.PrintDefaults() },
	}
}

// Exit codes of `tether drain`.
const (
	drainExitEmpty    = 0 // drained (and, with --wait, empty)
	drainExitLeft     = 1 // --wait: the deadline passed with bindings left
	drainExitUsage    = 2 // bad flags
	drainExitFailed   = 3 // the admin API refused or could not be reached
	defaultDrainWait  = time.Hour
	drainHTTPOverhead = 30 * time.Second
)

type drainOpts struct {
	admin, token, pool string
	wait               waitFlag
	moveIdle           time.Duration
}

// waitFlag is --wait (until empty, at most an hour) or --wait=DURATION.
type waitFlag struct{ d time.Duration }

func (w *waitFlag) IsBoolFlag() bool { return true }
func (w *waitFlag) String() string {
	if w == nil || w.d == 0 {
		return ""
	}
	return w.d.String()
}
func (w *waitFlag) Set(s string) error {
	switch s {
	case "true":
		w.d = defaultDrainWait
	case "false":
		w.d = 0
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 24*time.Hour {
			return errors.New("want a duration in (0, 24h], like 10m")
		}
		w.d = d
	}
	return nil
}

func drainFlags(w io.Writer, environ map[string]string) (*flag.FlagSet, *drainOpts) {
	o := &drainOpts{admin: adminURL(environ["TETHER_ADMIN_LISTEN"])}
	fs := flag.NewFlagSet("tether drain", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.StringVar(&o.admin, "admin", o.admin, "admin URL of any node of the fleet (default: from TETHER_ADMIN_LISTEN, else http://127.0.0.1:9090)")
	fs.StringVar(&o.token, "token", "", "admin bearer token (default: TETHER_ADMIN_TOKEN)")
	fs.StringVar(&o.pool, "pool", "", "the replica's pool, when its name is in several")
	fs.Var(&o.wait, "wait", "wait until no node holds a live binding to the replica: --wait (at most 1h) or --wait=DURATION (at most 24h)")
	fs.DurationVar(&o.moveIdle, "move-idle", 0, "with --wait: move bindings idle longer than this to another replica (rebind, generation + 1), e.g. 2m")
	fs.Usage = func() {
		fmt.Fprint(w, "usage: tether drain [flags] REPLICA\n\nDrains REPLICA on every node: it takes no new clients, its bound clients stay.\n"+
			"Exit code 0 drained (with --wait: no live binding left), 1 bindings left at the deadline, 2 usage, 3 the admin API failed.\n\n")
		fs.PrintDefaults()
	}
	return fs, o
}

// adminURL turns TETHER_ADMIN_LISTEN into a URL to reach it locally.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://127.0.0.1:9090"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// drainMain is `tether drain`: POST /api/v1/backends/{name}/drain, with
// ?wait= and ?move_idle= when asked. It suits a Kubernetes preStop hook or
// a deploy script: the exit code says whether the replica is empty.
func drainMain(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) int {
	fs, o := drainFlags(stderr, environ)
	var rest []string
	for { // flags may come after the replica too
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return drainExitEmpty
			}
			return drainExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	if len(rest) != 1 || rest[0] == "" {
		fmt.Fprintln(stderr, "tether drain: name one replica")
		return drainExitUsage
	}
	if o.moveIdle < 0 || (o.moveIdle > 0 && o.wait.d == 0) {
		fmt.Fprintln(stderr, "tether drain: --move-idle needs --wait and a duration > 0")
		return drainExitUsage
	}
	if o.token == "" {
		o.token = environ["TETHER_ADMIN_TOKEN"]
	}
	u, err := url.Parse(strings.TrimRight(o.admin, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "tether drain: --admin %q: want http(s)://host:port\n", o.admin)
		return drainExitUsage
	}
	u.Path += "/api/v1/backends/" + url.PathEscape(rest[0]) + "/drain"
	q := url.Values{}
	if o.pool != "" {
		q.Set("pool", o.pool)
	}
	if o.wait.d > 0 {
		q.Set("wait", o.wait.d.String())
	}
	if o.moveIdle > 0 {
		q.Set("move_idle", o.moveIdle.String())
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		fmt.Fprintln(stderr, "tether drain:", err)
		return drainExitUsage
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	req.Header.Set("Accept", "application/json")
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: o.wait.d + drainHTTPOverhead}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "tether drain:", err)
		return drainExitFailed
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "tether drain: %s: %s\n", res.Status, strings.TrimSpace(string(body)))
		return drainExitFailed
	}
	if o.wait.d == 0 {
		fmt.Fprintf(stdout, "drained %s: it takes no new clients on any node; its bound clients stay\n", rest[0])
		return drainExitEmpty
	}
	var r web.DrainWaitResult
	if err := json.Unmarshal(body, &r); err != nil {
		fmt.Fprintln(stderr, "tether drain: the answer does not decode:", err)
		return drainExitFailed
	}
	waited := (time.Duration(r.WaitedMs) * time.Millisecond).String()
	if r.Empty {
		fmt.Fprintf(stdout, "drained %s: no node holds a live binding to it (%d nodes asked, waited %s, %d idle bindings moved)\n",
			r.Backend.Name, len(r.Nodes), waited, r.Moved)
		return drainExitEmpty
	}
	var per []string
	for _, n := range r.Nodes {
		per = append(per, fmt.Sprintf("%s %d", n.Node, n.Live))
	}
	fmt.Fprintf(stdout, "deadline: %s still has up to %d live bindings (%s; not answering: %v; waited %s, %d moved)\n",
		r.Backend.Name, r.Left, strings.Join(per, ", "), r.Missing, waited, r.Moved)
	return drainExitLeft
}

// LiveBindings (web.DrainWaiter) asks every node of the fleet over gossip.
func (b adminBackends) LiveBindings(ctx context.Context, pool, name string) (web.FleetLive, error) {
	fc, err := b.n.gossip.CountLive(ctx, name)
	if err != nil {
		return web.FleetLive{}, err
	}
	out := web.FleetLive{Missing: fc.Missing}
	for _, c := range fc.Nodes {
		out.Nodes = append(out.Nodes, web.NodeLive{Node: c.Node, Live: c.Live})
	}
	return out, nil
}

// MoveIdle (web.DrainWaiter) rebinds the bindings to pool/name that no
// node can have used for idle. A node announces a later expiry once its
// local one runs RefreshThreshold past the announced one, so nobody used a
// binding after announced - TTL + RefreshThreshold; this node's own last
// use is its local expiry - TTL. Each goes to the replica its next request
// would pick (proxy.Pick), through the gossip store (generation + 1,
// replicated at once).
func (b adminBackends) MoveIdle(pool, name string, idle time.Duration) (int, error) {
	n := b.n
	cfg := n.db.Config()
	now := n.now()
	cutoff := now.Add(-idle).UnixMilli()
	moved := 0
	var firstErr error
	q := stickydb.Query{Replica: name, Limit: 10_000}
	for pages := 0; pages <= n.db.Len()/q.Limit+1; pages++ {
		page, err := n.db.Find(q, now)
		if err != nil {
			return moved, err
		}
		for _, row := range page.Rows {
			lastUse := max(row.Binding.Expiry-cfg.TTL.Milliseconds()+cfg.RefreshThreshold.Milliseconds(),
				row.LocalExpiry-cfg.TTL.Milliseconds())
			if lastUse > cutoff {
				continue
			}
			p, to := n.proxy.Pick(row.Key)
			if p != pool || to == "" || to == name {
				continue
			}
			if _, changed, err := n.gossip.Store().Rebind(row.Key, name, to, now); err != nil {
				if firstErr == nil {
					firstErr = err
				}
			} else if changed {
				moved++
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if moved > 0 {
		n.log.Info().Str("pool", pool).Str("replica", name).Int("moved", moved).Str("idle", idle.String()).Msg("drain: idle bindings moved")
	}
	return moved, firstErr
}
