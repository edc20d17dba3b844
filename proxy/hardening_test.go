package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// replicaLog is a test replica that records what reached it.
type replicaLog struct {
	mu      sync.Mutex
	methods []string
	cookies []string
	bodyErr chan error // one per request with a body: what reading it ended with
	copyErr chan error // /big: what writing 50 MB ended with
}

func startReplica(t *testing.T) (*replicaLog, Pool) {
	t.Helper()
	rl := &replicaLog{bodyErr: make(chan error, 16), copyErr: make(chan error, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		rl.mu.Lock()
		rl.methods = append(rl.methods, r.Method)
		rl.cookies = append(rl.cookies, strings.Join(r.Header["Cookie"], "|"))
		rl.mu.Unlock()
		if r.ContentLength != 0 && r.Method == http.MethodPost {
			_, err := io.Copy(io.Discard, r.Body)
			rl.bodyErr <- err
		}
		if r.URL.Path == "/big" {
			chunk := make([]byte, 64<<10)
			var err error
			for i := 0; i < 800 && err == nil; i++ { // 50 MB
				_, err = w.Write(chunk)
			}
			rl.copyErr <- err
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	u, err := ParseBackendURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return rl, Pool{Name: "app", Hosts: []string{"app.test"}, Health: fastHealth, Backends: []Backend{{Name: "r1", URL: u, Weight: 1}}}
}

func (rl *replicaLog) seen() ([]string, []string) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return append([]string(nil), rl.methods...), append([]string(nil), rl.cookies...)
}

func rawRoundTrip(t *testing.T, url, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestRequestRules(t *testing.T) {
	manyTokens := make([]string, 6000)
	for i := range manyTokens {
		manyTokens[i] = fmt.Sprintf("x%d", i)
	}
	for _, tc := range []struct {
		name       string
		allowTrace bool
		req        string
		want       int
		forwarded  bool
	}{
		{"connect", false, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, false},
		{"trace off", false, "TRACE / HTTP/1.1\r\nHost: app.test\r\n\r\n", 405, false},
		{"trace allowed", true, "TRACE / HTTP/1.1\r\nHost: app.test\r\n\r\n", 200, true},
		{"connection 6000 options", false, "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: " + strings.Join(manyTokens, ",") + "\r\n\r\n", 400, false},
		{"connection usual", false, "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, x-a\r\n\r\n", 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rl, pool := startReplica(t)
			r := newRig(t, Routes{Pools: []Pool{pool}}, func(c *Config) { c.Rules.AllowTrace = tc.allowTrace })
			code, _ := rawRoundTrip(t, r.url, tc.req)
			if code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
			if m, _ := rl.seen(); (len(m) > 0) != tc.forwarded {
				t.Fatalf("reached the replica: %v, want %v", m, tc.forwarded)
			}
		})
	}
}

func TestRequestRulesCheckAllocs(t *testing.T) {
	rr := DefaultConfig().Rules
	conn := []string{"keep-alive, Upgrade"}
	if n := testing.AllocsPerRun(100, func() { rr.Check(http.MethodGet, conn) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	h := http.Header{"Cookie": {"a=1; b=2"}}
	if n := testing.AllocsPerRun(100, func() { StripAdminCookies(h) }); n != 0 {
		t.Fatalf("%v allocations without an admin cookie", n)
	}
}

// TestAdminCookieNeverForwarded: on both forwarding paths (GET goes fast,
// POST through ReverseProxy).
func TestAdminCookieNeverForwarded(t *testing.T) {
	rl, pool := startReplica(t)
	r := newRig(t, Routes{Pools: []Pool{pool}}, nil)
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		req := m + " / HTTP/1.1\r\nHost: app.test\r\nCookie: a=1; tether_admin_session=secret; b=2\r\nCookie: tether_admin_csrf=z\r\nContent-Length: 0\r\n\r\n"
		if code, _ := rawRoundTrip(t, r.url, req); code != 200 {
			t.Fatalf("%s: status %d", m, code)
		}
	}
	if _, cookies := rl.seen(); len(cookies) != 2 || cookies[0] != "a=1; b=2" || cookies[1] != "a=1; b=2" {
		t.Fatalf("the replica saw cookies %q", cookies)
	}
}

func TestStripAdminCookies(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"tether_admin_session=x"}, nil},
		{[]string{"a=1;tether_admin_session=x;b=2"}, []string{"a=1; b=2"}},
		{[]string{"x_tether_admin_session=1"}, []string{"x_tether_admin_session=1"}},
		{[]string{"a=1", "tether_admin_csrf=q"}, []string{"a=1"}},
	} {
		h := http.Header{"Cookie": tc.in}
		StripAdminCookies(h)
		if got := h["Cookie"]; strings.Join(got, "|") != strings.Join(tc.want, "|") || (tc.want == nil && got != nil) {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSlowBodyCut: a body trickling a byte per 100 ms is cut (it never
// reaches MinBodyRate); one flowing at 1 KB/s for longer than BodyIdle
// goes through.
func TestSlowBodyCut(t *testing.T) {
	rl, pool := startReplica(t)
	r := newRig(t, Routes{Pools: []Pool{pool}}, func(c *Config) {
		c.Timeouts = Timeouts{BodyIdle: 300 * time.Millisecond, MinBodyRate: 100, WriteIdle: time.Minute}
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := make(chan struct{})
	defer close(stop)
	send := func(chunk int, every time.Duration, total int) error {
		c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
		if err != nil {
			return err
		}
		defer c.Close()
		go func() {
			select {
			case <-stop:
				c.Close()
			case <-time.After(30 * time.Second):
			}
		}()
		fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n", total)
		for sent := 0; sent < total; sent += chunk {
			if _, err := c.Write([]byte(strings.Repeat("x", chunk))); err != nil {
				return err
			}
			time.Sleep(every)
		}
		return nil
	}
	start := time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); _ = send(1, 100*time.Millisecond, 100) }() // 10 s if not cut
	select {
	case err := <-rl.bodyErr:
		if err == nil {
			t.Fatal("the trickling body was read to the end")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cut only after %v", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the trickling body was never cut")
	}
	if err := send(100, 100*time.Millisecond, 1500); err != nil { // 1.5 s, 5x BodyIdle
		t.Fatal(err)
	}
	select {
	case err := <-rl.bodyErr:
		if err != nil {
			t.Fatalf("a flowing upload was cut: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the flowing upload never arrived")
	}
}

// TestUnreadResponseCut: a client that stops reading a 50 MB response is
// cut after WriteIdle, so the replica's connection is freed; a client
// reading slowly but steadily gets the whole response.
func TestUnreadResponseCut(t *testing.T) {
	rl, pool := startReplica(t)
	r := newRig(t, Routes{Pools: []Pool{pool}}, func(c *Config) {
		c.Timeouts = Timeouts{BodyIdle: time.Minute, MinBodyRate: 1, WriteIdle: 300 * time.Millisecond}
	})
	c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
	// Read nothing.
	select {
	case err := <-rl.copyErr:
		if err == nil {
			t.Fatal("50 MB were written to a client that reads nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the unread response was never cut")
	}
	c2, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
	buf := make([]byte, 4<<20)
	var got int
	deadline := time.Now().Add(60 * time.Second)
	for got < 50<<20 && time.Now().Before(deadline) {
		_ = c2.SetReadDeadline(deadline)
		n, err := c2.Read(buf)
		got += n
		if err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // slow, steady reader
	}
	if got < 50<<20 {
		t.Fatalf("a reading client got %d bytes of 50 MiB", got)
	}
	if err := <-rl.copyErr; err != nil {
		t.Fatalf("replica: %v", err)
	}
}
