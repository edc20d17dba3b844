package web

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tetherproxy/tether/stickydb"
)

// has fails unless every pattern occurs in body.
func has(t *testing.T, body string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !strings.Contains(body, p) {
			t.Errorf("page lacks %q", p)
		}
	}
}

func TestPages(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/", 200, []string{`id="nav-overview" href="/" aria-current="page"`, `id="ov-node">a<`, `id="ov-uptime">1m 30s<`,
			`data-member="c" data-state="suspect"`, `badge state-suspect`, `data-pool="shop"`, `data-backend="r3" data-healthy="false"`,
			`id="ov-bindings">9<`, `data-counter="binds"`, `data-peer="b"`, `id="live-toggle"`, `id="node-ready" data-ready="true"`}},
		{"/bindings", 200, []string{`id="bindings-search"`, `id="bindings-table"`, `data-client="10.0.0.1" data-host="shop.test" data-replica="r1"`,
			`data-action="delete"`, `data-action="rebind"`, `<option value="r2"`, `37m 30s`, `<option value="r1">`}},
		{"/bindings?client=192.168.5.5&host=api.test", 200, []string{`data-client="192.168.5.5" data-host="api.test" data-replica="a2"`, `id="bindings-count" data-count="1"`}},
		{"/bindings?host=none.test", 200, []string{`id="bindings-empty"`, "this filter"}},
		{"/bindings?client=nope", 400, []string{`id="bindings-error"`, "client: &#34;nope&#34; is not an IP address or CIDR prefix", `value="nope"`}},
		{"/bindings?limit=2", 200, []string{`id="page-next"`, `data-count="2"`, `<option value="2" selected>2</option>`}},
		{"/vectors", 200, []string{`id="vector-matrix"`, `data-row="b"`, `class="cell none" data-row="b" data-origin="a"`, `data-seq="6"`,
			`class="cell ok" data-row="a" data-origin="b"`, `data-lag="6"`, `id="changelog-table"`, `data-log="table" data-origin="b"`, `id="gaps-empty"`}},
		{"/backends", 200, []string{`id="routes-reload"`, `data-pool="shop" data-backend="r1"`, `data-action="drain"`, "connection refused"}},
		{"/nothing", 404, []string{`id="error" data-status="404"`}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			w := do(t, h, req{path: tc.path})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
			has(t, w.Body.String(), tc.want...)
			if regexp.MustCompile(`(?i)<script>|\sstyle=|\son[a-z]+=`).MatchString(w.Body.String()) {
				t.Error("inline script, style or handler: the CSP would block it")
			}
		})
	}
}

func TestPagePaging(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	seen := map[string]bool{}
	path := "/bindings?limit=3"
	next := regexp.MustCompile(`href="([^"]*)" class="button" id="page-next"`)
	row := regexp.MustCompile(`<tr data-client="([^"]*)" data-host="([^"]*)"`)
	for i := 0; i < 10 && path != ""; i++ {
		body := do(t, h, req{path: path}).Body.String()
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			seen[m[1]+" "+m[2]] = true
		}
		path = ""
		if m := next.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
			if !strings.Contains(path, "limit=3") {
				t.Fatalf("next link lost the filter: %s", path)
			}
		}
	}
	if len(seen) != 9 {
		t.Errorf("pages showed %d bindings, want 9: %v", len(seen), seen)
	}
}

func TestPartialRender(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	w := do(t, h, req{path: "/vectors", headers: map[string]string{"X-Tether-Partial": "1"}})
	body := w.Body.String()
	if w.Code != 200 || strings.Contains(body, "<html") || !strings.Contains(body, `id="vector-matrix"`) {
		t.Errorf("partial: %d %s", w.Code, body)
	}
}

func TestEscaping(t *testing.T) {
	f := newFixture(t)
	f.backends.list = append(f.backends.list, BackendStatus{Pool: "x<script>", Name: `"><img src=x onerror=alert(1)>`, URL: "javascript:alert(1)", Healthy: true})
	h := f.server(t, nil).Handler()
	for _, p := range []string{"/", "/backends", "/bindings"} {
		body := do(t, h, req{path: p}).Body.String()
		if strings.Contains(body, "<img src=x") || strings.Contains(body, "x<script>") {
			t.Errorf("%s: unescaped backend name", p)
		}
	}
	// flash subjects are escaped too
	body := do(t, h, req{path: "/bindings?done=deleted&subject=<b>x</b>"}).Body.String()
	if strings.Contains(body, "<b>x</b>") || !strings.Contains(body, `id="flash"`) {
		t.Error("flash subject not escaped or not shown")
	}
}

