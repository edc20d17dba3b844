package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %T: %v in %s", v, err, body)
	}
	return v
}

func TestAPIBindingsFilters(t *testing.T) {
	f := newFixture(t)
	// one tombstone, to test deleted=1
	if _, err := f.db.Delete(key(t, "10.0.0.2", "shop.test"), t0); err != nil {
		t.Fatal(err)
	}
	h := f.server(t, nil).Handler()
	tests := []struct {
		name  string
		query string
		want  []string // "client host" of the rows, sorted
	}{
		{"all", "", []string{"10.0.0.1 api.test", "10.0.0.1 shop.test", "10.0.1.7 shop.test", "172.16.0.1 shop.test", "172.16.0.2 shop.test", "172.16.0.3 shop.test", "192.168.5.5 api.test", "2001:db8::1 shop.test"}},
		{"client ip", "client=10.0.0.1", []string{"10.0.0.1 api.test", "10.0.0.1 shop.test"}},
		{"client ip and host (lookup path)", "client=10.0.0.1&host=shop.test", []string{"10.0.0.1 shop.test"}},
		{"client ip, host, other backend", "client=10.0.0.1&host=shop.test&backend=r2", nil},
		{"client mapped ipv6", "client=::ffff:10.0.0.1&host=api.test", []string{"10.0.0.1 api.test"}},
		{"client prefix", "client=10.0.0.0/16", []string{"10.0.0.1 api.test", "10.0.0.1 shop.test", "10.0.1.7 shop.test"}},
		{"client prefix host bits masked", "client=10.0.1.99/24", []string{"10.0.1.7 shop.test"}},
		{"client ipv6 prefix", "client=2001:db8::/32", []string{"2001:db8::1 shop.test"}},
		{"host", "host=api.test", []string{"10.0.0.1 api.test", "192.168.5.5 api.test"}},
		{"host upper case and port", "host=API.test:8080", []string{"10.0.0.1 api.test", "192.168.5.5 api.test"}},
		{"backend", "backend=r1", []string{"10.0.0.1 shop.test", "10.0.1.7 shop.test", "172.16.0.1 shop.test", "172.16.0.2 shop.test", "172.16.0.3 shop.test"}},
		{"host and backend", "host=shop.test&backend=r2", []string{"2001:db8::1 shop.test"}},
		{"no match", "host=nowhere.test", nil},
		{"tombstones", "deleted=1&host=shop.test&client=10.0.0.0/24", []string{"10.0.0.1 shop.test", "10.0.0.2 shop.test"}},
		{"tombstone by lookup", "deleted=true&host=shop.test&client=10.0.0.2", []string{"10.0.0.2 shop.test"}},
		{"tombstone hidden by lookup", "host=shop.test&client=10.0.0.2", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, h, req{path: "/api/v1/bindings?" + tc.query})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			page := decode[BindingsPage](t, w.Body.Bytes())
			var got []string
			for _, b := range page.Bindings {
				got = append(got, b.Client+" "+b.Host)
				if b.Generation == 0 || b.Origin == "" || b.LocalExpiry == 0 || (!b.Deleted && (b.TimeLeft == "" || b.Replica == "")) {
					t.Errorf("incomplete row %+v", b)
				}
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestAPIBindingsRowFields(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	w := do(t, h, req{path: "/api/v1/bindings?client=192.168.5.5&host=api.test"})
	page := decode[BindingsPage](t, w.Body.Bytes())
	if len(page.Bindings) != 1 {
		t.Fatalf("rows %+v", page)
	}
	b := page.Bindings[0]
	want := BindingView{Client: "192.168.5.5", Host: "api.test", Replica: "a2", Generation: stickydb.BirthGeneration(t0), Origin: "a",
		Expiry: t0.UnixMilli() + 30*60*1000, LocalExpiry: t0.UnixMilli() + 37*60*1000 + 30*1000, TimeLeftMs: 37*60*1000 + 30*1000, TimeLeft: "37m 30s"}
	// the fixture binds at t0: announced for the TTL (30m), served here for
	// TTL + RefreshThreshold (7m 30s)
	if b != want {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}
}

func TestAPIBindingsPaging(t *testing.T) {
	f := newFixture(t)
	for i := range 300 {
		k := key(t, netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}).String(), "page.test")
		if _, _, err := f.db.BindIfAbsent(k, "r1", t0); err != nil {
			t.Fatal(err)
		}
	}
	h := f.server(t, nil).Handler()
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for ; pages < 100; pages++ { // bounded: 300/7 pages expected
		w := do(t, h, req{path: "/api/v1/bindings?host=page.test&limit=7&cursor=" + cursor})
		if w.Code != http.StatusOK {
			t.Fatalf("page %d: %d %s", pages, w.Code, w.Body)
		}
		p := decode[BindingsPage](t, w.Body.Bytes())
		if len(p.Bindings) > 7 {
			t.Fatalf("page of %d rows over limit 7", len(p.Bindings))
		}
		for _, b := range p.Bindings {
			if seen[b.Client] {
				t.Fatalf("row %s twice", b.Client)
			}
			seen[b.Client] = true
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(seen) != 300 {
		t.Errorf("paging saw %d bindings, want 300 (in %d pages)", len(seen), pages+1)
	}
}

func TestAPIBindingsBadInput(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	tests := []struct{ query, field string }{
		{"client=bogus", "client"},
		{"client=10.0.0.300", "client"},
		{"client=10.0.0.0/33", "client"},
		{"host=bad_host!", "host"},
		{"host=" + strings.Repeat("a", 300), "host"},
		{"backend=" + strings.Repeat("b", 300), "backend"},
		{"limit=0", "limit"},
		{"limit=abc", "limit"},
		{"limit=1001", "limit"},
		{"deleted=maybe", "deleted"},
		{"cursor=garbage", "cursor"},
		{"cursor=9999/10.0.0.1/shop.test", "cursor"},
	}
	for _, tc := range tests {
		t.Run(tc.query[:min(len(tc.query), 30)], func(t *testing.T) {
			w := do(t, h, req{path: "/api/v1/bindings?" + tc.query})
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", w.Code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q", ct)
			}
			e := decode[errorBody](t, w.Body.Bytes())
			if !strings.HasPrefix(e.Error, tc.field+":") {
				t.Errorf("error %q does not name field %q", e.Error, tc.field)
			}
		})
	}
}

func TestAPIBindingByKey(t *testing.T) {
	json := "application/json"
	tests := []struct {
		name         string
		method, path string
		body         string
		noBackends   bool
		wantStatus   int
		wantErr      string // substring of the error
		check        func(t *testing.T, f *fixture, b BindingView)
	}{
		{name: "get", path: "/api/v1/bindings/shop.test/10.0.0.1", wantStatus: 200, check: func(t *testing.T, f *fixture, b BindingView) {
			if b.Replica != "r1" || b.Client != "10.0.0.1" || b.Host != "shop.test" || b.Generation != stickydb.BirthGeneration(t0) || b.Origin != "a" {
				t.Errorf("%+v", b)
			}
		}},
		{name: "get ipv6", path: "/api/v1/bindings/shop.test/2001:db8::1", wantStatus: 200},
		{name: "get upper-case host", path: "/api/v1/bindings/SHOP.test/10.0.0.1", wantStatus: 200},
		{name: "get peer's binding", path: "/api/v1/bindings/shop.test/172.16.0.2", wantStatus: 200, check: func(t *testing.T, f *fixture, b BindingView) {
			if b.Origin != "b" {
				t.Errorf("origin %q, want b", b.Origin)
			}
		}},
		{name: "get missing", path: "/api/v1/bindings/shop.test/10.9.9.9", wantStatus: 404, wantErr: "no live binding"},
		{name: "get bad ip", path: "/api/v1/bindings/shop.test/10.0.0", wantStatus: 400, wantErr: "client:"},
		{name: "get bad host", path: "/api/v1/bindings/sh%20op/10.0.0.1", wantStatus: 400, wantErr: "host:"},
		{name: "get wait present", path: "/api/v1/bindings/shop.test/10.0.0.1?wait=30s", wantStatus: 200},
		{name: "get wait not a duration", path: "/api/v1/bindings/shop.test/10.0.0.1?wait=soon", wantStatus: 400, wantErr: "wait:"},
		{name: "get wait zero", path: "/api/v1/bindings/shop.test/10.0.0.1?wait=0s", wantStatus: 400, wantErr: "wait:"},
		{name: "get wait over the bound", path: "/api/v1/bindings/shop.test/10.0.0.1?wait=61s", wantStatus: 400, wantErr: "wait:"},
		{name: "delete", method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1", wantStatus: 200, check: func(t *testing.T, f *fixture, b BindingView) {
			if !b.Deleted || b.Generation != stickydb.BirthGeneration(t0)+1 {
				t.Errorf("tombstone %+v, want deleted at the next generation", b)
			}
			if got, _ := f.db.Lookup(key(t, "10.0.0.1", "shop.test")); !got.Deleted {
				t.Errorf("core still holds %+v", got)
			}
			if st := f.db.Stats(); st.Deletes != 1 {
				t.Errorf("deletes counted %d", st.Deletes)
			}
		}},
		{name: "delete missing", method: "DELETE", path: "/api/v1/bindings/shop.test/10.9.9.9", wantStatus: 404},
		{name: "delete bad ip", method: "DELETE", path: "/api/v1/bindings/shop.test/nope", wantStatus: 400, wantErr: "client:"},
		{name: "rebind", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", body: `{"replica":"r2"}`, wantStatus: 200, check: func(t *testing.T, f *fixture, b BindingView) {
			if b.Replica != "r2" || b.Generation != stickydb.BirthGeneration(t0)+1 || b.Origin != "a" {
				t.Errorf("%+v", b)
			}
			if got, _ := f.db.Lookup(key(t, "10.0.0.1", "shop.test")); got.Replica != "r2" {
				t.Errorf("core holds %+v", got)
			}
		}},
		{name: "put creates", method: "PUT", path: "/api/v1/bindings/shop.test/10.5.5.5", body: `{"replica":"r3"}`, wantStatus: 200, check: func(t *testing.T, f *fixture, b BindingView) {
			if b.Replica != "r3" {
				t.Errorf("%+v", b)
			}
		}},
		{name: "rebind to other pool's backend", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", body: `{"replica":"a1"}`, wantStatus: 400, wantErr: `replica: "a1" is not a backend of pool "shop"`},
		{name: "rebind default pool", method: "PUT", path: "/api/v1/bindings/other.test/10.0.0.1", body: `{"replica":"a2"}`, wantStatus: 200},
		{name: "rebind unknown backend", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", body: `{"replica":"zz"}`, wantStatus: 400, wantErr: "replica:"},
		{name: "rebind any name without proxy", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", body: `{"replica":"zz"}`, noBackends: true, wantStatus: 200},
		{name: "rebind empty replica", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", body: `{"replica":""}`, wantStatus: 400, wantErr: "replica: required"},
		{name: "rebind bad json", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", body: `{"replica":`, wantStatus: 400, wantErr: "body:"},
		{name: "rebind unknown field", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", body: `{"replica":"r2","x":1}`, wantStatus: 400, wantErr: "body:"},
		{name: "rebind no body", method: "PUT", path: "/api/v1/bindings/shop.test/10.0.0.1", wantStatus: 400, wantErr: "body:"},
		{name: "patch not allowed", method: "PATCH", path: "/api/v1/bindings/shop.test/10.0.0.1", wantStatus: 405, wantErr: "not allowed"},
		{name: "post on list not allowed", method: "POST", path: "/api/v1/bindings", wantStatus: 405},
		{name: "unknown api path", path: "/api/v1/nothing", wantStatus: 404, wantErr: "no such page"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.noBackends {
				f.backends = nil
			}
			src := f.sources()
			if tc.noBackends {
				src.Backends = nil
			}
			cfg := DefaultConfig()
			cfg.Now = f.clk.Now
			s, err := New(cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			w := do(t, s.Handler(), req{method: tc.method, path: tc.path, body: tc.body, headers: map[string]string{"Content-Type": json}})
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantErr != "" {
				if e := decode[errorBody](t, w.Body.Bytes()); !strings.Contains(e.Error, tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", e.Error, tc.wantErr)
				}
			}
			if tc.check != nil {
				tc.check(t, f, decode[BindingView](t, w.Body.Bytes()))
			}
		})
	}
}

func TestAPIDeleteThenGet(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	path := "/api/v1/bindings/api.test/192.168.5.5"
	steps := []struct {
		method string
		want   int
	}{{"GET", 200}, {"DELETE", 200}, {"GET", 404}, {"DELETE", 404}}
	for i, st := range steps {
		if w := do(t, h, req{method: st.method, path: path}); w.Code != st.want {
			t.Fatalf("step %d %s: %d, want %d: %s", i, st.method, w.Code, st.want, w.Body)
		}
	}
}

func TestAPIVector(t *testing.T) {
	f := newFixture(t)
	// "a" knows 3 events of b; b's last vector knows none of a's 6 events.
	h := f.server(t, nil).Handler()
	w := do(t, h, req{path: "/api/v1/vector"})
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	v := decode[VectorResponse](t, w.Body.Bytes())
	epoch, seq := f.db.Position()
	if v.Node != "a" || v.Epoch != epoch || v.Seq != seq || seq != 6 {
		t.Errorf("position %+v", v)
	}
	if got := v.Vector["a"]; len(got) != 1 || got[0].Seq != 6 || got[0].Epoch != epoch {
		t.Errorf("own entry %+v", got)
	}
	if got := v.Vector["b"]; len(got) != 1 || got[0].Seq != 3 {
		t.Errorf("b entry %+v", got)
	}
	if len(v.Table) != 1 || v.Table[0].Name != "b" || !v.Table[0].Live || v.Table[0].Lag != 6 {
		t.Errorf("table %+v", v.Table)
	}
	count, sum := f.db.Digest(t0, DefaultConfig().DigestMargin)
	if want := digestView(count, sum, DefaultConfig().DigestMargin); v.Digest != want || count != 9 || len(v.Digest.Sum) != 16 {
		t.Errorf("digest %+v, want %+v (count %d)", v.Digest, want, count)
	}
	if v.Len != f.db.Len() {
		t.Errorf("len %d, want %d", v.Len, f.db.Len())
	}

	// margin: an hour leaves out everything (all expire within 30m + threshold)
	w = do(t, h, req{path: "/api/v1/vector?margin=1h"})
	if v := decode[VectorResponse](t, w.Body.Bytes()); v.Digest.Count != 0 || v.Digest.MarginMs != 3600_000 {
		t.Errorf("margin 1h digest %+v", v.Digest)
	}
	for _, bad := range []string{"x", "-1s", "48h"} {
		if w := do(t, h, req{path: "/api/v1/vector?margin=" + bad}); w.Code != 400 || !strings.Contains(w.Body.String(), "margin") {
			t.Errorf("margin=%s: %d %s", bad, w.Code, w.Body)
		}
	}
}

func TestLag(t *testing.T) {
	own := stickydb.Vector{"a": {{Epoch: 10, Seq: 5}}, "b": {{Epoch: 1, Seq: 2}, {Epoch: 20, Seq: 7}}}
	tests := []struct {
		name  string
		other stickydb.Vector
		want  uint64
	}{
		{"empty", stickydb.Vector{}, 12},
		{"equal", own.Clone(), 0},
		{"behind", stickydb.Vector{"a": {{Epoch: 10, Seq: 3}}, "b": {{Epoch: 20, Seq: 7}}}, 2},
		{"old epoch only", stickydb.Vector{"a": {{Epoch: 10, Seq: 5}}, "b": {{Epoch: 1, Seq: 2}}}, 7},
		{"ahead", stickydb.Vector{"a": {{Epoch: 10, Seq: 9}}, "b": {{Epoch: 20, Seq: 9}}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lag(own, tc.other); got != tc.want {
				t.Errorf("lag %d, want %d", got, tc.want)
			}
		})
	}
}

func TestAPIMembers(t *testing.T) {
	f := newFixture(t)
	w := do(t, f.server(t, nil).Handler(), req{path: "/api/v1/members"})
	var raw []map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil || w.Code != 200 {
		t.Fatalf("%d %v %s", w.Code, err, w.Body)
	}
	if len(raw) != 3 {
		t.Fatalf("members %v", raw)
	}
	want := []string{"a 127.0.0.1:7946 alive", "b 127.0.0.2:7946 alive", "c 127.0.0.3:7946 suspect"}
	for i, m := range raw {
		if got := m["name"].(string) + " " + m["addr"].(string) + " " + m["state"].(string); got != want[i] {
			t.Errorf("member %d: %q, want %q", i, got, want[i])
		}
	}
	if raw[0]["self"] != true || raw[1]["lag"].(float64) != 6 {
		t.Errorf("self/lag: %v", raw)
	}

	t.Run("without membership: this node only", func(t *testing.T) {
		src := f.sources()
		src.Members = nil
		s, err := New(DefaultConfig(), src)
		if err != nil {
			t.Fatal(err)
		}
		ms := decode[[]MemberView](t, do(t, s.Handler(), req{path: "/api/v1/members"}).Body.Bytes())
		if len(ms) != 1 || ms[0].Name != "a" || ms[0].State != "alive" || !ms[0].Self {
			t.Errorf("%+v", ms)
		}
	})
}

func TestAPIBackends(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, nil)
	h := s.Handler()
	bs := decode[[]BackendView](t, do(t, h, req{path: "/api/v1/backends"}).Body.Bytes())
	got := map[string]int{}
	for _, b := range bs {
		got[b.Pool+"/"+b.Name] = b.Bindings
	}
	// r1: 10.0.0.1, 10.0.1.7 and b's three; r2: 10.0.0.2 and 2001:db8::1
	want := map[string]int{"shop/r1": 5, "shop/r2": 2, "shop/r3": 0, "default/a1": 1, "default/a2": 1}
	if len(got) != len(want) {
		t.Fatalf("backends %v", got)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d bindings, want %d", k, got[k], n)
		}
	}
	if bs[0].Pool != "default" || bs[0].URL == "" {
		t.Errorf("order or fields: %+v", bs[0])
	}

	tests := []struct {
		name, method, path string
		status             int
		wantDrain          string
	}{
		{"drain", "POST", "/api/v1/backends/r2/drain", 200, "shop/r2=true"},
		{"undrain", "POST", "/api/v1/backends/r2/undrain", 200, "shop/r2=false"},
		{"drain with pool", "POST", "/api/v1/backends/a1/drain?pool=default", 200, "default/a1=true"},
		{"wrong pool", "POST", "/api/v1/backends/a1/drain?pool=shop", 404, ""},
		{"unknown", "POST", "/api/v1/backends/zz/drain", 404, ""},
		{"get drain", "GET", "/api/v1/backends/r2/drain", 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.backends.drains = nil
			w := do(t, h, req{method: tc.method, path: tc.path})
			if w.Code != tc.status {
				t.Fatalf("%d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := strings.Join(f.backends.drains, ","); got != tc.wantDrain {
				t.Errorf("drain calls %q, want %q", got, tc.wantDrain)
			}
			if tc.status == 200 {
				b := decode[BackendStatus](t, w.Body.Bytes())
				if b.Draining != strings.HasSuffix(tc.wantDrain, "true") {
					t.Errorf("answer %+v", b)
				}
			}
		})
	}

	t.Run("ambiguous name", func(t *testing.T) {
		f.backends.list = append(f.backends.list, BackendStatus{Pool: "other", Hosts: []string{"o.test"}, Name: "r1", Healthy: true})
		defer func() { f.backends.list = f.backends.list[:len(f.backends.list)-1] }()
		if w := do(t, h, req{method: "POST", path: "/api/v1/backends/r1/drain"}); w.Code != 400 || !strings.Contains(w.Body.String(), "pool") {
			t.Errorf("%d %s", w.Code, w.Body)
		}
		if w := do(t, h, req{method: "POST", path: "/api/v1/backends/r1/drain?pool=other"}); w.Code != 200 {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})

	t.Run("reload", func(t *testing.T) {
		if w := do(t, h, req{method: "POST", path: "/api/v1/routes/reload"}); w.Code != 200 || f.backends.reloads != 1 {
			t.Errorf("%d %s reloads %d", w.Code, w.Body, f.backends.reloads)
		}
		f.backends.reloadErr = errors.New("routes.yaml: line 3: bad weight")
		defer func() { f.backends.reloadErr = nil }()
		w := do(t, h, req{method: "POST", path: "/api/v1/routes/reload"})
		if w.Code != 422 || !strings.Contains(w.Body.String(), "line 3") {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})

	t.Run("no proxy", func(t *testing.T) {
		src := f.sources()
		src.Backends = nil
		s, err := New(DefaultConfig(), src)
		if err != nil {
			t.Fatal(err)
		}
		h := s.Handler()
		if w := do(t, h, req{path: "/api/v1/backends"}); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
			t.Errorf("%d %q", w.Code, w.Body)
		}
		for _, p := range []string{"/api/v1/backends/r1/drain", "/api/v1/routes/reload"} {
			if w := do(t, h, req{method: "POST", path: p}); w.Code != 501 {
				t.Errorf("%s: %d", p, w.Code)
			}
		}
	})
}

func TestAPIChangelogGapsStatsNode(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()

	cl := decode[ChangelogResponse](t, do(t, h, req{path: "/api/v1/changelog"}).Body.Bytes())
	if cl.Own.Origin != "a" || cl.Own.Events != 6 || cl.Own.First != 1 || cl.Own.Last != 6 {
		t.Errorf("own log %+v", cl.Own)
	}
	if len(cl.Table) != 1 || cl.Table[0].Origin != "b" || cl.Table[0].Events != 3 || cl.TableEvents != 3 {
		t.Errorf("table %+v", cl)
	}

	gaps := decode[[]GapView](t, do(t, h, req{path: "/api/v1/gaps"}).Body.Bytes())
	if len(gaps) != 0 {
		t.Errorf("gaps %+v", gaps)
	}

	st := decode[StatsResponse](t, do(t, h, req{path: "/api/v1/stats"}).Body.Bytes())
	if st.Core["binds"] != 6 || st.Core["events_applied"] != 3 || st.Core["groups_applied"] != 1 || len(st.Peers) != 1 || st.Peers[0].DecodeErrors != 1 {
		t.Errorf("stats %+v", st)
	}

	n := decode[NodeView](t, do(t, h, req{path: "/api/v1/node"}).Body.Bytes())
	if n.Name != "a" || n.Version != "test" || !n.Ready || n.Uptime != "1m 30s" || n.Seq != 6 || n.Bindings != 9 {
		t.Errorf("node %+v", n)
	}
	if w := do(t, h, req{path: "/api/v1/"}); w.Code != 200 || !strings.Contains(w.Body.String(), "/api/v1/vector") {
		t.Errorf("index %d %s", w.Code, w.Body)
	}
}

func TestAPIGapsShowRequests(t *testing.T) {
	f := newFixture(t)
	// b makes events 4..6; a receives only 6: a hole, then a gap request.
	for i := range 3 {
		k := key(t, netip.AddrFrom4([4]byte{172, 17, 0, byte(i)}).String(), "shop.test")
		if _, _, err := f.peer.BindIfAbsent(k, "r2", t0); err != nil {
			t.Fatal(err)
		}
	}
	g := f.peer.OwnEvents(5, 10)
	if _, err := f.db.Receive(g, t0); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(stickydb.DefaultConfig("a").GapWait * 3)
	if reqs := f.db.Tick(f.clk.Now()); len(reqs) == 0 {
		t.Fatal("no gap request from Tick")
	}
	gaps := decode[[]GapView](t, do(t, f.server(t, nil).Handler(), req{path: "/api/v1/gaps"}).Body.Bytes())
	if len(gaps) == 0 || gaps[0].Origin != "b" || gaps[0].From != 4 || gaps[0].To < 5 || gaps[0].Asked != "b" || gaps[0].Stage != "origin" {
		t.Errorf("gaps %+v", gaps)
	}
}

func TestKicked(t *testing.T) {
	f := newFixture(t)
	kicks := 0
	src := f.sources()
	src.Core = Kicked(f.db, func() { kicks++ })
	cfg := DefaultConfig()
	cfg.Now = f.clk.Now
	s, err := New(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	steps := []struct {
		method, path, body string
		status, kicks      int
	}{
		{"GET", "/api/v1/bindings/shop.test/10.0.0.1", "", 200, 0},
		{"PUT", "/api/v1/bindings/shop.test/10.0.0.1", `{"replica":"r2"}`, 200, 1},
		{"DELETE", "/api/v1/bindings/shop.test/10.0.0.1", "", 200, 2},
		{"DELETE", "/api/v1/bindings/shop.test/10.0.0.1", "", 404, 2},
	}
	for i, st := range steps {
		w := do(t, h, req{method: st.method, path: st.path, body: st.body})
		if w.Code != st.status || kicks != st.kicks {
			t.Fatalf("step %d: %d kicks %d, want %d kicks %d", i, w.Code, kicks, st.status, st.kicks)
		}
	}
}

// TestAPIBindingWait: a blocking GET answers once the binding is merged
// from a peer (not at its deadline), 404 at the deadline when nothing
// comes, ends with the client, and refuses past maxBindingWaiters.
func TestAPIBindingWait(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(ctx context.Context, path string) (int, time.Duration, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return 0, 0, err
		}
		r.Host = "127.0.0.1:9090"
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return 0, 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(t0), nil
	}

	// Merged from the peer while the request waits.
	type answer struct {
		code int
		took time.Duration
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		c, d, err := get(context.Background(), "/api/v1/bindings/shop.test/172.16.9.9?wait=20s")
		done <- answer{c, d, err}
	}()
	time.Sleep(200 * time.Millisecond) // the request is waiting (not a wait for a condition: the answer must not come before the merge)
	select {
	case a := <-done:
		t.Fatalf("answered before the binding existed: %+v", a)
	default:
	}
	if _, _, err := f.peer.BindIfAbsent(key(t, "172.16.9.9", "shop.test"), "r2", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Receive(f.peer.OwnEvents(3, 100), t0); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil || a.code != http.StatusOK {
		t.Fatalf("after the merge: %+v, want 200", a)
	}
	if a.took > 10*time.Second {
		t.Errorf("answered after %v: at the deadline, not at the merge", a.took)
	}

	// Nothing comes: 404 at the deadline.
	if c, d, err := get(context.Background(), "/api/v1/bindings/shop.test/172.16.9.10?wait=100ms"); err != nil || c != http.StatusNotFound || d < 100*time.Millisecond {
		t.Errorf("absent key: %d after %v (%v), want 404 after 100ms", c, d, err)
	}

	// The client gives up: the handler ends and frees its slot.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, _, err := get(ctx, "/api/v1/bindings/shop.test/172.16.9.11?wait=1m")
	cancel()
	if err == nil {
		t.Error("a canceled wait answered")
	}
	for deadline := time.Now().Add(5 * time.Second); len(s.bindWaiters) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a canceled wait still holds its slot after 5 s")
		}
	}

	// Full: 503 at once.
	for range maxBindingWaiters {
		s.bindWaiters <- struct{}{}
	}
	if c, _, err := get(context.Background(), "/api/v1/bindings/shop.test/172.16.9.12?wait=1m"); err != nil || c != http.StatusServiceUnavailable {
		t.Errorf("with every slot taken: %d (%v), want 503", c, err)
	}
	for range maxBindingWaiters {
		<-s.bindWaiters
	}
}
