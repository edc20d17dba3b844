package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproxy/tether/internal/demobackend"
)

// loopRig is a rig served by the loop, with its replica.
func loopRig(t *testing.T) (*rig, *demobackend.Running) {
	t.Helper()
	be, err := demobackend.Start("a", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL})}}, nil)
	return r, be
}

// readResponses reads n responses from br, returning their statuses and
// bodies ("" and the error when one could not be read).
func readResponses(br *bufio.Reader, methods ...string) (codes []int, bodies []string, err error) {
	for _, m := range methods {
		res, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			return codes, bodies, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return codes, bodies, err
		}
		codes, bodies = append(codes, res.StatusCode), append(bodies, string(b))
	}
	return codes, bodies, nil
}

// One connection: pipelined GETs and a HEAD (the loop), then a POST with a
// body (handed to net/http's server with the bytes already read), then a
// GET that net/http serves since: every request answered, in order, on
// the same connection.
func TestLoopPipelinedThenHandedOver(t *testing.T) {
	r, be := loopRig(t)
	c, err := net.Dial("tcp", r.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	host := "Host: l.example\r\n"
	_, _ = io.WriteString(c, "GET /one HTTP/1.1\r\n"+host+"\r\nGET /two HTTP/1.1\r\n"+host+"\r\nHEAD /three HTTP/1.1\r\n"+host+"\r\n"+
		"POST /four HTTP/1.1\r\n"+host+"Content-Length: 5\r\n\r\nhello"+"GET /five HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n")
	br := bufio.NewReader(c)
	codes, bodies, err := readResponses(br, "GET", "GET", "HEAD", "POST", "GET")
	if err != nil {
		t.Fatalf("after %v: %v", codes, err)
	}
	for i, code := range codes {
		if code != http.StatusOK {
			t.Fatalf("response %d: %d %q", i, code, bodies[i])
		}
	}
	if bodies[2] != "" || !strings.Contains(bodies[0], "a") {
		t.Fatalf("bodies %q", bodies)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after Connection: close the connection stayed open: %v", err)
	}
	if got := be.Hits(); got != 5 {
		t.Fatalf("the replica served %d requests, want 5", got)
	}
}

// Requests the loop does not take are net/http's from their first byte:
// the answers are those of a node served by net/http's server alone (a
// bare LF request line, HTTP/1.0, a folded field, two Hosts, heads past
// the loop's buffer and past MaxHeaderBytes).
func TestLoopHandsOverOddRequests(t *testing.T) {
	loop, be := loopRig(t)
	rigStdServer = true
	std := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL})}}, nil)
	rigStdServer = false
	answer := func(url, raw string) string {
		c, err := net.Dial("tcp", url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, raw)
		codes, bodies, err := readResponses(bufio.NewReader(c), "GET")
		if err != nil {
			return "no answer"
		}
		return fmt.Sprintf("%d %q", codes[0], bodies[0])
	}
	for _, tc := range []struct{ name, raw string }{
		{"bare LF", "GET / HTTP/1.1\nHost: l.example\n\n"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: l.example\r\n\r\n"},
		{"folded", "GET / HTTP/1.1\r\nHost: l.example\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: l.example\r\nHost: m.example\r\n\r\n"},
		{"no host", "GET / HTTP/1.1\r\n\r\n"},
		{"head past 16 KiB", "GET / HTTP/1.1\r\nHost: l.example\r\nX-Big: " + strings.Repeat("b", 20<<10) + "\r\n\r\n"},
		{"head past 64 KiB", "GET / HTTP/1.1\r\nHost: l.example\r\nX-Big: " + strings.Repeat("b", 70<<10) + "\r\n\r\n"},
	} {
		l, s := answer(loop.url, tc.raw), answer(std.url, tc.raw)
		// The replica counts visits per client: compare the status and
		// whether there was an answer.
		if strings.Fields(l)[0] != strings.Fields(s)[0] {
			t.Errorf("%s: loop %s, net/http %s", tc.name, l, s)
		}
	}
}

// A slow head is cut at ReadHeaderTimeout, as net/http cuts it.
func TestLoopHeaderTimeout(t *testing.T) {
	be, err := demobackend.Start("a", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL})}},
		func(c *Config) { c.ReadHeaderTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", r.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	headerCut(t, c)
	// Over TLS (the raw mode's tlsSocket), a head begun after the
	// handshake is cut the same way.
	l := newTLSServe(t, r.p, tlsLoopRaw, func(s *http.Server) { s.ReadHeaderTimeout = 300 * time.Millisecond })
	headerCut(t, dialTLS(t, l.addr, l.client))
}

// headerCut sends the start of a head on c and requires the server to
// close c, well before 5 s.
func headerCut(t *testing.T, c net.Conn) {
	t.Helper()
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: l.ex")
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read: %v, want EOF", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("closed after %v", took)
	}
}