func TestForms(t *testing.T) {
	t.Run("delete", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.do(req{path: "/bindings?host=shop.test"})
		r := b.do(req{method: "POST", path: "/bindings/delete", headers: formCT,
			body: form("_csrf", b.csrf, "host", "shop.test", "client", "10.0.1.7", "return", "/bindings?host=shop.test")})
		if r.code != 303 {
			t.Fatalf("%d %s", r.code, r.body)
		}
		loc := r.header.Get("Location")
		if !strings.HasPrefix(loc, "/bindings?") || !strings.Contains(loc, "host=shop.test") || !strings.Contains(loc, "done=deleted") {
			t.Errorf("location %q", loc)
		}
		page := b.do(req{path: loc})
		has(t, page.body, `id="flash" data-kind="ok"`, "Deleted the binding of 10.0.1.7")
		if strings.Contains(page.body, `data-client="10.0.1.7"`) {
			t.Error("deleted binding still listed")
		}
		if got, _ := f.db.Lookup(key(t, "10.0.1.7", "shop.test")); !got.Deleted || got.Generation != stickydb.BirthGeneration(t0)+1 {
			t.Errorf("core %+v", got)
		}
		// again: gone already
		r = b.do(req{method: "POST", path: "/bindings/delete", headers: formCT, body: form("_csrf", b.csrf, "host", "shop.test", "client", "10.0.1.7")})
		if r.code != 404 || !strings.Contains(r.body, `id="error-message"`) {
			t.Errorf("second delete %d", r.code)
		}
	})
	t.Run("rebind", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.do(req{path: "/bindings"})
		r := b.do(req{method: "POST", path: "/bindings/rebind", headers: formCT,
			body: form("_csrf", b.csrf, "host", "shop.test", "client", "10.0.0.1", "replica", "r3", "return", "//evil.example/")})
		if r.code != 303 || !strings.HasPrefix(r.header.Get("Location"), "/bindings?done=rebound") {
			t.Fatalf("%d %v", r.code, r.header.Get("Location"))
		}
		if got, _ := f.db.Lookup(key(t, "10.0.0.1", "shop.test")); got.Replica != "r3" || got.Generation != stickydb.BirthGeneration(t0)+1 {
			t.Errorf("core %+v", got)
		}
		r = b.do(req{method: "POST", path: "/bindings/rebind", headers: formCT,
			body: form("_csrf", b.csrf, "host", "shop.test", "client", "10.0.0.1", "replica", "a1")})
		if r.code != 400 || !strings.Contains(r.body, "replica:") {
			t.Errorf("rebind to other pool: %d", r.code)
		}
		r = b.do(req{method: "POST", path: "/bindings/rebind", headers: formCT,
			body: form("_csrf", b.csrf, "host", "shop.test", "client", "x", "replica", "r1")})
		if r.code != 400 {
			t.Errorf("bad client: %d", r.code)
		}
	})
	t.Run("drain and reload", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.do(req{path: "/backends"})
		r := b.do(req{method: "POST", path: "/backends/drain", headers: formCT, body: form("_csrf", b.csrf, "pool", "shop", "name", "r2", "drain", "1", "return", "/backends")})
		if r.code != 303 || !strings.Contains(r.header.Get("Location"), "done=drained") {
			t.Fatalf("%d %v", r.code, r.header)
		}
		page := b.do(req{path: "/backends"})
		has(t, page.body, `data-pool="shop" data-backend="r2" data-healthy="true" data-draining="true"`, `data-action="undrain"`)
		r = b.do(req{method: "POST", path: "/backends/drain", headers: formCT, body: form("_csrf", b.csrf, "pool", "shop", "name", "r2", "drain", "0")})
		if r.code != 303 || strings.Join(f.backends.drains, ",") != "shop/r2=true,shop/r2=false" {
			t.Errorf("%d %v", r.code, f.backends.drains)
		}
		r = b.do(req{method: "POST", path: "/backends/drain", headers: formCT, body: form("_csrf", b.csrf, "pool", "shop", "name", "zz", "drain", "1")})
		if r.code != 404 {
			t.Errorf("unknown backend: %d", r.code)
		}
		r = b.do(req{method: "POST", path: "/routes/reload", headers: formCT, body: form("_csrf", b.csrf)})
		if r.code != 303 || f.backends.reloads != 1 {
			t.Errorf("reload %d %d", r.code, f.backends.reloads)
		}
	})
}

func TestBuildMatrix(t *testing.T) {
	own := stickydb.Vector{"a": {{Epoch: 10, Seq: 500}}, "b": {{Epoch: 20, Seq: 7}}}
	table := []stickydb.PeerInfo{
		{Name: "b", Live: true, Vector: stickydb.Vector{"a": {{Epoch: 10, Seq: 300}}, "b": {{Epoch: 20, Seq: 9}}}},
		{Name: "c", Live: false, Vector: stickydb.Vector{"a": {{Epoch: 5, Seq: 900}}, "c": {{Epoch: 30, Seq: 1}}}},
	}
	m := buildMatrix("a", own, table)
	if strings.Join(m.Origins, ",") != "a,b,c" || len(m.Rows) != 3 {
		t.Fatalf("%+v", m)
	}
	got := map[string]string{}
	for _, r := range m.Rows {
		for _, c := range r.Cells {
			got[r.Name+"/"+c.Origin] = c.Class
		}
	}
	want := map[string]string{
		"a/a": "ok", "a/b": "lag", "a/c": "none",
		"b/a": "lag-high", "b/b": "ok", "b/c": "none",
		"c/a": "old", "c/b": "none", "c/c": "ok",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if m.Rows[1].Lag != 200 || m.Rows[1].Cells[0].Behind != 200 || m.Rows[0].Cells[1].Behind != 2 {
		t.Errorf("lag %+v", m.Rows)
	}
}

func TestHumanLeft(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{0, "expired"}, {-5, "expired"}, {400, "0s"}, {45_000, "45s"}, {724_000, "12m 04s"},
		{3_720_000, "1h 02m"}, {90_000_000, "1d 01h"},
	}
	for _, tc := range tests {
		if got := humanLeft(msDur(tc.ms)); got != tc.want {
			t.Errorf("%d ms: %q, want %q", tc.ms, got, tc.want)
		}
	}
}

func TestStatic(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	for p, ct := range map[string]string{"/static/app.js": "text/javascript", "/static/app.css": "text/css", "/static/favicon.svg": "image/svg+xml"} {
		w := do(t, h, req{path: p + "?v=1"})
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ct) || !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %v", p, w.Code, w.Header())
		}
	}
	if w := do(t, h, req{path: "/static/nothing.js"}); w.Code != 404 {
		t.Errorf("missing asset: %d", w.Code)
	}
}
