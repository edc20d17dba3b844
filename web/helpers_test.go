package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// t0 is the tests' fixed clock.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func key(t testing.TB, ip, host string) stickydb.Key {
	t.Helper()
	k, err := stickydb.NewKey(netip.MustParseAddr(ip), host)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fixture is a real stickydb.DB named "a", with a few bindings of its own
// and events received from a peer "b" (so the vector table has a row),
// plus fakes for the parts not on main yet.
type fixture struct {
	clk       *clock
	db        *stickydb.DB
	peer      *stickydb.DB
	members   *fakeMembers
	backends  *fakeBackends
	transport *fakeTransport
	ready     bool
	start     time.Time
}

// seedBindings are the fixture's own bindings: client, host, replica.
var seedBindings = [][3]string{
	{"10.0.0.1", "shop.test", "r1"},
	{"10.0.0.2", "shop.test", "r2"},
	{"10.0.1.7", "shop.test", "r1"},
	{"10.0.0.1", "api.test", "a1"},
	{"192.168.5.5", "api.test", "a2"},
	{"2001:db8::1", "shop.test", "r2"},
}

func newFixture(t testing.TB) *fixture { return newFixtureAt(t, t0) }

// newFixtureAt builds the fixture at another time (the browser test needs
// the real clock: the browser checks cookie expiry against it).
func newFixtureAt(t testing.TB, t0 time.Time) *fixture {
	t.Helper()
	f := &fixture{clk: &clock{now: t0}, ready: true, start: t0.Add(-90 * time.Second)}
	var err error
	if f.db, err = stickydb.New(stickydb.DefaultConfig("a"), t0); err != nil {
		t.Fatal(err)
	}
	for _, b := range seedBindings {
		if _, _, err := f.db.BindIfAbsent(key(t, b[0], b[1]), b[2], t0); err != nil {
			t.Fatal(err)
		}
	}
	if f.peer, err = stickydb.New(stickydb.DefaultConfig("b"), t0); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ip := fmt.Sprintf("172.16.0.%d", i+1)
		if _, _, err := f.peer.BindIfAbsent(key(t, ip, "shop.test"), "r1", t0); err != nil {
			t.Fatal(err)
		}
	}
	f.db.SetPeers([]string{"b"}, t0)
	if _, err := f.db.Receive(f.peer.OwnEvents(0, 100), t0); err != nil {
		t.Fatal(err)
	}
	f.members = &fakeMembers{list: []Member{
		{Name: "a", Addr: "127.0.0.1:7946", State: "alive"},
		{Name: "b", Addr: "127.0.0.2:7946", State: "alive"},
		{Name: "c", Addr: "127.0.0.3:7946", State: "suspect"},
	}}
	f.backends = &fakeBackends{list: []BackendStatus{
		{Pool: "shop", Hosts: []string{"shop.test"}, Name: "r1", URL: "http://127.0.0.1:8001", Weight: 1, Healthy: true},
		{Pool: "shop", Hosts: []string{"shop.test"}, Name: "r2", URL: "http://127.0.0.1:8002", Weight: 2, Healthy: true},
		{Pool: "shop", Hosts: []string{"shop.test"}, Name: "r3", URL: "http://127.0.0.1:8003", Weight: 1, Healthy: false, LastError: "connection refused"},
		{Pool: "default", Name: "a1", URL: "http://127.0.0.1:8101", Weight: 1, Healthy: true},
		{Pool: "default", Name: "a2", URL: "http://127.0.0.1:8102", Weight: 1, Healthy: true},
	}}
	f.transport = &fakeTransport{list: []PeerStats{{Peer: "b", GroupsSent: 12, GroupsReceived: 9, DecodeErrors: 1, CapBreaches: 2}}}
	return f
}

func (f *fixture) sources() Sources {
	return Sources{
		Core: f.db, Members: f.members, Backends: f.backends, Transport: f.transport,
		Node: NodeInfo{Version: "test", Started: f.start, Ready: func() bool { return f.ready },
			ReadyWhy: func() string {
				if f.ready {
					return "caught up"
				}
				return "catching up"
			},
			ReadyBehind: func() string { return "c epoch 1: 0 of 3 events; live peers claim 3 (b); gap: third, asked b" },
		},
	}
}

// server builds a Server on the fixture; mod adjusts the config.
func (f *fixture) server(t testing.TB, mod func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	if f.clk != nil {
		cfg.Now = f.clk.Now
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, f.sources())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fakeMembers struct {
	mu   sync.Mutex
	list []Member
}

func (m *fakeMembers) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Member(nil), m.list...)
}

type fakeBackends struct {
	mu        sync.Mutex
	list      []BackendStatus
	reloadErr error
	reloads   int
	drains    []string
}

func (b *fakeBackends) Backends() []BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]BackendStatus(nil), b.list...)
}

func (b *fakeBackends) SetDrain(pool, name string, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.list {
		if b.list[i].Pool == pool && b.list[i].Name == name {
			b.list[i].Draining = on
			b.drains = append(b.drains, fmt.Sprintf("%s/%s=%v", pool, name, on))
			return nil
		}
	}
	return errors.New("no such backend")
}

func (b *fakeBackends) Reload() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reloads++
	return b.reloadErr
}

type fakeTransport struct{ list []PeerStats }

func (t *fakeTransport) PeerStats() []PeerStats { return append([]PeerStats(nil), t.list...) }

// req describes one request to the handler.
type req struct {
	method, path, body string
	host               string // default 127.0.0.1:9090
	remote             string // default httptest's 192.0.2.1:1234
	headers            map[string]string
	cookies            []*http.Cookie
}

func do(t testing.TB, h http.Handler, r req) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	hr.Host = "127.0.0.1:9090"
	if r.host != "" {
		hr.Host = r.host
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

func msDur(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
