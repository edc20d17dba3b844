package main

import (
	"bufio"
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/tetherproxy/tether/internal/testcert"
)

//go:embed haproxy.cfg.tmpl
var haproxyTemplate string

// setup is one row of the table: where the load goes, and which processes
// do the proxying (their CPU is what the row costs).
type setup struct {
	key     string // direct, tether-1, tether-3, haproxy-1, haproxy-2
	label   string
	targets []string
	procs   []*proc
	sockets []string // HAProxy stats sockets, to read the stick table back
	err     error    // not runnable, and why
	notes   []string
	tls     *tls.Config // the load's client config for an HTTPS row; nil for plain HTTP
	short   bool        // a new TCP connection per request (shortRow)
}

// Row keys, in table order.
var allRows = []string{"direct", "tether-1", "tether-3", "haproxy-1", "haproxy-2", tlsRow("tether-1"), tlsRow(tlsRef),
	shortRow("tether-1"), shortRow(tlsRef)}

// shortRow is the many-short-connections variant of a row: the same
// proxy, every request on a new TCP connection (accept, the handshake and
// the close dominate). Its ratios are taken against tlsRef's short row.
func shortRow(key string) string { return key + "-short" }

// tlsRow is the HTTPS variant of a row: the same proxy with a TLS listener
// (HTTP/1.1, one certificate, ECDSA P-256), the load over HTTPS. Its
// ratios are taken against tlsRef's HTTPS row.
func tlsRow(key string) string { return key + "-tls" }

// tlsRef is the HAProxy row the HTTPS rows are compared with.
const tlsRef = "haproxy-1"

// baseRow is the optional row of a second tether binary (-tether-base),
// one node, run beside the others: a before/after comparison in one run;
// tlsRow(baseRow) and shortRow(baseRow) are its HTTPS and
// new-connection rows, run when the rows have tether's.
const baseRow = "tether-1-base"

// lab holds what every setup shares.
type lab struct {
	dir      string
	o        options
	backends []backend
	started  []*proc // every child, for the final stop
	certs    *certs  // made for the first HTTPS row
}

// certs is the HTTPS rows' certificate for the benchmark's Host, from a
// throwaway CA the load trusts.
type certs struct {
	cert, key, pem string // PEM files: chain, key, and both (HAProxy's crt)
	client         *tls.Config
}

