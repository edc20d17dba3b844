package proxy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/stickydb"
)

// 1,000 clients with distinct source addresses each get the same replica
// on every request, and the replicas share them about evenly.
func TestThousandClientsSticky(t *testing.T) {
	bs := startBackends(t, "a", "b", "c")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b", "c")}}, nil)
	const clients, rounds = 1000, 3
	got := make([]string, clients)
	var mu sync.Mutex
	var failures []string
	parallel(clients, 16, func(i int) {
		c := clientFrom(t, clientIP(i))
		for round := 0; round < rounds; round++ {
			code, be, _ := r.get(c, "shop.example", "/")
			mu.Lock()
			switch {
			case code != http.StatusOK:
				failures = append(failures, clientIP(i)+": status "+http.StatusText(code))
			case got[i] == "":
				got[i] = be
			case got[i] != be:
				failures = append(failures, clientIP(i)+": "+got[i]+" then "+be)
			}
			mu.Unlock()
		}
		c.CloseIdleConnections()
	})
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	count := map[string]int{}
	for i, be := range got {
		count[be]++
		if b := r.binding(clientIP(i), "shop.example"); b.Replica != be || b.Generation == 0 {
			t.Fatalf("client %d served by %s, binding %+v", i, be, b)
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		if count[n] < 250 || count[n] > 420 {
			t.Errorf("replica %s has %d of %d clients; want about a third", n, count[n], clients)
		}
	}
	if hits := bs["a"].Hits() + bs["b"].Hits() + bs["c"].Hits(); hits != clients*rounds {
		t.Errorf("replicas served %d requests, want %d", hits, clients*rounds)
	}
}

// A replica dies: only its clients move, each exactly once (generation 2);
// the others stay. It comes back: nobody moves back.
func TestBackendDiesAndReturns(t *testing.T) {
	bs := startBackends(t, "a", "b", "c")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b", "c")}}, nil)
	const clients = 300
	cs := make([]*http.Client, clients)
	first := make([]string, clients)
	parallel(clients, 16, func(i int) {
		cs[i] = clientFrom(t, clientIP(i))
		code, be, _ := r.get(cs[i], "app.example", "/")
		if code != http.StatusOK {
			t.Errorf("client %d: status %d", i, code)
		}
		first[i] = be
	})
	onB := 0
	for _, be := range first {
		if be == "b" {
			onB++
		}
	}
	if onB == 0 {
		t.Fatal("no client on b; the test proves nothing")
	}
	firstGen := make([]uint32, clients)
	for i := range cs {
		firstGen[i] = r.binding(clientIP(i), "app.example").Generation
	}

	addr := bs["b"].Addr()
	if err := bs["b"].Close(); err != nil { // a crash: connections drop
		t.Fatal(err)
	}
	// Every client sends several requests; b's clients move on the first.
	second := make([]string, clients)
	parallel(clients, 16, func(i int) {
		for round := 0; round < 3; round++ {
			code, be, _ := r.get(cs[i], "app.example", "/")
			if code != http.StatusOK {
				t.Errorf("client %d round %d: status %d", i, round, code)
				return
			}
			if round == 0 {
				second[i] = be
			} else if be != second[i] {
				t.Errorf("client %d moved again: %s then %s", i, second[i], be)
			}
		}
	})
	for i := range cs {
		b := r.binding(clientIP(i), "app.example")
		if first[i] == "b" {
			if second[i] == "b" || b.Generation <= firstGen[i] || b.Replica != second[i] {
				t.Fatalf("client %d of b: now %s, binding %+v; want moved once (a generation after %d)", i, second[i], b, firstGen[i])
			}
		} else if second[i] != first[i] || b.Generation != firstGen[i] {
			t.Fatalf("client %d of %s moved to %s (binding %+v)", i, first[i], second[i], b)
		}
	}
	if s := r.status(DefaultPool, "b"); s.Healthy {
		t.Fatalf("b still healthy: %+v", s)
	}

	// b comes back on the same address.
	var back *demobackend.Running
	waitFor(t, "b to listen again", 5*time.Second, func() bool {
		var err error
		back, err = demobackend.Start("b", addr)
		return err == nil
	})
	defer back.Close()
	waitFor(t, "b healthy again", 5*time.Second, func() bool { return r.status(DefaultPool, "b").Healthy })
	parallel(clients, 16, func(i int) {
		code, be, _ := r.get(cs[i], "app.example", "/")
		if code != http.StatusOK || be != second[i] {
			t.Errorf("client %d after b returned: %d from %s, want %s", i, code, be, second[i])
		}
	})
	if back.Hits() != 0 {
		t.Fatalf("b got %d requests after it came back; nobody should move back", back.Hits())
	}
}

// A replica added by reload takes new clients only: no existing client
// moves (a pure hashing proxy would move about a quarter of them).
func TestReloadAddBackendNobodyMoves(t *testing.T) {
	bs := startBackends(t, "a", "b", "c", "d")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b", "c")}}, nil)
	const clients = 300
	first := make([]string, clients)
	parallel(clients, 16, func(i int) {
		_, first[i], _ = r.get(clientFrom(t, clientIP(i)), "app.example", "/")
	})
	if err := r.p.Reload(Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b", "c", "d")}}); err != nil {
		t.Fatal(err)
	}
	parallel(clients, 16, func(i int) {
		if _, be, _ := r.get(clientFrom(t, clientIP(i)), "app.example", "/"); be != first[i] {
			t.Errorf("client %d moved from %s to %s after the reload", i, first[i], be)
		}
	})
	// New clients do reach d, so the reload took effect.
	newOnD := 0
	var mu sync.Mutex
	parallel(clients, 16, func(i int) {
		if _, be, _ := r.get(clientFrom(t, clientIP(clients+i)), "app.example", "/"); be == "d" {
			mu.Lock()
			newOnD++
			mu.Unlock()
		}
	})
	if newOnD < clients/8 {
		t.Fatalf("only %d of %d new clients went to the added replica d", newOnD, clients)
	}
	// A replica removed by reload: its clients move, the others stay.
	if err := r.p.Reload(Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b", "d")}}); err != nil {
		t.Fatal(err)
	}
	parallel(clients, 16, func(i int) {
		_, be, _ := r.get(clientFrom(t, clientIP(i)), "app.example", "/")
		if (first[i] == "c") == (be == first[i]) {
			t.Errorf("client %d of %s now on %s after c was removed", i, first[i], be)
		}
	})
}

// An invalid reload is refused whole; the old routes stay in force.
func TestReloadInvalidKeepsOld(t *testing.T) {
	bs := startBackends(t, "a")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a")}}, nil)
	bad := Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "a")}}
	if err := r.p.Reload(bad); err == nil {
		t.Fatal("reload with a duplicate backend accepted")
	}
	if code, be, _ := r.get(clientFrom(t, "127.0.0.1"), "x.example", "/"); code != 200 || be != "a" {
		t.Fatalf("after a refused reload: %d from %q", code, be)
	}
}

