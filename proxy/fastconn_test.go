package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tetherproxy/tether/stickydb"
)

// The fast path's connection handling: what http.Transport's read loop
// and pool did, done without them. Tests that are about behaviour both
// paths share run in both Forwarding modes.

func eachForwarding(t *testing.T, fn func(t *testing.T, fw string)) {
	for _, fw := range forwardings {
		t.Run(fw, func(t *testing.T) { fn(t, fw) })
	}
}

func withForwarding(fw string, mod func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Forwarding = fw
		if mod != nil {
			mod(c)
		}
	}
}

// okResponse answers with the connection's sequence number and the
// request's number on it.
func okResponse(conn, req int) string {
	body := fmt.Sprintf("conn %d req %d", conn, req)
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// A replica that closes its idle keep-alive connections: the next request
// finds its pooled connection closed and goes on a new one, never failing
// the client.
func TestFastReplicaClosedIdleConnection(t *testing.T) {
	eachForwarding(t, func(t *testing.T, fw string) {
		var conns atomic.Int64
		be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
			n := int(conns.Add(1))
			if _, ok := readHead(br); !ok {
				return
			}
			io.WriteString(c, okResponse(n, 1)) // then close: no Connection: close
		})
		r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}}, withForwarding(fw, nil))
		c := clientFrom(t, "127.0.0.9")
		for i := 1; i <= 5; i++ {
			code, _, body := r.get(c, "s.example", "/")
			if code != 200 || body != okResponse(i, 1)[strings.Index(okResponse(i, 1), "conn"):] {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
			waitCount(t, "the replica closed the connection", int64(i), be.closed.Load)
		}
	})
}

// A replica that reads a request on a reused connection and closes it
// without an answer (its idle timeout struck as the request came): the
// GET goes once more on a new connection, as http.Transport retries it.
func TestFastRetriesRequestOnDeadReusedConnection(t *testing.T) {
	eachForwarding(t, func(t *testing.T, fw string) {
		var conns atomic.Int64
		be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
			n := int(conns.Add(1))
			for req := 1; ; req++ {
				if _, ok := readHead(br); !ok {
					return
				}
				if req == 2 {
					return // closes with the request unanswered
				}
				io.WriteString(c, okResponse(n, req))
			}
		})
		r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}}, withForwarding(fw, nil))
		c := clientFrom(t, "127.0.0.10")
		if code, _, body := r.get(c, "s.example", "/"); code != 200 || body != "conn 1 req 1" {
			t.Fatalf("first: %d %q", code, body)
		}
		if code, _, body := r.get(c, "s.example", "/"); code != 200 || body != "conn 2 req 1" {
			t.Fatalf("second: %d %q", code, body)
		}
	})
}

// Bytes a replica sends beyond a response are never read as the answer
// to the next request: whether they came with the response or later,
// while the connection was idle, the connection is dropped. This holds on
// the fast path only, whose probe of an idle connection is synchronous.
// http.Transport (TETHER_FORWARDING=stdlib) puts the connection back in
// its idle pool before its read loop looks for bytes beyond the response,
// so a request sent in between gets the stray bytes as its answer (seen
// with early bytes in one of about a dozen full test runs; with late
// bytes nearly always). The stdlib path is not tested here for that.
func TestFastStrayBytesNotTakenForAResponse(t *testing.T) {
	const stray = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Evil: 1\r\n\r\nevil"
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			var conns atomic.Int64
			sendStray, strayDone := make(chan struct{}), make(chan struct{})
			be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
				n := int(conns.Add(1))
				for req := 1; ; req++ {
					if _, ok := readHead(br); !ok {
						return
					}
					resp := okResponse(n, req)
					if n == 1 && req == 1 && !late {
						resp += stray
					}
					io.WriteString(c, resp)
					if n == 1 && req == 1 && late {
						select {
						case <-sendStray:
						case <-time.After(5 * time.Second):
							return
						}
						io.WriteString(c, stray)
						close(strayDone)
					}
				}
			})
			r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}}, withForwarding(ForwardFast, nil))
			c := clientFrom(t, "127.0.0.11")
			if code, _, body := r.get(c, "s.example", "/"); code != 200 || body != "conn 1 req 1" {
				t.Fatalf("first: %d %q", code, body)
			}
			if late {
				close(sendStray)
				<-strayDone
			}
			req, _ := http.NewRequest(http.MethodGet, r.url+"/", nil)
			req.Host = "s.example"
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(res)
			if res.StatusCode != 200 || res.Header.Get("X-Evil") != "" || body != "conn 2 req 1" {
				t.Fatalf("second: %d %v %q", res.StatusCode, res.Header, body)
			}
		})
	}
}

