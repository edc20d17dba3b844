package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// loadMillion fills a real DB with n bindings (as a full copy arrives):
// 4 hosts, 8 replicas, 5 origins.
func loadMillion(b *testing.B, n int) *stickydb.DB {
	b.Helper()
	db, err := stickydb.New(stickydb.DefaultConfig("bench"), t0)
	if err != nil {
		b.Fatal(err)
	}
	hosts := []string{"shop.example.com", "api.example.com", "www.example.org", "cart.example.net"}
	exp := t0.Add(30 * time.Minute).UnixMilli()
	recs := make([]stickydb.Record, 0, 10_000)
	for i := range n {
		k, err := stickydb.NewKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), hosts[i%len(hosts)])
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, stickydb.Record{Key: k, Binding: stickydb.Binding{
			Replica: fmt.Sprintf("r%d", i%8), Expiry: exp, Generation: 1, Origin: fmt.Sprintf("n%d", i%5)}})
		if len(recs) == cap(recs) || i == n-1 {
			if _, err := db.MergeRecords(recs, t0); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	return db
}

// BenchmarkBindingsPage1M: one filtered page of a node holding 1M
// bindings, through the whole handler (routing, security, Find, JSON or
// template). Target: < 200 ms per page for every filter.
func BenchmarkBindingsPage1M(b *testing.B) {
	db := loadMillion(b, 1_000_000)
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return t0 }
	s, err := New(cfg, Sources{Core: db})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	filters := []struct{ name, query string }{
		{"none", ""},
		{"client-ip", "client=10.3.2.1"},                        // one match: walks every shard
		{"client-miss", "client=192.0.2.1"},                     // no match at all: the worst case
		{"client+host", "client=10.3.2.1&host=api.example.com"}, // one lookup, no walk
		{"client-prefix16", "client=10.7.0.0/16"},               // 65k candidates
		{"host", "host=api.example.com"},                        // a quarter match
		{"backend", "backend=r3"},                               // an eighth match
		{"host+backend+prefix", "host=shop.example.com&backend=r0&client=10.2.0.0/16"},
	}
	for _, kind := range []string{"api", "html"} {
		for _, f := range filters {
			path := "/api/v1/bindings?" + f.query
			if kind == "html" {
				path = "/bindings?" + f.query
			}
			b.Run(kind+"/"+f.name, func(b *testing.B) {
				for b.Loop() {
					w := do(b, h, req{path: path})
					if w.Code != http.StatusOK {
						b.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
					}
				}
			})
		}
	}
}

// BenchmarkPages1M: the other pages and /metrics at 1M bindings. The
// per-replica counts (one table walk) are cached for CountTTL; "cold"
// forces the walk on every request, the cost a scrape pays once per TTL.
func BenchmarkPages1M(b *testing.B) {
	db := loadMillion(b, 1_000_000)
	var now time.Time
	for _, mode := range []string{"cached", "cold"} {
		cfg := DefaultConfig()
		now = t0
		cfg.Now = func() time.Time { return now }
		cfg.Registry = nil
		s, err := New(cfg, Sources{Core: db})
		if err != nil {
			b.Fatal(err)
		}
		h := s.Handler()
		for _, path := range []string{"/", "/vectors", "/backends", "/metrics", "/api/v1/vector", "/api/v1/backends"} {
			b.Run(mode+path, func(b *testing.B) {
				for b.Loop() {
					if mode == "cold" {
						now = now.Add(cfg.CountTTL) // the next request walks again
					}
					w := do(b, h, req{path: path})
					if w.Code != http.StatusOK {
						b.Fatalf("%s: %d", path, w.Code)
					}
				}
			})
		}
	}
}