// Two Hosts from one client bind independently, each in its own pool.
func TestTwoHostsBindIndependently(t *testing.T) {
	bs := startBackends(t, "s1", "s2", "b1", "b2")
	r := newRig(t, Routes{Pools: []Pool{
		poolOf(t, "shop", []string{"shop.example"}, bs, "s1", "s2"),
		poolOf(t, "blog", []string{"blog.example"}, bs, "b1", "b2"),
	}}, nil)
	c := clientFrom(t, "127.0.0.9")
	_, shop, _ := r.get(c, "Shop.Example:8080", "/")
	_, blog, _ := r.get(c, "blog.example", "/")
	if shop[0] != 's' || blog[0] != 'b' {
		t.Fatalf("shop on %s, blog on %s", shop, blog)
	}
	if r.binding("127.0.0.9", "shop.example").Replica != shop || r.binding("127.0.0.9", "blog.example").Replica != blog {
		t.Fatal("bindings do not match the replicas that served")
	}
	// Moving one Host's binding leaves the other alone.
	other := map[string]string{"s1": "s2", "s2": "s1"}[shop]
	if err := r.p.SetDrain("shop", shop, true); err != nil {
		t.Fatal(err)
	}
	bs[shop].SetHealthy(false)
	waitFor(t, shop+" down", 5*time.Second, func() bool { return !r.status("shop", shop).Healthy })
	if _, got, _ := r.get(c, "shop.example", "/"); got != other {
		t.Fatalf("shop moved to %s, want %s", got, other)
	}
	if _, got, _ := r.get(c, "blog.example", "/"); got != blog {
		t.Fatalf("blog moved from %s to %s", blog, got)
	}
	if code, _, body := r.get(c, "nowhere.example", "/"); code != http.StatusNotFound || body != "tether: no route for this Host\n" {
		t.Fatalf("unknown host: %d %q", code, body)
	}
}