// A client that leaves while the replica is still thinking: the request
// to the replica is abandoned (its connection closed, not left to the
// header timeout) and counted as 499.
func TestFastClientLeavesWhileReplicaThinks(t *testing.T) {
	for _, phase := range []string{"before the watch", "after the watch"} {
		t.Run(phase, func(t *testing.T) {
			eachForwarding(t, func(t *testing.T, fw string) {
				got := make(chan time.Time, 1)
				be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
					if _, ok := readHead(br); !ok {
						return
					}
					got <- time.Now()
					io.Copy(io.Discard, br) // until the proxy closes the connection
				})
				r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"slow": be.URL()})}},
					withForwarding(fw, func(c *Config) { c.ResponseHeaderTimeout = time.Minute }))
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.12")}}
				cc, err := d.Dial("tcp", r.url[len("http://"):])
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(cc, "GET /long-poll HTTP/1.1\r\nHost: s.example\r\n\r\n")
				var at time.Time
				select {
				case at = <-got:
				case <-time.After(5 * time.Second):
					t.Fatal("the replica got no request")
				}
				if phase == "after the watch" {
					waitFor(t, "the watch to be armed", 5*time.Second, func() bool { return time.Since(at) > watchAfter+100*time.Millisecond })
				}
				left := time.Now()
				cc.Close()
				waitCount(t, "the replica's connection closed", 1, be.closed.Load)
				if took := time.Since(left); took > 3*time.Second {
					t.Fatalf("the replica's request outlived its client by %v", took)
				}
				waitFor(t, "a 499", 5*time.Second, func() bool {
					return testutil.ToFloat64(r.p.m.requests.WithLabelValues(DefaultPool, "slow", "4xx")) == 1
				})
			})
		})
	}
}

// A replica slower than watchAfter but within ResponseHeaderTimeout: the
// answer comes through and the connection is kept; one slower than the
// timeout: 504.
func TestFastSlowReplica(t *testing.T) {
	eachForwarding(t, func(t *testing.T, fw string) {
		var conns atomic.Int64
		be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
			n := int(conns.Add(1))
			for req := 1; ; req++ {
				head, ok := readHead(br)
				if !ok {
					return
				}
				delay := watchAfter + 150*time.Millisecond
				if strings.Contains(head[0], "/slower") {
					delay = 3 * time.Second
				}
				select {
				case <-time.After(delay): // the replica's own latency
				}
				if _, err := io.WriteString(c, okResponse(n, req)); err != nil {
					return
				}
			}
		})
		r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}},
			withForwarding(fw, func(c *Config) { c.ResponseHeaderTimeout = watchAfter + time.Second }))
		c := clientFrom(t, "127.0.0.13")
		for i := 1; i <= 2; i++ {
			if code, _, body := r.get(c, "s.example", "/"); code != 200 || body != fmt.Sprintf("conn 1 req %d", i) {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		start := time.Now()
		if code, _, body := r.get(c, "s.example", "/slower"); code != http.StatusGatewayTimeout || body != "tether: backend timed out\n" {
			t.Fatalf("slower: %d %q", code, body)
		}
		if took := time.Since(start); took < watchAfter+time.Second {
			t.Fatalf("504 after %v, before the header timeout", took)
		}
	})
}

