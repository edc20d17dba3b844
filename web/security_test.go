package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

const testToken = "s3cret-token-0123456789"

var metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// browser is a cookie jar plus the CSRF token of the last page, enough to
// act as a logged-in browser against the handler.
type browser struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
	csrf    string
}

func newBrowser(t *testing.T, h http.Handler) *browser {
	return &browser{t: t, h: h, cookies: map[string]*http.Cookie{}}
}

func (b *browser) do(r req) *httpResult {
	b.t.Helper()
	for _, c := range b.cookies {
		r.cookies = append(r.cookies, c)
	}
	w := do(b.t, b.h, r)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	if m := metaCSRF.FindStringSubmatch(w.Body.String()); m != nil {
		b.csrf = m[1]
	}
	return &httpResult{code: w.Code, body: w.Body.String(), header: w.Header(), cookies: w.Result().Cookies()}
}

type httpResult struct {
	code    int
	body    string
	header  http.Header
	cookies []*http.Cookie
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

var formCT = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

func withToken(c *Config) { c.Token = testToken }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr error
		field   string
	}{
		{"defaults", func(c *Config) {}, nil, ""},
		{"loopback v4", func(c *Config) { c.Listen = "127.0.0.1:0" }, nil, ""},
		{"loopback other", func(c *Config) { c.Listen = "127.3.2.1:0" }, nil, ""},
		{"loopback v6", func(c *Config) { c.Listen = "[::1]:0" }, nil, ""},
		{"localhost", func(c *Config) { c.Listen = "localhost:0" }, nil, ""},
		{"wildcard without token", func(c *Config) { c.Listen = "0.0.0.0:9090" }, ErrNoToken, ""},
		{"empty host without token", func(c *Config) { c.Listen = ":9090" }, ErrNoToken, ""},
		{"v6 wildcard without token", func(c *Config) { c.Listen = "[::]:9090" }, ErrNoToken, ""},
		{"lan address without token", func(c *Config) { c.Listen = "10.1.2.3:9090" }, ErrNoToken, ""},
		{"name without token", func(c *Config) { c.Listen = "admin.example.com:9090" }, ErrNoToken, ""},
		{"wildcard with token", func(c *Config) { c.Listen = "0.0.0.0:9090"; c.Token = testToken }, nil, ""},
		{"bad listen", func(c *Config) { c.Listen = "9090" }, ErrConfig, "Listen"},
		{"short token", func(c *Config) { c.Token = "short" }, ErrConfig, "Token"},
		{"token with space", func(c *Config) { c.Token = "abc def ghi jkl mno" }, ErrConfig, "Token"},
		{"allowed host with port", func(c *Config) { c.AllowedHosts = []string{"a.example:80"} }, ErrConfig, "AllowedHosts"},
		{"allowed host url", func(c *Config) { c.AllowedHosts = []string{"http://a.example"} }, ErrConfig, "AllowedHosts"},
		{"zero refresh", func(c *Config) { c.Refresh = 0 }, ErrConfig, "Refresh"},
		{"page size", func(c *Config) { c.PageSize = 0 }, ErrConfig, "PageSize"},
		{"max page size", func(c *Config) { c.MaxPageSize = 20_000 }, ErrConfig, "PageSize"},
		{"negative margin", func(c *Config) { c.DigestMargin = -time.Second }, ErrConfig, "DigestMargin"},
		{"auth rate", func(c *Config) { c.FailedAuthRate = 0 }, ErrConfig, "FailedAuthRate"},
	}
	f := newFixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			_, err := New(cfg, f.sources())
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
	t.Run("no core", func(t *testing.T) {
		if _, err := New(DefaultConfig(), Sources{}); !errors.Is(err, ErrNoCore) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("refusal message is clear", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Listen = "0.0.0.0:9090"
		_, err := New(cfg, f.sources())
		if err == nil || !strings.Contains(err.Error(), "TETHER_ADMIN_TOKEN") || !strings.Contains(err.Error(), "0.0.0.0:9090") {
			t.Errorf("message %q", err)
		}
	})
}