func (l *lab) tlsCerts() (*certs, error) {
	if l.certs != nil {
		return l.certs, nil
	}
	ca, err := testcert.NewCA()
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue([]string{l.o.host}, time.Now().Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	c := &certs{cert: filepath.Join(l.dir, "bench.pem"), key: filepath.Join(l.dir, "bench.key"), pem: filepath.Join(l.dir, "bench-haproxy.pem"),
		client: &tls.Config{RootCAs: ca.Pool, ServerName: l.o.host}}
	for _, f := range []struct {
		path string
		data []byte
	}{{c.cert, certPEM}, {c.key, keyPEM}, {c.pem, append(append([]byte{}, certPEM...), keyPEM...)}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	l.certs = c
	return c, nil
}

func (l *lab) start(name string, env []string, path string, args ...string) (*proc, error) {
	p, err := startProc(l.dir, name, env, path, args...)
	if err == nil {
		l.started = append(l.started, p)
	}
	return p, err
}

func (l *lab) stopAll() {
	for i := len(l.started) - 1; i >= 0; i-- {
		l.started[i].stop(5 * time.Second)
	}
}

// newSetup starts the processes of row key.
func (l *lab) newSetup(ctx context.Context, key string) *setup {
	switch key {
	case "direct":
		return &setup{key: key, label: "direct (one backend, no proxy)", targets: []string{l.backends[0].addr}}
	case "tether-1":
		return l.tether(ctx, key, 1, l.o.tether)
	case tlsRow("tether-1"):
		s := l.tether(ctx, key, 1, l.o.tether)
		s.label = "tether, 1 node, HTTPS"
		return s
	case tlsRow(tlsRef):
		s := l.haproxy(ctx, key, 1)
		s.label = "HAProxy, 1 process, HTTPS"
		return s
	case shortRow("tether-1"):
		s := l.tether(ctx, key, 1, l.o.tether)
		s.label, s.short = "tether, 1 node, new connection per request", true
		return s
	case shortRow(tlsRef):
		s := l.haproxy(ctx, key, 1)
		s.label, s.short = "HAProxy, 1 process, new connection per request", true
		return s
	case "tether-3":
		return l.tether(ctx, key, 3, l.o.tether)
	case baseRow:
		s := l.tether(ctx, key, 1, l.o.tetherBase)
		s.label = "tether, 1 node, baseline (" + filepath.Base(l.o.tetherBase) + ")"
		return s
	case tlsRow(baseRow):
		s := l.tether(ctx, key, 1, l.o.tetherBase)
		s.label = "tether, 1 node, HTTPS, baseline (" + filepath.Base(l.o.tetherBase) + ")"
		return s
	case shortRow(baseRow):
		s := l.tether(ctx, key, 1, l.o.tetherBase)
		s.label, s.short = "tether, 1 node, new connection per request, baseline ("+filepath.Base(l.o.tetherBase)+")", true
		return s
	case "haproxy-1":
		return l.haproxy(ctx, key, 1)
	case "haproxy-2":
		return l.haproxy(ctx, key, 2)
	}
	return &setup{key: key, label: key, err: fmt.Errorf("unknown row %q (rows: %s)", key, strings.Join(allRows, ","))}
}

// tether starts n `tether serve` nodes with the environment of the
// external contract, joined into one fleet, and waits until each proxies.
func (l *lab) tether(ctx context.Context, key string, n int, bin string) *setup {
	s := &setup{key: key, label: fmt.Sprintf("tether, %d node(s)", n)}
	if n > 1 {
		s.label = fmt.Sprintf("tether, %d-node fleet", n)
	} else {
		s.label = "tether, 1 node"
	}
	if _, err := os.Stat(bin); err != nil {
		s.err = fmt.Errorf("tether not runnable: %v (run `make build`)", err)
		return s
	}
	var ct *certs
	if strings.HasSuffix(key, "-tls") {
		var err error
		if ct, err = l.tlsCerts(); err != nil {
			s.err = err
			return s
		}
		s.tls = ct.client
	}
	ports, err := freePorts(4 * n)
	if err != nil {
		s.err = err
		return s
	}
	var pool []string
	for _, b := range l.backends {
		pool = append(pool, b.name+"="+b.url)
	}
	var names, admins []string
	for i := range n {
		name := fmt.Sprintf("bench-%s-n%d", key, i+1)
		listen, admin, gossip, tlsListen := ports[4*i], ports[4*i+1], ports[4*i+2], ports[4*i+3]
		env := []string{
			"TETHER_NODE_NAME=" + name,
			"TETHER_LISTEN=" + listen,
			"TETHER_ADMIN_LISTEN=" + admin,
			"TETHER_BACKENDS=" + strings.Join(pool, ","),
			"TETHER_GOSSIP_BIND=" + gossip,
			"TETHER_LOG_LEVEL=warn",
		}
		if i > 0 {
			env = append(env, "TETHER_JOIN="+ports[2])
		}
		target := listen
		if ct != nil {
			env = append(env, "TETHER_TLS_LISTEN="+tlsListen, "TETHER_TLS_CERT="+ct.cert, "TETHER_TLS_KEY="+ct.key)
			target = tlsListen
		}
		p, err := l.start(name, env, bin, "serve")
		if err != nil {
			s.err = fmt.Errorf("tether not runnable: %v", err)
			return s
		}
		s.procs = append(s.procs, p)
		s.targets = append(s.targets, target)
		names, admins = append(names, name), append(admins, admin)
	}
	for i, p := range s.procs {
		if err := waitServing(ctx, p, s.targets[i], l.o.host, s.tls, l.o.readyTimeout); err != nil {
			if log, _ := os.ReadFile(p.log); strings.Contains(string(log), `unknown command "serve"`) {
				err = fmt.Errorf("%s has no `serve` command yet", bin)
			}
			s.err = fmt.Errorf("tether not runnable: %v", err)
			return s
		}
	}
	// Best effort: the admin API may not exist yet in a build under test;
	// the rows run anyway, with a note.
	if err := waitReadyz(ctx, admins, 10*time.Second); err != nil {
		s.notes = append(s.notes, "admin API not reached, readiness by proxying only: "+err.Error())
	} else if n > 1 {
		if err := waitMembers(ctx, admins, names, 15*time.Second); err != nil {
			s.notes = append(s.notes, "fleet membership not confirmed: "+err.Error())
		}
	}
	return s
}

// waitReadyz polls every node's /readyz (joined and caught up) until all
// answer 200.
func waitReadyz(ctx context.Context, admins []string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	for _, a := range admins {
		for {
			_, err := get(ctx, hc, "http://"+a+"/readyz")
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// waitMembers polls every node's /api/v1/members until each lists every
// node name.
func waitMembers(ctx context.Context, admins, names []string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		last = nil
		for _, a := range admins {
			body, err := get(ctx, hc, "http://"+a+"/api/v1/members")
			if err == nil {
				for _, n := range names {
					if !strings.Contains(body, n) {
						err = fmt.Errorf("%s does not list %s yet", a, n)
						break
					}
				}
			}
			if err != nil {
				last = err
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

func get(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

type haproxyPeer struct{ Name, Addr string }

type haproxyConfig struct {
	Listen, Socket string
	Cert           string // HTTPS: the PEM with chain and key; "" for plain HTTP
	Peers          []haproxyPeer
	Servers        []haproxyPeer
}

// haproxy starts n HAProxy processes that share one stick table through a
// peers section (bench/e2e/haproxy.cfg.tmpl).
func (l *lab) haproxy(ctx context.Context, key string, n int) *setup {
	s := &setup{key: key, label: "HAProxy, 1 process"}
	if n > 1 {
		s.label = fmt.Sprintf("HAProxy, %d processes (peers)", n)
	}
	bin, err := exec.LookPath(l.o.haproxy)
	if err != nil {
		s.err = fmt.Errorf("haproxy not runnable: %v (apt-get install -y haproxy)", err)
		return s
	}
	tmpl, err := template.New("haproxy").Parse(haproxyTemplate)
	if err != nil {
		s.err = err
		return s
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		s.err = err
		return s
	}
	cfg := haproxyConfig{}
	if strings.HasSuffix(key, "-tls") {
		ct, err := l.tlsCerts()
		if err != nil {
			s.err = err
			return s
		}
		cfg.Cert, s.tls = ct.pem, ct.client
	}
	for i := range n {
		cfg.Peers = append(cfg.Peers, haproxyPeer{fmt.Sprintf("%s-p%d", key, i+1), ports[2*i+1]})
	}
	for _, b := range l.backends {
		cfg.Servers = append(cfg.Servers, haproxyPeer{b.name, b.addr})
	}
	for i, peer := range cfg.Peers {
		cfg.Listen = ports[2*i]
		cfg.Socket = filepath.Join(l.dir, peer.Name+".sock")
		path := filepath.Join(l.dir, peer.Name+".cfg")
		f, err := os.Create(path)
		if err == nil {
			err = errors.Join(tmpl.Execute(f, cfg), f.Close())
		}
		if err == nil {
			if out, cerr := exec.CommandContext(ctx, bin, "-c", "-q", "-f", path, "-L", peer.Name).CombinedOutput(); cerr != nil {
				err = fmt.Errorf("haproxy -c %s: %v: %s", path, cerr, out)
			}
		}
		var p *proc
		if err == nil {
			p, err = l.start(peer.Name, nil, bin, "-db", "-f", path, "-L", peer.Name)
		}
		if err != nil {
			s.err = fmt.Errorf("haproxy not runnable: %v", err)
			return s
		}
		s.procs = append(s.procs, p)
		s.targets = append(s.targets, cfg.Listen)
		s.sockets = append(s.sockets, cfg.Socket)
	}
	for i, p := range s.procs {
		if err := waitServing(ctx, p, s.targets[i], l.o.host, s.tls, l.o.readyTimeout); err != nil {
			s.err = fmt.Errorf("haproxy not runnable: %v", err)
			return s
		}
	}
	return s
}

var tableUsed = regexp.MustCompile(`used:(\d+)`)

// stickEntries asks an HAProxy stats socket how many entries its stick
// table holds.
func stickEntries(socket string) (int, error) {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show table be\n"); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	m := tableUsed.FindStringSubmatch(line)
	if m == nil {
		return 0, fmt.Errorf("show table: %q %v", line, err)
	}
	return strconv.Atoi(m[1])
}

// stickNote reports the stick-table size of each HAProxy process; with
// peers it waits (3 s at most) for the tables to agree, since replication
// is asynchronous.
func stickNote(ctx context.Context, sockets []string) string {
	deadline := time.Now().Add(3 * time.Second)
	for {
		var counts []string
		agree, failed := true, false
		first := -1
		for i, sock := range sockets {
			n, err := stickEntries(sock)
			if err != nil {
				counts = append(counts, fmt.Sprintf("process %d unreadable (%v)", i+1, err))
				failed = true
				continue
			}
			if first < 0 {
				first = n
			}
			agree = agree && n == first
			counts = append(counts, fmt.Sprintf("process %d: %d entries", i+1, n))
		}
		note := "stick table " + strings.Join(counts, ", ")
		if failed || agree || time.Now().After(deadline) || ctx.Err() != nil {
			if len(sockets) > 1 && !agree {
				note += " (peers disagree)"
			}
			return note
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
