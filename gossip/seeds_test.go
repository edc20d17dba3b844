package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/faultnet"
	"github.com/tetherproxy/tether/stickydb"
	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a tiny authoritative server on loopback: A records for one
// name, switchable while the test runs (a headless Service whose pods come
// and go).
type dnsServer struct {
	pc   net.PacketConn
	name dnsmessage.Name

	mu      sync.Mutex
	addrs   []netip.Addr
	queries int
}

func startDNS(t *testing.T, name string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc, name: dnsmessage.MustNewName(name)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, ok := s.answer(buf[:n]); ok {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return s
}

func (s *dnsServer) set(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = s.addrs[:0]
	for _, a := range addrs {
		s.addrs = append(s.addrs, netip.MustParseAddr(a))
	}
}

func (s *dnsServer) answer(req []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if q.Name != s.name {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	if q.Name == s.name && q.Type == dnsmessage.TypeA {
		for _, a := range s.addrs {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0},
				dnsmessage.AResource{A: a.As4()})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// resolver sends every lookup to s.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.pc.LocalAddr().String())
	}}
}

// TETHER_JOIN=fleet.test:PORT, as in a StatefulSet behind a headless
// Service: a node that resolves the name to itself only is a ready fleet
// of one; two such nodes find each other once the name resolves to both
// (re-resolved while they have no peers); a third joins every address the
// name resolves to.
func TestJoinDNSName(t *testing.T) {
	dns := startDNS(t, "fleet.test.")
	// Every node on its own loopback address, all on one port: a DNS
	// name gives addresses, the port comes from the seed.
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	probe, err := net.Listen("tcp", ips[0]+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(probe.Addr().(*net.TCPAddr).Port)
	probe.Close()
	start := func(i int) *Node {
		t.Helper()
		db, err := stickydb.New(stickydb.DefaultConfig(nodeName(i)), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t)
		cfg.BindAddr = net.JoinHostPort(ips[i], port)
		cfg.Join = []string{"fleet.test:" + port}
		cfg.Resolver = dns.resolver()
		n, err := New(cfg, db)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatalf("cannot bind %s: %v", cfg.BindAddr, err)
		}
		t.Cleanup(func() { _ = n.Close() })
		return n
	}
	members := func(n *Node) int { return n.ml.NumMembers() }

	dns.set(ips[0])
	a := start(0)
	ctxWait(t, a, 10*time.Second)
	if !a.seedsSelf.Load() {
		t.Fatal("a is ready but not as a fleet of one")
	}
	dns.set(ips[1]) // b starts while the name shows only b
	b := start(1)
	ctxWait(t, b, 10*time.Second)
	if members(a) != 1 || members(b) != 1 {
		t.Fatalf("members %d, %d before the name shows both", members(a), members(b))
	}
	dns.set(ips...)
	eventually(t, 15*time.Second, func() bool { return members(a) == 2 && members(b) == 2 },
		func() string { return "a and b did not find each other by resolving again" })
	c := start(2)
	ctxWait(t, c, 15*time.Second)
	eventually(t, 15*time.Second, func() bool { return members(a) == 3 && members(b) == 3 && members(c) == 3 },
		func() string { return "c did not join the fleet the name resolves to" })
	if c.seedsSelf.Load() {
		t.Fatal("c took itself for alone")
	}
}

// resolveSeeds: names expanded to every address, this node's own left
// out, addresses kept as given, failures reported.
func TestResolveSeeds(t *testing.T) {
	dns := startDNS(t, "fleet.test.")
	dns.set("127.0.0.1", "127.0.0.2", "127.0.0.3")
	n := unstartedNode(t, "me")
	n.addr = "127.0.0.1:7946"
	n.cfg.Resolver = dns.resolver()
	n.cfg.Join = []string{"fleet.test:7946", "10.0.0.9:7946", "127.0.0.2:7946"}
	got, err := n.resolveSeeds()
	want := []string{"127.0.0.2:7946", "127.0.0.3:7946", "10.0.0.9:7946"}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	n.cfg.Join = []string{"missing.test:7946"}
	if got, err := n.resolveSeeds(); err == nil || len(got) != 0 {
		t.Fatalf("unknown name: %v %v", got, err)
	}
}

// TestMissingSeedsRaceFree: a node that is not ready counts its missing
// seeds on every tick while peers come and go. memberlist's Members
// returns its own node records, which its packet handler rewrites when a
// peer refutes a suspicion; counting from them was a data race (a CI
// failure of the chaos suite). Under -race this fails if missingSeeds
// reads memberlist's nodes again.
func TestMissingSeedsRaceFree(t *testing.T) {
	fn := faultnet.New(7)
	c := startCluster(t, 4, clusterOpts{faults: fn, node: func(i int, cfg *Config) {
		if i == 4 { // never ready: it keeps asking missingSeeds
			cfg.Reconcile = func() error { return errors.New("test: reconcile refused") }
		}
	}})
	n := c.add(4)
	c.waitMembers(4, 20*time.Second)
	for range 6 {
		fn.Isolate("n1")
		time.Sleep(700 * time.Millisecond)
		fn.Reset()
		time.Sleep(300 * time.Millisecond)
	}
	if n.Ready() {
		t.Fatal("the node whose reconcile fails is ready")
	}
	eventually(t, 20*time.Second, func() bool { return n.missingSeeds() == 0 },
		func() string { return fmt.Sprintf("%d seeds missing after the heal", n.missingSeeds()) })
}