func TestAuthRequired(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, withToken).Handler()
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	tests := []struct {
		name     string
		r        req
		status   int
		location string // for redirects
	}{
		{"api without token", req{path: "/api/v1/bindings"}, 401, ""},
		{"api wrong token", req{path: "/api/v1/bindings", headers: map[string]string{"Authorization": "Bearer wrong-token-0123456789"}}, 401, ""},
		{"api token prefix", req{path: "/api/v1/bindings", headers: map[string]string{"Authorization": "Bearer " + testToken[:10]}}, 401, ""},
		{"api basic scheme", req{path: "/api/v1/bindings", headers: map[string]string{"Authorization": "Basic " + testToken}}, 401, ""},
		{"api bearer", req{path: "/api/v1/bindings", headers: bearer}, 200, ""},
		{"api bearer lower-case scheme", req{path: "/api/v1/vector", headers: map[string]string{"Authorization": "bearer " + testToken}}, 200, ""},
		{"vector without token", req{path: "/api/v1/vector"}, 401, ""},
		{"members without token", req{path: "/api/v1/members"}, 401, ""},
		{"delete without token", req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1"}, 401, ""},
		{"delete with bearer, no csrf", req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1", headers: bearer}, 200, ""},
		{"curl -d '' with bearer", req{method: "POST", path: "/api/v1/backends/r1/drain", body: "", headers: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/x-www-form-urlencoded"}}, 200, ""},
		{"metrics without token", req{path: "/metrics"}, 401, ""},
		{"metrics bearer", req{path: "/metrics", headers: bearer}, 200, ""},
		{"page redirects to login", req{path: "/bindings?host=shop.test"}, 303, "/login?next=%2Fbindings%3Fhost%3Dshop.test"},
		{"overview redirects", req{path: "/"}, 303, "/login?next=%2F"},
		{"page bearer", req{path: "/vectors", headers: bearer}, 200, ""},
		{"form post without auth", req{method: "POST", path: "/bindings/delete", body: form("host", "shop.test", "client", "10.0.0.1"), headers: formCT}, 401, ""},
		{"healthz open", req{path: "/healthz"}, 200, ""},
		{"readyz open", req{path: "/readyz"}, 200, ""},
		{"static open", req{path: "/static/app.css"}, 200, ""},
		{"login page open", req{path: "/login"}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, h, tc.r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.location != "" && w.Header().Get("Location") != tc.location {
				t.Errorf("location %q, want %q", w.Header().Get("Location"), tc.location)
			}
			if tc.status == 401 {
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("no WWW-Authenticate: %v", w.Header())
				}
				if ct := w.Header().Get("Content-Type"); isHTMLPath(tc.r.path) {
					if strings.Contains(w.Body.String(), "epoch") || strings.Contains(w.Body.String(), `id="nav-`) {
						t.Errorf("a 401 page shows the node's details: %s", w.Body)
					}
				} else if !strings.HasPrefix(ct, "application/json") || !strings.Contains(w.Body.String(), `"error"`) {
					t.Errorf("401 body %q (%s)", w.Body, ct)
				}
			}
		})
	}
	if got, _ := f.db.Lookup(key(t, "10.0.0.1", "shop.test")); !got.Deleted {
		t.Errorf("the bearer DELETE did not delete: %+v", got)
	}
}

func TestFailedAuthRateLimited(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, func(c *Config) { withToken(c); c.FailedAuthRate = 0.001; c.FailedAuthBurst = 3 }).Handler()
	var codes []int
	for range 5 {
		codes = append(codes, do(t, h, req{path: "/api/v1/vector", headers: map[string]string{"Authorization": "Bearer nope-nope-nope-nope"}}).Code)
	}
	if codes[0] != 401 || codes[2] != 401 || codes[3] != 429 || codes[4] != 429 {
		t.Errorf("codes %v, want 3x401 then 429", codes)
	}
	// Limited before the comparison: the right token from the same
	// address is refused too, so guessing past the limit learns nothing.
	if w := do(t, h, req{path: "/api/v1/vector", headers: map[string]string{"Authorization": "Bearer " + testToken}}); w.Code != 429 {
		t.Errorf("right token after limit: %d, want 429", w.Code)
	}
	// Another address is not limited.
	if w := do(t, h, req{path: "/api/v1/vector", remote: "192.0.2.77:4000", headers: map[string]string{"Authorization": "Bearer " + testToken}}); w.Code != 200 {
		t.Errorf("right token from another address: %d", w.Code)
	}
	// and so are wrong logins
	b := newBrowser(t, h)
	b.do(req{path: "/login"})
	if r := b.do(req{method: "POST", path: "/login", body: form("token", "wrong-wrong-wrong", "_csrf", b.csrf), headers: formCT}); r.code != 429 {
		t.Errorf("login after limit: %d", r.code)
	}
}

