package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The raw mode (serveRaw) waits for the socket without a read after a
// read that emptied it. These are the cases where bytes come at a time a
// lost wake-up would strand them: each must be answered at once, not at
// the idle timeout (1 min here).
func TestLoopRawNoLostWakeup(t *testing.T) {
	started := make(chan string, 4)
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.URL.Path
		switch r.URL.Path {
		case "/hold":
			<-release
		case "/watch":
			// Waiting on Done starts the watch (a background read of
			// its own descriptor in the raw mode); the next request's
			// first byte comes while it runs, and must not be lost.
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	mod := func(s *http.Server) { s.IdleTimeout = time.Minute; s.ReadHeaderTimeout = time.Minute }
	la, _ := rvServeBoth(t, h, mod)
	ta, cfg := rvServeTLS(t, h, mod, nil)
	t.Run("plain", func(t *testing.T) {
		c, err := net.Dial("tcp", la)
		if err != nil {
			t.Fatal(err)
		}
		testNoLostWakeup(t, c, started, release)
	})
	// Over TLS the watch reads a byte of the next request's record from
	// the socket: it must go back under the TLS layer.
	t.Run("tls", func(t *testing.T) { testNoLostWakeup(t, dialTLS(t, ta, cfg), started, release) })
}

func testNoLostWakeup(t *testing.T, c net.Conn, started chan string, release chan struct{}) {
	defer c.Close()
	br := bufio.NewReader(c)
	answer := func(want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

	for round := range 3 {
		// 1. The next request arrives while the handler runs (pipelined
		// after the head was read): the loop must find it.
		_, _ = io.WriteString(c, get("/hold"))
		if p := <-started; p != "/hold" {
			t.Fatalf("round %d: handler got %s", round, p)
		}
		_, _ = io.WriteString(c, get("/after-hold"))
		time.Sleep(20 * time.Millisecond) // let it reach the socket before the handler returns
		release <- struct{}{}
		answer("/hold")
		answer("/after-hold")
		<-started

		// 2. A head in pieces, each after the loop has had time to wait.
		raw := get("/pieces")
		for i := 0; i < len(raw); i += 7 {
			_, _ = io.WriteString(c, raw[i:min(i+7, len(raw))])
			time.Sleep(5 * time.Millisecond)
		}
		answer("/pieces")
		<-started

		// 2b. A head larger than one read takes, arriving whole while
		// the loop waits: every byte of it read without another wake-up.
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: "+strings.Repeat("p", 4000)+"\r\n\r\n")
		answer("/big")
		<-started

		// 3. The watch reads the next request's first byte.
		_, _ = io.WriteString(c, get("/watch"))
		<-started
		time.Sleep(20 * time.Millisecond) // the watch is armed
		_, _ = io.WriteString(c, get("/after-watch"))
		time.Sleep(20 * time.Millisecond)
		release <- struct{}{}
		answer("/watch")
		answer("/after-watch")
		<-started
	}
	// And the connection still ends cleanly on close.
	_, _ = io.WriteString(c, strings.Replace(get("/last"), "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1))
	answer("/last")
	<-started
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after Connection: close: %v", err)
	}
}

// The raw mode re-arms the idle deadline once every IdleTimeout/4, not
// once a request: a connection busy for several idle timeouts must stay
// open, and once quiet close no sooner than IdleTimeout after its last
// response (and not much later: at most 5/4 of it, plus scheduling).
func TestLoopRawIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	la, _ := rvServeBoth(t, h, func(s *http.Server) { s.IdleTimeout = idle })
	c, err := net.Dial("tcp", la)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	var last time.Time
	for start := time.Now(); time.Since(start) < 3*idle; {
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("after %v busy: %v", time.Since(start), err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		last = time.Now()
		time.Sleep(idle / 5)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = br.ReadByte()
	took := time.Since(last)
	if err != io.EOF {
		t.Fatalf("idle connection: %v after %v, want EOF", err, took)
	}
	t.Logf("closed %v after the last response (IdleTimeout %v)", took, idle)
	if took < idle {
		t.Fatalf("closed %v after the last response, before IdleTimeout %v", took, idle)
	}
	if took > 5*idle {
		t.Fatalf("closed %v after the last response, IdleTimeout %v", took, idle)
	}
}

// The raw mode writes the socket itself, so it keeps the write deadline
// itself: a response finished after http.Server.WriteTimeout is not sent,
// as net/http's server does not send it; one within it is.
func TestLoopRawWriteTimeout(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	mod := func(s *http.Server) { s.WriteTimeout = 100 * time.Millisecond }
	la, sa := rvServeBoth(t, h, mod)
	ta, cfg := rvServeTLS(t, h, mod, nil)
	for _, a := range []struct {
		name, addr string
		tls        *tls.Config
	}{{"loop", la, nil}, {"std", sa, nil}, {"loop tls", ta, cfg}} {
		c, err := net.Dial("tcp", a.addr)
		if err != nil {
			t.Fatal(err)
		}
		if a.tls != nil {
			c = tls.Client(c, a.tls)
		}
		br := bufio.NewReader(c)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: in time: %v", a.name, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "/early" {
			t.Fatalf("%s: in time: got %q", a.name, b)
		}
		_, _ = io.WriteString(c, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
		if res, err := http.ReadResponse(br, nil); err == nil {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("%s: a response after WriteTimeout was sent: %d %q", a.name, res.StatusCode, b)
		}
		c.Close()
	}
}

// Responses larger than the sockets take at once: the raw mode's writes
// (to the client, and the request to the replica) hand the rest to
// net.Conn.Write, which waits; a client that reads late and slowly still
// gets every byte, on two requests of one connection.
func TestLoopRawLargeResponseIntact(t *testing.T) {
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(i*7 + i>>9)
	}
	be := startRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, ok := readHead(br); !ok {
				return
			}
			_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
			if _, err := c.Write(body); err != nil {
				return
			}
		}
	})
	r := newRig(t, Routes{Pools: []Pool{poolAt(t, DefaultPool, map[string]string{"a": be.URL()})}}, withForwarding(ForwardFast, nil))
	t.Run("plain", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		largeResponsesIntact(t, c, body)
	})
	t.Run("tls", func(t *testing.T) {
		l := newTLSServe(t, r.p, tlsLoopRaw, nil)
		largeResponsesIntact(t, dialTLS(t, l.addr, l.client), body)
	})
}

func largeResponsesIntact(t *testing.T, c net.Conn, body []byte) {
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 2 {
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: s.example\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // every buffer on the way fills
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got := make([]byte, 0, len(body))
		buf := make([]byte, 1500)
		for {
			n, err := res.Body.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			if len(got) < 1<<20 {
				time.Sleep(time.Millisecond) // slowly at first
			}
		}
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("request %d: status %d, %d bytes, equal %v", i, res.StatusCode, len(got), bytes.Equal(got, body))
		}
	}
}
