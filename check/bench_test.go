package check

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// BenchmarkClosedLoop measures the load engine's own cost per request
// against a trivial in-process server (ns/op and allocs/op are per
// request, server included).
func BenchmarkClosedLoop(b *testing.B) {
	ln := mustListen(b)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Backend", "b1")
		_, _ = w.Write([]byte("ok\n"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Targets = []string{ln.Addr().String()}
	cfg.Clients = 8
	cfg.Duration = time.Hour
	cfg.Requests = int64(b.N)
	k, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	r, err := k.Run(context.Background())
	if err != nil || r.OK != uint64(b.N) {
		b.Fatalf("ok %d of %d: %v %v", r.OK, b.N, err, r.ErrorsByKind)
	}
}