func TestHostAndOrigin(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, func(c *Config) { c.AllowedHosts = []string{"admin.example.com", "*.ops.example.net"} }).Handler()
	tests := []struct {
		name   string
		r      req
		status int
	}{
		{"loopback ip", req{path: "/api/v1/vector", host: "127.0.0.1:9090"}, 200},
		{"other ip literal", req{path: "/api/v1/vector", host: "10.1.2.3:9090"}, 200},
		{"ipv6 literal", req{path: "/api/v1/vector", host: "[::1]:9090"}, 200},
		{"localhost", req{path: "/api/v1/vector", host: "localhost:9090"}, 200},
		{"sub.localhost", req{path: "/api/v1/vector", host: "node-a.localhost:9090"}, 200},
		{"allowed name", req{path: "/api/v1/vector", host: "Admin.Example.com"}, 200},
		{"allowed wildcard", req{path: "/api/v1/vector", host: "n1.ops.example.net:9090"}, 200},
		{"wildcard is not the apex", req{path: "/api/v1/vector", host: "ops.example.net"}, 403},
		{"rebinding name", req{path: "/api/v1/vector", host: "evil.example:9090"}, 403},
		{"rebinding name on a page", req{path: "/", host: "attacker.test"}, 403},
		{"rebinding name on metrics", req{path: "/metrics", host: "attacker.test"}, 403},
		{"rebinding name on healthz", req{path: "/healthz", host: "attacker.test"}, 403},
		{"suffix trick", req{path: "/api/v1/vector", host: "localhost.evil.example"}, 403},
		{"same origin", req{path: "/api/v1/vector", headers: map[string]string{"Origin": "http://127.0.0.1:9090"}}, 200},
		{"foreign origin", req{path: "/api/v1/vector", headers: map[string]string{"Origin": "http://evil.example"}}, 403},
		{"other port origin (the proxied app)", req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1", headers: map[string]string{"Origin": "http://127.0.0.1:8080"}}, 403},
		{"null origin", req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1", headers: map[string]string{"Origin": "null"}}, 403},
		{"allowed origin name", req{path: "/api/v1/vector", host: "admin.example.com", headers: map[string]string{"Origin": "https://admin.example.com"}}, 200},
		{"default port origin", req{path: "/api/v1/vector", host: "localhost", headers: map[string]string{"Origin": "http://localhost:80"}}, 200},
		{"cross-site fetch metadata", req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, h, tc.r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
		})
	}
	if got, _ := f.db.Lookup(key(t, "10.0.0.1", "shop.test")); got.Deleted {
		t.Error("a refused DELETE deleted the binding")
	}
}

