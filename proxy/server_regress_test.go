package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serveBoth starts h behind the loop and behind net/http alone.
func rvServeBoth(t *testing.T, h http.Handler, mod func(*http.Server)) (loopAddr, stdAddr string) {
	t.Helper()
	mk := func() *http.Server {
		s := &http.Server{Handler: h}
		if mod != nil {
			mod(s)
		}
		return s
	}
	ln1, _ := net.Listen("tcp", "127.0.0.1:0")
	ls := NewLoopServer(mk())
	go func() { _ = ls.Serve(ln1) }()
	t.Cleanup(func() { _ = ls.Close() })
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	ss := mk()
	go func() { _ = ss.Serve(ln2) }()
	t.Cleanup(func() { _ = ss.Close() })
	return ln1.Addr().String(), ln2.Addr().String()
}

func rvExchange(t *testing.T, addr, raw string, halfClose bool) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = io.WriteString(c, raw)
	if halfClose {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// 1. No ReadHeaderTimeout before the first byte of a connection.
func TestLoopFirstReadNoDeadline(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	la, sa := rvServeBoth(t, h, func(s *http.Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
	for _, a := range []struct{ name, addr string }{{"loop", la}, {"std", sa}} {
		c, err := net.Dial("tcp", a.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		start := time.Now()
		_, err = c.Read(make([]byte, 1))
		t.Logf("%s: silent connection: read err %v after %v", a.name, err, time.Since(start).Round(time.Millisecond))
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: a connection that sends nothing is still open after 2s (ReadHeaderTimeout 200ms)", a.name)
		}
	}
}

// 2. Client half-closes after its request; handler watches the context.
func TestLoopHalfClose(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(200 * time.Millisecond):
		}
		_, _ = io.WriteString(w, "ok")
	})
	la, sa := rvServeBoth(t, h, nil)
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	l, s := rvExchange(t, la, req, true), rvExchange(t, sa, req, true)
	t.Logf("loop: %q", l)
	t.Logf("std:  %q", s)
	if l == "" && s != "" {
		t.Errorf("loop sent no response to a half-closed client; net/http did")
	}
}

// 3. Path values set by one request leak into the next on the connection.
func TestLoopPathValueLeak(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			r.SetPathValue("user", "alice")
		}
		_, _ = io.WriteString(w, "user="+r.PathValue("user")+";")
	})
	la, sa := rvServeBoth(t, h, nil)
	req := "GET /login HTTP/1.1\r\nHost: x\r\n\r\nGET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for _, a := range []struct{ name, addr string }{{"loop", la}, {"std", sa}} {
		out := rvExchange(t, a.addr, req, false)
		n := strings.Count(out, "user=alice")
		t.Logf("%s: %d responses carry user=alice", a.name, n)
		if a.name == "loop" && n != 1 {
			t.Errorf("loop: path value leaked into the next request: %q", out)
		}
	}
}

// 4. Header changed after WriteHeader: net/http ignores it, the loop sends it
// (here a second, different Content-Length).
func TestLoopHeaderAfterWriteHeader(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.Header().Set("Content-Length", "3")
		w.Header().Set("X-Late", "1")
		_, _ = io.WriteString(w, "hello")
	})
	la, sa := rvServeBoth(t, h, nil)
	req := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	l, s := rvExchange(t, la, req, false), rvExchange(t, sa, req, false)
	t.Logf("loop: %q", l)
	t.Logf("std:  %q", s)
	if strings.Count(l, "Content-Length") > 1 {
		t.Errorf("loop sent two Content-Length fields")
	}
}

// 5. CR LF in a trailer value is written raw.
func TestLoopTrailerInjection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "1\r\nX-Injected: yes")
	})
	la, sa := rvServeBoth(t, h, nil)
	req := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	l, s := rvExchange(t, la, req, false), rvExchange(t, sa, req, false)
	t.Logf("loop: %q", l)
	t.Logf("std:  %q", s)
	if strings.Contains(l, "\r\nX-Injected: yes\r\n") {
		t.Errorf("loop wrote a CR LF from a trailer value")
	}
}

// 6. A handler panics on a pipelined request: its context is never
// cancelled, a goroutine waiting on it stays.
func TestLoopPanicCtxNeverCancelled(t *testing.T) {
	var waiting, released atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			ctx := r.Context()
			waiting.Add(1)
			go func() { <-ctx.Done(); released.Add(1) }()
			panic(http.ErrAbortHandler)
		}
	})
	la, sa := rvServeBoth(t, h, nil)
	req := "GET /panic HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, a := range []struct{ name, addr string }{{"std", sa}, {"loop", la}} {
		waiting.Store(0)
		released.Store(0)
		_ = rvExchange(t, a.addr, req, false)
		// Wait for the watcher to be released: the loop must cancel the
		// context (within seconds); net/http's figure is only logged.
		wait := 5 * time.Second
		if a.name == "std" {
			wait = 300 * time.Millisecond
		}
		for deadline := time.Now().Add(wait); released.Load() != waiting.Load() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s: %d waiting, %d released", a.name, waiting.Load(), released.Load())
		if a.name == "loop" && (waiting.Load() == 0 || released.Load() != waiting.Load()) {
			t.Errorf("loop: request context never cancelled after a panic (%d waiting, %d released)", waiting.Load(), released.Load())
		}
	}
}

// 7. ReadTimeout passes while the handler runs: net/http still writes the
// response, the loop drops it.
func TestLoopReadTimeoutDropsResponse(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(500 * time.Millisecond):
		}
		_, _ = io.WriteString(w, "ok")
	})
	la, sa := rvServeBoth(t, h, func(s *http.Server) { s.ReadTimeout = 200 * time.Millisecond })
	req := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	l, s := rvExchange(t, la, req, false), rvExchange(t, sa, req, false)
	t.Logf("loop: %q", l)
	t.Logf("std:  %q", s)
	if l == "" && s != "" {
		t.Errorf("loop dropped the response")
	}
}

// A head over MaxHeaderBytes (plus net/http's 4 KiB) is net/http's: 431,
// not served by the loop.
func TestLoopMaxHeaderBytes(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	la, sa := rvServeBoth(t, h, func(s *http.Server) { s.MaxHeaderBytes = 1024 })
	req := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 10000) + "\r\nConnection: close\r\n\r\n"
	l, s := rvExchange(t, la, req, false), rvExchange(t, sa, req, false)
	if ls, ss := strings.SplitN(l, "\r\n", 2)[0], strings.SplitN(s, "\r\n", 2)[0]; ls != ss {
		t.Errorf("loop %q, net/http %q", ls, ss)
	}
}

// Cancelling the server's base context reaches a request's context.
func TestLoopBaseContextCancel(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		select {
		case <-r.Context().Done():
			_, _ = io.WriteString(w, "cancelled")
		case <-time.After(2 * time.Second):
			_, _ = io.WriteString(w, "not cancelled")
		}
	})
	la, _ := rvServeBoth(t, h, func(s *http.Server) { s.BaseContext = func(net.Listener) context.Context { return base } })
	if out := rvExchange(t, la, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false); !strings.HasSuffix(out, "\r\ncancelled") {
		t.Errorf("the request's context did not follow the base context: %q", out)
	}
}
