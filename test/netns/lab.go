package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace this package makes; a
// namespace named Prefix<pid>-... whose pid is no longer running is a
// leftover of a run that died, and New removes it.
const Prefix = "tns14-"

// Subnet is the private network on a lab's bridge. Each lab has its own
// bridge in its own switch namespace, so two labs (two test binaries at
// once) never see each other's addresses, and nothing is routed to the
// machine's own interfaces.
var Subnet = netip.MustParsePrefix("10.214.0.0/16")

// Lab is one private network: a switch namespace holding a bridge, and one
// namespace per host, joined to the bridge by a veth pair. Host i has
// 10.214.i.1 (and extra addresses 10.214.i.2... when asked).
type Lab struct {
	tb     testing.TB
	prefix string // Prefix + pid + "-"
	sw     string // the switch namespace

	mu    sync.Mutex
	hosts []*Host
}

// Host is one namespace on the lab's bridge.
type Host struct {
	Name  string     // short name, e.g. "node0"
	NS    string     // namespace name
	Addr  netip.Addr // its first address
	Extra []netip.Addr
	lab   *Lab
	port  string // the veth end on the bridge, in the switch namespace
}

// Available says why network namespaces cannot be made here, or nil.
func Available() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netns: the ip command (iproute2) is missing: %w", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: making network namespaces needs root")
	}
	name := fmt.Sprintf("%sprobe%d", Prefix, os.Getpid())
	if out, err := ipCmd("netns", "add", name); err != nil {
		return fmt.Errorf("netns: ip netns add failed: %v: %s", err, out)
	}
	if out, err := ipCmd("netns", "del", name); err != nil {
		return fmt.Errorf("netns: ip netns del failed: %v: %s", err, out)
	}
	return nil
}

// New makes a lab, after removing the leftovers of dead runs; tb.Cleanup
// removes everything it made, whatever happened. It fails tb with a clear
// message when namespaces cannot be made.
func New(tb testing.TB) *Lab {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Fatalf("network namespaces are needed for this test and cannot be made here: %v", err)
	}
	RemoveLeftovers()
	l := &Lab{tb: tb, prefix: fmt.Sprintf("%s%d-", Prefix, os.Getpid())}
	l.sw = l.prefix + "sw"
	// A previous lab of this same process (another test) may share the
	// prefix: give each lab its own.
	for i := 0; nsExists(l.sw); i++ {
		l.prefix = fmt.Sprintf("%s%d-%d-", Prefix, os.Getpid(), i)
		l.sw = l.prefix + "sw"
	}
	tb.Cleanup(l.Close)
	l.must("netns", "add", l.sw)
	l.must("-n", l.sw, "link", "add", "br0", "type", "bridge")
	l.must("-n", l.sw, "link", "set", "br0", "up")
	return l
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// RemoveLeftovers deletes the namespaces of runs whose process is gone,
// ending the processes still inside them (by pid: they can only be ours).
func RemoveLeftovers() {
	out, err := ipCmd("netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, Prefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			continue // a live run's
		}
		if err == nil && pid == os.Getpid() {
			continue // ours: the lab's Close removes them
		}
		removeNS(name)
	}
}

// removeNS ends the processes in a namespace and deletes it (its veth ends
// go with it, and so does the far end of each pair).
func removeNS(name string) {
	if out, err := ipCmd("netns", "pids", name); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for i := 0; i < 20; i++ {
		if _, err := ipCmd("netns", "del", name); err == nil || !nsExists(name) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close removes every namespace of the lab.
func (l *Lab) Close() {
	l.mu.Lock()
	hosts := l.hosts
	l.hosts = nil
	l.mu.Unlock()
	for _, h := range hosts {
		removeNS(h.NS)
	}
	removeNS(l.sw)
	// Whatever else carries our prefix (a host whose creation failed half way).
	out, _ := ipCmd("netns", "list")
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, l.prefix) {
			removeNS(name)
		}
	}
}

// Leftovers lists the namespaces of this lab that still exist (a test's
// check that Close removed everything).
func (l *Lab) Leftovers() []string {
	out, _ := ipCmd("netns", "list")
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, l.prefix) {
			left = append(left, name)
		}
	}
	return left
}