func TestCSRF(t *testing.T) {
	del := func(b *browser, token string) *httpResult {
		return b.do(req{method: "POST", path: "/bindings/delete", headers: formCT,
			body: form("host", "shop.test", "client", "10.0.0.1", "_csrf", token, "return", "/bindings")})
	}
	t.Run("form without token", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.do(req{path: "/bindings"})
		if r := del(b, ""); r.code != 403 || !strings.Contains(r.body, "CSRF") {
			t.Errorf("%d %s", r.code, r.body)
		}
	})
	t.Run("form with wrong token", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.do(req{path: "/bindings"})
		if r := del(b, b.csrf+"x"); r.code != 403 {
			t.Errorf("%d", r.code)
		}
	})
	t.Run("planted cookie with a chosen token", func(t *testing.T) {
		// A page on another port of this host can set a cookie for it; it
		// cannot compute the MAC that goes with it.
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.cookies[csrfCookie] = &http.Cookie{Name: csrfCookie, Value: "attacker-chosen-nonce"}
		if r := del(b, "attacker-chosen-nonce"); r.code != 403 {
			t.Errorf("%d", r.code)
		}
	})
	t.Run("token from another browser", func(t *testing.T) {
		f := newFixture(t)
		h := f.server(t, nil).Handler()
		b1, b2 := newBrowser(t, h), newBrowser(t, h)
		b1.do(req{path: "/bindings"})
		b2.do(req{path: "/bindings"})
		if r := del(b1, b2.csrf); r.code != 403 {
			t.Errorf("%d", r.code)
		}
	})
	t.Run("form with token", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.do(req{path: "/bindings"})
		r := del(b, b.csrf)
		if r.code != 303 || !strings.HasPrefix(r.header.Get("Location"), "/bindings?done=deleted") {
			t.Fatalf("%d %v %s", r.code, r.header, r.body)
		}
		if got, _ := f.db.Lookup(key(t, "10.0.0.1", "shop.test")); !got.Deleted {
			t.Errorf("not deleted: %+v", got)
		}
	})
	t.Run("token in header works for forms too", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, nil).Handler())
		b.do(req{path: "/bindings"})
		r := b.do(req{method: "POST", path: "/routes/reload", headers: map[string]string{csrfHeader: b.csrf}})
		if r.code != 303 || f.backends.reloads != 1 {
			t.Errorf("%d reloads %d", r.code, f.backends.reloads)
		}
	})
	t.Run("cookie-authenticated json needs the header", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, withToken).Handler())
		login(t, b)
		path := "/api/v1/bindings/shop.test/10.0.0.1"
		if r := b.do(req{method: "DELETE", path: path}); r.code != 403 {
			t.Errorf("without header: %d", r.code)
		}
		if r := b.do(req{method: "DELETE", path: path, headers: map[string]string{csrfHeader: b.csrf}}); r.code != 200 {
			t.Errorf("with header: %d %s", r.code, r.body)
		}
	})
	t.Run("open loopback json without csrf", func(t *testing.T) {
		f := newFixture(t)
		h := f.server(t, nil).Handler()
		if w := do(t, h, req{method: "DELETE", path: "/api/v1/bindings/shop.test/10.0.0.1"}); w.Code != 200 {
			t.Errorf("curl-style delete: %d %s", w.Code, w.Body)
		}
		// a cross-site form can send text/plain without preflight: refused,
		// saying what the API takes
		w := do(t, h, req{method: "POST", path: "/api/v1/backends/r1/drain", body: "x", headers: map[string]string{"Content-Type": "text/plain"}})
		if w.Code != 415 || !strings.Contains(w.Body.String(), "application/json") {
			t.Errorf("text/plain post: %d %s", w.Code, w.Body)
		}
		if w := do(t, h, req{method: "POST", path: "/api/v1/backends/r1/drain", body: "{}", headers: map[string]string{"Content-Type": "application/json"}}); w.Code != 200 {
			t.Errorf("json post: %d %s", w.Code, w.Body)
		}
	})
	t.Run("logout needs csrf", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, withToken).Handler())
		login(t, b)
		if r := b.do(req{method: "POST", path: "/logout"}); r.code != 403 {
			t.Errorf("logout without token: %d", r.code)
		}
	})
}

// login logs b in through the form.
func login(t *testing.T, b *browser) {
	t.Helper()
	b.do(req{path: "/login"})
	r := b.do(req{method: "POST", path: "/login", headers: formCT, body: form("token", testToken, "_csrf", b.csrf, "next", "/bindings")})
	if r.code != 303 || r.header.Get("Location") != "/bindings" {
		t.Fatalf("login: %d %v %s", r.code, r.header, r.body)
	}
	b.do(req{path: "/bindings"}) // a page, for its CSRF token
}