// A draining replica keeps its clients and gets no new ones.
func TestDrain(t *testing.T) {
	bs := startBackends(t, "a", "b")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b")}}, nil)
	const clients = 200
	first := make([]string, clients)
	parallel(clients, 16, func(i int) { _, first[i], _ = r.get(clientFrom(t, clientIP(i)), "d.example", "/") })
	if err := r.p.SetDrain(DefaultPool, "a", true); err != nil {
		t.Fatal(err)
	}
	if err := r.p.SetDrain(DefaultPool, "zz", true); err == nil {
		t.Fatal("SetDrain of an unknown backend accepted")
	}
	parallel(clients, 16, func(i int) {
		if _, be, _ := r.get(clientFrom(t, clientIP(i)), "d.example", "/"); be != first[i] {
			t.Errorf("client %d moved from %s to %s on drain", i, first[i], be)
		}
		if _, be, _ := r.get(clientFrom(t, clientIP(clients+i)), "d.example", "/"); be != "b" {
			t.Errorf("new client %d sent to %s while a drains", i, be)
		}
	})
	if s := r.status(DefaultPool, "a"); !s.Draining || !s.Healthy || s.Requests == 0 {
		t.Fatalf("status of a: %+v", s)
	}
}

// A replica that refuses the connection: the request (with its body) is
// retried once on the client's new replica; the old one is marked down by
// the passive check alone.
func TestRefusedConnectionRetriesOnce(t *testing.T) {
	bs := startBackends(t, "a", "b")
	slow := fastHealth
	slow.Interval, slow.Timeout = time.Hour, time.Second // only passive checks act here
	pl := poolOf(t, DefaultPool, nil, bs, "a", "b")
	pl.Health = slow
	r := newRig(t, Routes{Pools: []Pool{pl}}, nil)
	var ip string
	var victim string
	for i := 0; i < 50 && victim == ""; i++ {
		_, be, _ := r.get(clientFrom(t, clientIP(i)), "r.example", "/")
		if be == "a" {
			ip, victim = clientIP(i), be
		}
	}
	if victim == "" {
		t.Fatal("no client landed on a")
	}
	g0 := r.binding(ip, "r.example").Generation
	if err := bs["a"].Close(); err != nil {
		t.Fatal(err)
	}
	// A pooled keep-alive connection to a that the proxy has not yet seen
	// closed would make this a write on a dead connection, not a refused
	// one; drop them so the test is about refusal.
	r.p.transport.CloseIdleConnections()
	before := bs["b"].Hits()
	req, _ := http.NewRequest(http.MethodPost, r.url+"/cart", stringsReader("item=42"))
	req.Host = "r.example"
	res, err := clientFrom(t, ip).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("X-Backend") != "b" || bs["b"].Hits() != before+1 {
		t.Fatalf("POST after a died: %d from %q", res.StatusCode, res.Header.Get("X-Backend"))
	}
	if b := r.binding(ip, "r.example"); b.Replica != "b" || b.Generation <= g0 {
		t.Fatalf("binding %+v, want b at a generation after %d", b, g0)
	}
	if s := r.status(DefaultPool, "a"); s.Healthy || s.Reason == "" {
		t.Fatalf("a not marked down passively: %+v", s)
	}
	// With every replica gone: 503, short plain text.
	_ = bs["b"].Close()
	code, _, body := r.get(clientFrom(t, ip), "r.example", "/")
	if code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
		t.Fatalf("all replicas dead: %d %q", code, body)
	}
	code, _, body = r.get(clientFrom(t, ip), "r.example", "/")
	if code != http.StatusServiceUnavailable || body != "tether: no healthy backend\n" {
		t.Fatalf("no healthy replica: %d %q", code, body)
	}
}