// The pool keeps at most MaxIdleConnsPerHost idle connections, closes
// those idle longer than IdleConnTimeout, and closes the rest on Close.
func TestFastPoolBounds(t *testing.T) {
	release := make(chan struct{})
	var conns atomic.Int64
	be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
		n := int(conns.Add(1))
		for req := 1; ; req++ {
			if _, ok := readHead(br); !ok {
				return
			}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
				return
			}
			if _, err := io.WriteString(c, okResponse(n, req)); err != nil {
				return
			}
		}
	})
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}}, func(c *Config) {
		c.MaxIdleConnsPerHost = 2
		c.IdleConnTimeout = 300 * time.Millisecond
	})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := clientFrom(t, clientIP(200+i)).Get(r.url + "/")
			if err != nil {
				errs <- err
				return
			}
			if body := readAll(res); res.StatusCode != 200 || !strings.HasPrefix(body, "conn ") {
				errs <- fmt.Errorf("%d %q", res.StatusCode, body)
			}
		}()
	}
	waitCount(t, "4 connections", 4, be.accepts.Load)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitCount(t, "2 closed by the idle bound", 2, be.closed.Load)
	waitCount(t, "the other 2 closed by the idle timeout", 4, be.closed.Load)
	cp := r.p.table.Load().pools[0].backends[0].conns
	cp.mu.Lock()
	n := len(cp.idle)
	cp.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d idle connections left", n)
	}
}

// Close and a reload that drops a replica close its idle connections.
func TestFastCloseAndReloadCloseIdle(t *testing.T) {
	serve := func(c net.Conn, br *bufio.Reader) {
		for req := 1; ; req++ {
			if _, ok := readHead(br); !ok {
				return
			}
			if _, err := io.WriteString(c, okResponse(1, req)); err != nil {
				return
			}
		}
	}
	a, b := startRawServer(t, serve), startRawServer(t, serve)
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": a.URL(), "b": b.URL()})}}, nil)
	for i := 0; a.accepts.Load() == 0 || b.accepts.Load() == 0; i++ {
		if i > 200 {
			t.Fatal("no client reached both replicas")
		}
		r.get(clientFrom(t, clientIP(i)), "s.example", "/")
	}
	if err := r.p.Reload(Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"b": b.URL()})}}); err != nil {
		t.Fatal(err)
	}
	waitCount(t, "a's idle connections closed by the reload", a.accepts.Load(), a.closed.Load)
	if b.closed.Load() != 0 {
		t.Fatal("the reload closed a kept replica's connections")
	}
	r.p.Close()
	waitCount(t, "b's idle connections closed by Close", b.accepts.Load(), b.closed.Load)
}

// Informational responses pass on, however many (ReverseProxy's trace
// hook lifts http.Transport's bound), each within the header size limit;
// a protocol switch nobody asked for is refused.
func TestFastOddReplies(t *testing.T) {
	replies := map[string]string{
		"/many-1xx": strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", 8) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/switch":   "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\n",
	}
	eachForwarding(t, func(t *testing.T, fw string) {
		be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
			head, ok := readHead(br)
			if !ok {
				return
			}
			io.WriteString(c, replies[strings.Fields(head[0])[1]])
		})
		r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}}, withForwarding(fw, nil))
		s := rawExchange(t, r.url[len("http://"):], "127.0.0.14", "GET", "/many-1xx", []string{"Host: s.example"})
		if want := append(slices.Repeat([]int{103}, 8), 200); !slices.Equal(s.statuses, want) || s.body != "ok" {
			t.Fatalf("eight 1xx: %v %q", s.statuses, s.body)
		}
		if code, _, body := r.get(clientFrom(t, "127.0.0.14"), "s.example", "/switch"); code != http.StatusBadGateway {
			t.Fatalf("unasked 101: %d %q", code, body)
		}
	})
}

// A client that stops reading a large body: the replica's connection is
// dropped, not returned to the pool half read, and the next request gets
// a whole answer.
func TestFastClientAbandonsLargeBody(t *testing.T) {
	eachForwarding(t, func(t *testing.T, fw string) {
		big := strings.Repeat("z", 8<<20)
		var conns atomic.Int64
		be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
			n := int(conns.Add(1))
			for req := 1; ; req++ {
				head, ok := readHead(br)
				if !ok {
					return
				}
				resp := okResponse(n, req)
				if strings.Contains(head[0], "/big") {
					resp = fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
				}
				if _, err := io.WriteString(c, resp); err != nil {
					return
				}
			}
		})
		r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}}, withForwarding(fw, nil))
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.15")}}
		cc, err := d.Dial("tcp", r.url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(cc, "GET /big HTTP/1.1\r\nHost: s.example\r\n\r\n")
		if _, err := io.ReadFull(cc, make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		cc.Close()
		waitCount(t, "the replica's connection dropped", 1, be.closed.Load)
		if cp := r.p.table.Load().pools[0].backends[0].conns; cp != nil {
			waitFor(t, "the request to end", 5*time.Second, func() bool { return r.status(DefaultPool, "a").InFlight == 0 })
			cp.mu.Lock()
			idle := len(cp.idle)
			cp.mu.Unlock()
			if idle != 0 {
				t.Fatalf("%d connections pooled after a cut-off body", idle)
			}
		}
		if code, _, body := r.get(clientFrom(t, "127.0.0.15"), "s.example", "/"); code != 200 || body != "conn 2 req 1" {
			t.Fatalf("after: %d %q", code, body)
		}
	})
}