func TestLogin(t *testing.T) {
	t.Run("cookie flags", func(t *testing.T) {
		for _, secure := range []bool{false, true} {
			f := newFixture(t)
			b := newBrowser(t, f.server(t, func(c *Config) { withToken(c); c.SecureCookie = secure }).Handler())
			b.do(req{path: "/login"})
			r := b.do(req{method: "POST", path: "/login", headers: formCT, body: form("token", testToken, "_csrf", b.csrf)})
			var sess *http.Cookie
			for _, c := range r.cookies {
				if c.Name == sessionCookie {
					sess = c
				}
			}
			if sess == nil {
				t.Fatalf("no session cookie: %v", r.header)
			}
			if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" || sess.Secure != secure || sess.MaxAge != int(time.Hour.Seconds()) {
				t.Errorf("cookie %+v (secure wanted %v)", sess, secure)
			}
			if strings.Contains(sess.Value, testToken) {
				t.Error("the cookie carries the token")
			}
			raw := strings.Join(r.header.Values("Set-Cookie"), "\n")
			if !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") {
				t.Errorf("Set-Cookie %q", raw)
			}
			if c := b.cookies[csrfCookie]; c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("csrf cookie %+v", c)
			}
		}
	})
	t.Run("session grants pages and api", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, withToken).Handler())
		login(t, b)
		for _, p := range []string{"/", "/bindings", "/vectors", "/backends", "/api/v1/vector", "/metrics"} {
			if r := b.do(req{path: p}); r.code != 200 {
				t.Errorf("%s: %d", p, r.code)
			}
		}
		if r := b.do(req{path: "/"}); !strings.Contains(r.body, `id="logout"`) {
			t.Error("no logout button when logged in")
		}
		if r := b.do(req{path: "/login?next=/vectors"}); r.code != 303 || r.header.Get("Location") != "/vectors" {
			t.Errorf("login page when logged in: %d %v", r.code, r.header.Get("Location"))
		}
		r := b.do(req{method: "POST", path: "/logout", headers: formCT, body: form("_csrf", b.csrf)})
		if r.code != 303 || b.cookies[sessionCookie] != nil {
			t.Fatalf("logout: %d, cookie left %v", r.code, b.cookies[sessionCookie])
		}
		if r := b.do(req{path: "/api/v1/vector"}); r.code != 401 {
			t.Errorf("after logout: %d", r.code)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, withToken).Handler())
		b.do(req{path: "/login"})
		r := b.do(req{method: "POST", path: "/login", headers: formCT, body: form("token", "wrong-wrong-wrong-wrong", "_csrf", b.csrf)})
		if r.code != 401 || !strings.Contains(r.body, `id="login-error"`) || b.cookies[sessionCookie] != nil {
			t.Errorf("%d %v", r.code, b.cookies)
		}
	})
	t.Run("login needs csrf", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, withToken).Handler())
		if r := b.do(req{method: "POST", path: "/login", headers: formCT, body: form("token", testToken)}); r.code != 403 {
			t.Errorf("%d", r.code)
		}
	})
	t.Run("tampered and expired sessions", func(t *testing.T) {
		f := newFixture(t)
		s := f.server(t, withToken)
		b := newBrowser(t, s.Handler())
		login(t, b)
		good := *b.cookies[sessionCookie]
		tampered := good
		tampered.Value = good.Value[:len(good.Value)-1] + "x"
		if tampered.Value == good.Value {
			tampered.Value = good.Value[:len(good.Value)-1] + "y"
		}
		for _, c := range []http.Cookie{tampered, {Name: sessionCookie, Value: "v1.9999999999.x.y"}, {Name: sessionCookie, Value: "garbage"}} {
			if w := do(t, s.Handler(), req{path: "/api/v1/vector", cookies: []*http.Cookie{&c}}); w.Code != 401 {
				t.Errorf("cookie %q: %d", c.Value, w.Code)
			}
		}
		if w := do(t, s.Handler(), req{path: "/api/v1/vector", cookies: []*http.Cookie{&good}}); w.Code != 200 {
			t.Errorf("good cookie: %d", w.Code)
		}
		f.clk.Add(time.Hour + time.Second)
		if w := do(t, s.Handler(), req{path: "/api/v1/vector", cookies: []*http.Cookie{&good}}); w.Code != 401 {
			t.Errorf("expired cookie: %d", w.Code)
		}
	})
	t.Run("logout revokes a kept copy", func(t *testing.T) {
		f := newFixture(t)
		s := f.server(t, withToken)
		b := newBrowser(t, s.Handler())
		login(t, b)
		kept := *b.cookies[sessionCookie]
		if r := b.do(req{method: "POST", path: "/logout", headers: formCT, body: form("_csrf", b.csrf)}); r.code != 303 {
			t.Fatalf("logout: %d", r.code)
		}
		if w := do(t, s.Handler(), req{path: "/api/v1/vector", cookies: []*http.Cookie{&kept}}); w.Code != 401 {
			t.Errorf("the session cookie still works after logout: %d", w.Code)
		}
	})
	t.Run("token change ends sessions", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, withToken).Handler())
		login(t, b)
		other := f.server(t, func(c *Config) { c.Token = testToken + "-rotated" })
		if w := do(t, other.Handler(), req{path: "/api/v1/vector", cookies: []*http.Cookie{b.cookies[sessionCookie]}}); w.Code != 401 {
			t.Errorf("%d", w.Code)
		}
	})
	t.Run("no open redirect", func(t *testing.T) {
		f := newFixture(t)
		b := newBrowser(t, f.server(t, withToken).Handler())
		for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
			b.cookies = map[string]*http.Cookie{}
			b.do(req{path: "/login"})
			r := b.do(req{method: "POST", path: "/login", headers: formCT, body: form("token", testToken, "_csrf", b.csrf, "next", next)})
			if r.code != 303 || r.header.Get("Location") != "/" {
				t.Errorf("next=%q: %d %q", next, r.code, r.header.Get("Location"))
			}
		}
	})
	t.Run("open mode has no login", func(t *testing.T) {
		f := newFixture(t)
		h := f.server(t, nil).Handler()
		if w := do(t, h, req{path: "/login"}); w.Code != 303 || w.Header().Get("Location") != "/" {
			t.Errorf("%d %v", w.Code, w.Header())
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	for _, p := range []string{"/", "/bindings", "/api/v1/vector", "/metrics", "/static/app.js", "/nothing", "/healthz"} {
		t.Run(p, func(t *testing.T) {
			w := do(t, h, req{path: p})
			csp := w.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP allows inline: %q", csp)
			}
			for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestMethods(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, nil).Handler()
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/bindings/delete", 405},
		{"GET", "/bindings/rebind", 405},
		{"GET", "/backends/drain", 405},
		{"GET", "/routes/reload", 405},
		{"DELETE", "/bindings", 405},
		{"POST", "/api/v1/vector", 405},
		{"PUT", "/api/v1/members", 405},
		{"GET", "/api/v1/routes/reload", 405},
		{"GET", "/nowhere", 404},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := do(t, h, req{method: tc.method, path: tc.path, headers: map[string]string{"Accept": "application/json"}})
			if w.Code != tc.status {
				t.Fatalf("%d, want %d", w.Code, tc.status)
			}
			if e := decode[errorBody](t, w.Body.Bytes()); e.Error == "" {
				t.Error("empty error")
			}
		})
	}
}

// Go's profiler is served to an operator with the token, and to nobody
// without it.
func TestPprofNeedsTheToken(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, withToken).Handler()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		// Without it: the login page (303) like every page, or 401.
		if w := do(t, h, req{path: path}); w.Code != http.StatusSeeOther && w.Code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d", path, w.Code)
		}
		w := do(t, h, req{path: path, headers: map[string]string{"Authorization": "Bearer " + testToken}})
		if w.Code != http.StatusOK || w.Body.Len() == 0 {
			t.Errorf("%s with the token: %d, %d bytes", path, w.Code, w.Body.Len())
		}
	}
	if w := do(t, h, req{path: "/debug/pprof/nosuch", headers: map[string]string{"Authorization": "Bearer " + testToken}}); w.Code != http.StatusNotFound {
		t.Errorf("an unknown profile: %d", w.Code)
	}
}
