package web

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	// another package's collector on the same registry
	proxyRequests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_proxy_requests_total", Help: "test"}, []string{"backend", "code"})
	reg.MustRegister(proxyRequests)
	proxyRequests.WithLabelValues("r1", "200").Add(3)
	s := f.server(t, func(c *Config) { c.Registry = reg })
	if s.Registry() != reg {
		t.Fatal("Registry() is not the configured registry")
	}

	w := do(t, s.Handler(), req{path: "/metrics"})
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	for _, line := range []string{
		`tether_bindings_live 9`,
		`tether_bindings_held 9`,
		`tether_ready 1`,
		`tether_own_seq 6`,
		`tether_binding_events_total{kind="bind"} 6`,
		`tether_binding_events_total{kind="delete"} 0`,
		`tether_binding_expiries_total 0`,
		`tether_replication_groups_total{outcome="applied"} 1`,
		`tether_replication_groups_total{outcome="discarded"} 0`,
		`tether_replication_events_total{outcome="applied"} 3`,
		`tether_replication_refused_total{reason="malformed"} 0`,
		`tether_replication_requests_total{kind="full"} 0`,
		`tether_replication_requests_total{kind="origin"} 0`,
		`tether_replication_full_copies_total 0`,
		`tether_replication_lag_events{peer="b"} 6`,
		`tether_replication_peer_live{peer="b"} 1`,
		`tether_changelog_events{origin="a"} 6`,
		`tether_changelog_events{origin="b"} 3`,
		`tether_changelog_first_seq{origin="a"} 1`,
		`tether_gossip_groups_sent_total{peer="b"} 12`,
		`tether_gossip_groups_received_total{peer="b"} 9`,
		`tether_gossip_decode_errors_total{peer="b"} 1`,
		`tether_gossip_cap_breaches_total{peer="b"} 2`,
		`tether_backend_healthy{backend="r3",pool="shop"} 0`,
		`tether_backend_healthy{backend="r1",pool="shop"} 1`,
		`tether_backend_draining{backend="r1",pool="shop"} 0`,
		`tether_backend_bindings{backend="r1",pool="shop"} 5`,
		`tether_members{state="alive"} 2`,
		`tether_members{state="suspect"} 1`,
		`tether_proxy_requests_total{backend="r1",code="200"} 3`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	ch := make(chan prometheus.Metric, 1000)
	newCollector(s).Collect(ch)
	if n := len(ch); n < 40 {
		t.Errorf("only %d metrics", n)
	}

	// the collector reads at scrape time: a change shows at once
	if _, err := f.db.Delete(key(t, "10.0.0.1", "shop.test"), f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	f.ready = false
	body = do(t, s.Handler(), req{path: "/metrics"}).Body.String()
	for _, line := range []string{`tether_binding_events_total{kind="delete"} 1`, `tether_ready 0`} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("after change, metrics lack %q", line)
		}
	}
}

func TestMetricsDefaultRegistry(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, nil)
	body := do(t, s.Handler(), req{path: "/metrics"}).Body.String()
	for _, want := range []string{"go_goroutines", "tether_bindings_live"} {
		if !strings.Contains(body, want) {
			t.Errorf("default registry lacks %s", want)
		}
	}
	// registering twice on one registry is refused with an error, not a panic
	if _, err := New(DefaultConfig(), Sources{Core: f.db}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Registry = s.Registry()
	if _, err := New(cfg, Sources{Core: f.db}); err == nil {
		t.Error("a second admin on the same registry was accepted")
	}
}

func TestReplicaCountsCache(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, func(c *Config) { c.CountTTL = time.Second })
	if got := s.counts.get()["r2"]; got != 2 {
		t.Fatalf("r2: %d", got)
	}
	if _, _, err := f.db.Rebind(key(t, "10.0.0.1", "shop.test"), "", "r2", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if got := s.counts.get()["r2"]; got != 2 {
		t.Errorf("within TTL the count is reused: %d", got)
	}
	f.clk.Add(time.Second)
	if got := s.counts.get()["r2"]; got != 3 {
		t.Errorf("after TTL: %d, want 3", got)
	}
}

func TestCountsFollowOperatorChanges(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	count := func(name string) int {
		for _, b := range decode[[]BackendView](t, do(t, h, req{path: "/api/v1/backends"}).Body.Bytes()) {
			if b.Name == name {
				return b.Bindings
			}
		}
		return -1
	}
	if n := count("r1"); n != 5 {
		t.Fatalf("r1 %d", n)
	}
	do(t, h, req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1"})
	if n := count("r1"); n != 4 {
		t.Errorf("after delete r1 %d, want 4 at once", n)
	}
	do(t, h, req{method: "PUT", path: "/api/v1/bindings/shop.test/10.0.1.7", body: `{"replica":"r2"}`})
	if n1, n2 := count("r1"), count("r2"); n1 != 3 || n2 != 3 {
		t.Errorf("after rebind r1 %d r2 %d, want 3 3", n1, n2)
	}
}
