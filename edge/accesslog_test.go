package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tetherproxy/tether/proxy"
)

func entry() *proxy.AccessEntry {
	r := httptest.NewRequest(http.MethodGet, "https://shop.test/cart?id=7", nil)
	r.RemoteAddr = "203.0.113.5:4711"
	r.RequestURI = "/cart?id=7"
	r.Proto = "HTTP/2.0"
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, ServerName: "shop.test"}
	r.Header.Set("User-Agent", `curl/8 "quoted"`)
	r = r.WithContext(context.WithValue(r.Context(), peerKey{}, net.Addr(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 999})))
	return &proxy.AccessEntry{Request: r, Start: time.Date(2026, 12, 3, 8, 0, 0, 123456789, time.UTC), Duration: 1500 * time.Microsecond,
		Client: netip.MustParseAddr("203.0.113.5"), Status: 200, BytesIn: 0, BytesOut: 42, Pool: "default", Backend: "r1", Outcome: "hit"}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func TestAccessLogFormats(t *testing.T) {
	dir := t.TempDir()
	t.Run("json", func(t *testing.T) {
		p := filepath.Join(dir, "a.json")
		a, err := OpenAccessLog(p, "json", "node-1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.Log(entry())
		long := entry()
		long.Request.RequestURI = "/" + strings.Repeat("x", 5000)
		a.Log(long)
		_ = a.Close()
		lines := readLines(t, p)
		if len(lines) != 2 {
			t.Fatalf("%d lines", len(lines))
		}
		var m map[string]any
		if err := json.Unmarshal(lines[0], &m); err != nil {
			t.Fatalf("%v: %s", err, lines[0])
		}
		want := map[string]any{"time": "2026-12-03T08:00:00.123456789Z", "node": "node-1", "client": "203.0.113.5",
			"peer": "10.0.0.9:999", "host": "shop.test", "method": "GET", "uri": "/cart?id=7", "proto": "HTTP/2.0",
			"tls": "1.3", "sni": "shop.test", "status": 200.0, "bytes_in": 0.0, "bytes_out": 42.0, "duration_ms": 1.5,
			"pool": "default", "backend": "r1", "binding": "hit"}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
		if len(m) != len(want) {
			t.Errorf("fields %v", m)
		}
		if err := json.Unmarshal(lines[1], &m); err != nil || len(m["uri"].(string)) != maxURI {
			t.Fatalf("long URI not capped to %d: %v", maxURI, err)
		}
	})
	t.Run("combined", func(t *testing.T) {
		p := filepath.Join(dir, "a.log")
		a, err := OpenAccessLog(p, "combined", "node-1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.Log(entry())
		_ = a.Close()
		want := `203.0.113.5 - - [03/Dec/2026:08:00:00 +0000] "GET /cart?id=7 HTTP/2.0" 200 42 "" "curl/8 \"quoted\""`
		if got := string(readLines(t, p)[0]); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

// A writer that cannot keep up never delays Log: the lines past the queue
// are dropped and counted.
func TestAccessLogNeverBlocks(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader that never reads: the pipe fills and the writer blocks.
	rd, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenAccessLog(fifo, "json", "n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = AccessLogQueue + 4000
	e := entry()
	start := time.Now()
	for i := 0; i < n; i++ {
		a.Log(e)
	}
	took := time.Since(start)
	dropped := testutil.ToFloat64(a.dropped)
	// The pipe and the writer's buffer take ~128 KiB of lines (~400), the
	// queue AccessLogQueue; the rest must be dropped, not waited for.
	if dropped < n-AccessLogQueue-1000 {
		t.Fatalf("dropped %v of %d lines", dropped, n)
	}
	t.Logf("%d lines logged in %v against a stuck writer, %v dropped", n, took, dropped)
	_ = rd.Close() // the writer gets EPIPE and drains the queue; Close returns
	_ = a.Close()
}

func TestAccessLogReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "access.log")
	a, err := OpenAccessLog(p, "json", "n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Log(entry())
	waitFor(t, "the first line", func() bool { d, _ := os.ReadFile(p); return len(d) > 0 })
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Log(entry())
	waitFor(t, "a line in the new file", func() bool { d, _ := os.ReadFile(p); return len(d) > 0 })
	if n := len(readLines(t, p+".1")); n != 1 {
		t.Fatalf("rotated file has %d lines", n)
	}
}

// BenchmarkAccessLog measures the CPU a request's line costs: formatting
// on the request goroutine plus the writer goroutine's share, to a file.
// cpu-ns/req is the process's user+system CPU over the run per line.
func BenchmarkAccessLog(b *testing.B) {
	for _, format := range []string{"json", "combined"} {
		b.Run(format, func(b *testing.B) {
			a, err := OpenAccessLog(filepath.Join(b.TempDir(), "access.log"), format, "node-1", nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			e := entry()
			b.ReportAllocs()
			before := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.Log(e)
				if i%1024 == 0 {
					for len(a.queue) > AccessLogQueue/2 { // pace like requests would: no drops
						time.Sleep(50 * time.Microsecond)
					}
				}
			}
			_ = a.Close()
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/req")
			if d := testutil.ToFloat64(a.dropped); d > 0 {
				b.Logf("%v dropped", d)
			}
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