// AddHost makes a namespace on the bridge with address 10.214.i.1 and
// extra more addresses (10.214.i.2 and up, at most 253), loopback up.
// Hosts are added one at a time.
//
// The extra addresses are not on the bridge's link: each is a /32 of the
// host, and every other host routes 10.214.i.0/24 through 10.214.i.1. So
// a peer holds one neighbour (ARP) entry for the host however many source
// addresses it dials from. On the link, 250 client addresses times 25
// nodes overflowed the kernel's neighbour table, which is one table for
// every namespace (gc_thresh3, 1,024 by default): "neighbor table
// overflow", and the nodes' answers to some clients were lost.
func (l *Lab) AddHost(name string, extra int) *Host {
	l.tb.Helper()
	if extra > 253 {
		l.tb.Fatalf("netns: %d extra addresses: at most 253 per host", extra)
	}
	l.mu.Lock()
	idx := len(l.hosts) + 1
	h := &Host{Name: name, NS: l.prefix + name, lab: l, port: fmt.Sprintf("p%d", idx),
		Addr: netip.AddrFrom4([4]byte{10, 214, byte(idx), 1})}
	others := slices.Clone(l.hosts)
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if idx > 250 {
		l.tb.Fatal("netns: at most 250 hosts per lab")
	}
	l.must("netns", "add", h.NS)
	l.must("-n", l.sw, "link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	l.must("-n", l.sw, "link", "set", h.port, "master", "br0", "up")
	var batch bytes.Buffer
	fmt.Fprintf(&batch, "addr add %s/16 dev eth0\n", h.Addr)
	for i := 0; i < extra; i++ {
		a := netip.AddrFrom4([4]byte{10, 214, byte(idx), byte(2 + i)})
		h.Extra = append(h.Extra, a)
		fmt.Fprintf(&batch, "addr add %s/32 dev eth0\n", a)
	}
	batch.WriteString("link set eth0 up\nlink set lo up\n")
	for _, o := range others {
		if len(o.Extra) > 0 {
			batch.WriteString(o.extraRoute())
		}
	}
	l.ipBatch(h.NS, &batch)
	if extra > 0 {
		for _, o := range others {
			l.ipBatch(o.NS, strings.NewReader(h.extraRoute()))
		}
	}
	return h
}

// extraRoute is the route other hosts take to h's extra addresses.
func (h *Host) extraRoute() string {
	a := h.Addr.As4()
	return fmt.Sprintf("route add 10.214.%d.0/24 via %s dev eth0 onlink\n", a[2], h.Addr)
}

// ipBatch runs ip's commands in namespace ns.
func (l *Lab) ipBatch(ns string, cmds io.Reader) {
	l.tb.Helper()
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = cmds
	if out, err := cmd.CombinedOutput(); err != nil {
		l.tb.Fatalf("netns: configuring %s: %v: %s", ns, err, out)
	}
}

func (l *Lab) must(args ...string) {
	l.tb.Helper()
	if out, err := ipCmd(args...); err != nil {
		l.tb.Fatalf("netns: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func ipCmd(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "ip", args...).CombinedOutput()
}

// LinkDown takes the host's port on the bridge down, as if its cable were
// pulled at the switch: its packets are lost silently (no refusal), both
// ways; processes in the host keep running and still reach each other.
func (h *Host) LinkDown() { h.lab.must("-n", h.lab.sw, "link", "set", h.port, "down") }

// LinkUp puts the cable back.
func (h *Host) LinkUp() { h.lab.must("-n", h.lab.sw, "link", "set", h.port, "up") }

// Limit shapes the host's link to rate (tc syntax, e.g. "10mbit") in both
// directions with a token bucket (tbf); "" removes the limit.
func (h *Host) Limit(rate string) {
	for _, side := range [][]string{{"-n", h.NS, "dev", "eth0"}, {"-n", h.lab.sw, "dev", h.port}} {
		args := []string{"-n", side[1], "qdisc", "del", "dev", side[3], "root"}
		if rate != "" {
			args = []string{"-n", side[1], "qdisc", "replace", "dev", side[3], "root", "tbf",
				"rate", rate, "burst", "64kb", "latency", "100ms"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, "tc", args...).CombinedOutput()
		cancel()
		if err != nil && rate != "" {
			h.lab.tb.Fatalf("netns: tc %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// Command returns a command that runs in the host's namespace (ip netns
// exec replaces itself with the program: the pid is the program's).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Do runs fn on an OS thread that is in the host's namespace: sockets
// created by fn (net.Listen, a dial) belong to the namespace for their
// whole life, wherever they are used later. fn runs on a goroutine of its
// own whose thread is locked; fn must not start goroutines that create
// sockets (they would run on other threads, in our namespace).
func (h *Host) Do(fn func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- h.do(fn) }()
	return <-ch
}

func (h *Host) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(filepath.Join("/run/netns", h.NS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: setns %s: %w", h.NS, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked: it ends with this goroutine and never
		// runs another goroutine in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("netns: setns back: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Listen opens a TCP listener in the host's namespace.
func (h *Host) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return })
	return ln, err
}

// Dialer returns a DialContext that connects from the host's namespace,
// from source address src (zero: the kernel's choice).
func (h *Host) Dialer(src netip.Addr, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = h.Do(func() (err error) { c, err = d.DialContext(ctx, network, addr); return })
		return c, err
	}
}