// A slow-header client is cut off after ReadHeaderTimeout.
func TestSlowHeaderClientCutOff(t *testing.T) {
	bs := startBackends(t, "a")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a")}}, func(c *Config) {
		c.ReadHeaderTimeout = 200 * time.Millisecond
	})
	conn, err := net.Dial("tcp", r.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: a.example\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue // a 408 may come first
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after %v", time.Since(start))
		}
		break
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("cut off after %v, before the header timeout", took)
	}
	if bs["a"].Hits() != 0 {
		t.Fatal("a half-sent request reached the replica")
	}
}

func TestBadHost(t *testing.T) {
	bs := startBackends(t, "a")
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a")}}, nil)
	conn, err := net.Dial("tcp", r.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Go's server refuses some bad Hosts itself; one it lets through:
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: a..b\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(res)
	if res.StatusCode != http.StatusBadRequest || body != "tether: invalid or missing Host\n" {
		t.Fatalf("bad Host: %d %q", res.StatusCode, body)
	}
}

var _ = context.Background

// A node that has not caught up with the fleet waits (bounded) before it
// serves, and follows the fleet's binding if it arrives meanwhile; once
// caught up, nothing waits.
func TestCatchUpBeforeBinding(t *testing.T) {
	bs := startBackends(t, "a", "b", "c")
	caughtUp := make(chan struct{})
	var asked atomic.Int32
	r := newRig(t, Routes{Pools: []Pool{poolOf(t, DefaultPool, nil, bs, "a", "b", "c")}}, func(c *Config) {
		c.CatchUp = func(ctx context.Context) error {
			asked.Add(1)
			select {
			case <-caughtUp:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c.CatchUpWait = 10 * time.Second
	})
	ip := clientIP(1)
	k, err := stickydb.NewKey(netip.MustParseAddr(ip), "shop.test")
	if err != nil {
		t.Fatal(err)
	}
	// The fleet bound this client to a replica rendezvous hashing would not
	// pick here.
	cands := []stickydb.Candidate{}
	for _, n := range []string{"a", "b", "c"} {
		cands = append(cands, stickydb.Candidate{Name: n, Hash: stickydb.NameHash(n), Weight: 1})
	}
	want := cands[(stickydb.Pick(k, cands)+1)%3].Name
	c := clientFrom(t, ip)
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/", nil)
		req.Host = "shop.test"
		res, err := c.Do(req)
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		res.Body.Close()
		done <- res.Header.Get("X-Backend")
	}()
	deadline := time.Now().Add(5 * time.Second)
	for asked.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request did not ask to catch up")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case got := <-done:
		t.Fatalf("served by %q before catching up", got)
	default:
	}
	if _, _, err := r.db.Rebind(k, "", want, time.Now()); err != nil { // the fleet's binding arrives
		t.Fatal(err)
	}
	close(caughtUp)
	if got := <-done; got != want {
		t.Fatalf("served by %s, the fleet bound %s", got, want)
	}
	n := asked.Load()
	if code, _, _ := r.get(clientFrom(t, clientIP(2)), "shop.test", "/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if asked.Load() != n {
		t.Fatal("asked again after catching up")
	}
}