// Shutdown lets a response in flight finish (closing its connection after
// it), closes idle connections at once, and serves the first request of a
// connection accepted just before it (net/http's Shutdown waits 5 s for
// such a connection's first request: golang.org/issue/22682).
func TestLoopShutdown(t *testing.T) {
	// The replica holds each request until the gate opens.
	var mu sync.Mutex
	gate := make(chan struct{})
	open := func() {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-gate:
		default:
			close(gate)
		}
	}
	var reqs atomic.Int64
	be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, ok := readHead(br); !ok {
				return
			}
			reqs.Add(1)
			mu.Lock()
			wait := gate
			mu.Unlock()
			<-wait
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
		}
	})
	t.Cleanup(open) // before the replica's cleanup, which waits for its handlers
	db := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"s": be.URL()})}}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := NewLoopServer(db.p.NewServer())
	served := make(chan error, 1)
	go func() { served <- ls.Serve(ln) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(idle, "GET / HTTP/1.1\r\nHost: s.example\r\n\r\n")
	waitCount(t, "the idle connection's request at the replica", 1, reqs.Load)
	open()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if res, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
		t.Fatalf("idle connection's request: %v", err)
	} else if res.StatusCode != 200 {
		t.Fatalf("idle connection's request: status %d", res.StatusCode)
	} else {
		_, _ = io.Copy(io.Discard, res.Body)
	}
	mu.Lock()
	gate = make(chan struct{})
	mu.Unlock()
	fresh, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	freshPost, err := net.Dial("tcp", ln.Addr().String()) // a first request the loop hands to net/http
	if err != nil {
		t.Fatal(err)
	}
	defer freshPost.Close()
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, _ = io.WriteString(busy, "GET / HTTP/1.1\r\nHost: s.example\r\n\r\n")
	waitCount(t, "the request at the replica", 2, reqs.Load)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ls.Shutdown(ctx)
	}()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	// Shutdown has been over the connections once: the fresh ones, which
	// have sent nothing yet, are still open and their requests are served,
	// the GET by the loop and the POST by net/http's server.
	_, _ = io.WriteString(fresh, "GET / HTTP/1.1\r\nHost: s.example\r\n\r\n")
	_, _ = io.WriteString(freshPost, "POST / HTTP/1.1\r\nHost: s.example\r\nContent-Length: 2\r\n\r\nhi")
	waitCount(t, "the fresh connections' requests at the replica", 4, reqs.Load)
	open()
	for _, c := range []net.Conn{fresh, freshPost} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatalf("fresh connection: %v", err)
		} else if body, _ := io.ReadAll(res.Body); string(body) != "done" || !res.Close {
			t.Fatalf("fresh connection's response %q, close %v", body, res.Close)
		}
	}
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(busy)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if string(body) != "done" || !res.Close {
		t.Fatalf("in-flight response %q, close %v", body, res.Close)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
}

// The loop's own answers carry the framing net/http's would: a body the
// handler wrote whole gets a Content-Length, one it flushed is chunked, a
// HEAD gets neither, and each has a Date.
func TestLoopFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	std := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			_, _ = io.WriteString(w, "<html>hi</html>")
		case "/flushed":
			_, _ = io.WriteString(w, "part one,")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, " part two")
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		}
	})}
	ls := NewLoopServer(std)
	go func() { _ = ls.Serve(ln) }()
	t.Cleanup(func() { _ = ls.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		method, path, body string
		cl                 int64
		chunked            bool
		trailer            string
	}{
		{"GET", "/small", "<html>hi</html>", 15, false, ""},
		{"GET", "/flushed", "part one, part two", -1, true, ""},
		{"GET", "/big", strings.Repeat("x", 5000), -1, true, ""},
		{"HEAD", "/small", "", 15, false, ""}, // net/http frames what a HEAD handler wrote
		{"GET", "/trailer", "body", -1, true, "42"},
	} {
		_, _ = fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: l.example\r\n\r\n", tc.method, tc.path)
		res, err := http.ReadResponse(br, &http.Request{Method: tc.method})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		chunked := len(res.TransferEncoding) > 0 && res.TransferEncoding[0] == "chunked"
		if string(b) != tc.body || res.ContentLength != tc.cl || chunked != tc.chunked || res.Header.Get("Date") == "" ||
			res.Trailer.Get("X-Sum") != tc.trailer {
			t.Fatalf("%s %s: body %q length %d chunked %v trailer %v date %q", tc.method, tc.path, b, res.ContentLength, chunked,
				res.Trailer, res.Header.Get("Date"))
		}
		if tc.path == "/small" && tc.method == "GET" && res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("sniffed %q", res.Header.Get("Content-Type"))
		}
	}
}

// workers counts the goroutines in LoopServer.worker.
func workers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("proxy.(*LoopServer).worker("))
}

// A connection after another is served by the worker that served the
// first (its stack already grown), not by a new goroutine; the workers end
// when the server closes.
func TestLoopWorkersReused(t *testing.T) {
	before := workers()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := NewLoopServer(&http.Server{Handler: h})
	done := make(chan struct{})
	go func() { defer close(done); _ = ls.Serve(ln) }()
	for i := range 50 {
		got := rvExchange(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false)
		if !strings.HasSuffix(got, "\r\n\r\nok") {
			t.Fatalf("connection %d: %q", i, got)
		}
	}
	// 50 connections one after another: a worker or two (one may still be
	// finishing its connection as the next is accepted), not 50.
	if n := workers() - before; n < 1 || n > 3 {
		t.Fatalf("%d workers after 50 sequential connections, want 1 to 3", n)
	}
	_ = ls.Close()
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for workers() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers left after Close", workers()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