// A GET whose replica refuses the connection moves to another replica,
// even with dead keep-alive connections to the first still pooled.
func TestFastRefusedGETRetries(t *testing.T) {
	bs := startBackends(t, "a", "b")
	slow := fastHealth
	slow.Interval, slow.Timeout = time.Hour, time.Second
	pl := poolOf(t, DefaultPool, nil, bs, "a", "b")
	pl.Health = slow
	r := newRig(t, Routes{Pools: []Pool{pl}}, nil)
	var ip string
	for i := 0; i < 50 && ip == ""; i++ {
		if _, be, _ := r.get(clientFrom(t, clientIP(i)), "g.example", "/"); be == "a" {
			ip = clientIP(i)
		}
	}
	if ip == "" {
		t.Fatal("no client landed on a")
	}
	g0 := r.binding(ip, "g.example").Generation
	if err := bs["a"].Close(); err != nil {
		t.Fatal(err)
	}
	if code, be, _ := r.get(clientFrom(t, ip), "g.example", "/"); code != 200 || be != "b" {
		t.Fatalf("GET after a died: %d from %q", code, be)
	}
	if b := r.binding(ip, "g.example"); b.Replica != "b" || b.Generation <= g0 {
		t.Fatalf("binding %+v, want b at a generation after %d", b, g0)
	}
}

// A request handed to ServeHTTP directly (not through net/http's server,
// which refuses such fields itself) with a line break in a header value:
// 502, and the replica never sees the smuggled field.
func TestFastRefusesInjectedHeader(t *testing.T) {
	eachForwarding(t, func(t *testing.T, fw string) {
		cb := startCaptureBackend(t)
		r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"c": cb.URL()})}}, withForwarding(fw, nil))
		for _, h := range []http.Header{
			{"X-Bad": {"a\r\nX-Evil: 1"}},
			{"X-Bad\r\nX-Evil": {"1"}},
			{"User-Agent": {"ua\r\nX-Evil: 1"}},
		} {
			req, _ := http.NewRequest(http.MethodGet, "http://s.example/", nil)
			req.RemoteAddr = "192.0.2.9:1234"
			req.Header = h
			w := &discardWriter{h: http.Header{}}
			r.p.ServeHTTP(w, req)
			if w.code != http.StatusBadGateway {
				t.Fatalf("%q: status %d", h, w.code)
			}
		}
		cb.mu.Lock()
		defer cb.mu.Unlock()
		for _, head := range cb.heads {
			for _, l := range head {
				if strings.Contains(l, "X-Evil") {
					t.Fatalf("the replica got %q", head)
				}
			}
		}
	})
}

// countReader caps what is read at lim.
func TestCountReaderLimit(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { b.Write([]byte("0123456789")) }()
	cr := &countReader{nc: a, lim: 4}
	buf := make([]byte, 10)
	n, err := cr.Read(buf)
	if n != 4 || err != nil || cr.n != 4 {
		t.Fatalf("read %d %v (n %d)", n, err, cr.n)
	}
	if _, err := cr.Read(buf); !errors.Is(err, errResponseTooLarge) {
		t.Fatalf("past the limit: %v", err)
	}
}

func TestForwardingConfig(t *testing.T) {
	cfg := DefaultConfig()
	db, err := stickydb.New(stickydb.DefaultConfig("n"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bindings = db
	cfg.Forwarding = "turbo"
	if _, err := New(cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "Forwarding") {
		t.Fatalf("Forwarding turbo: %v", err)
	}
}
