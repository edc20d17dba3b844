package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseBackends(t *testing.T) {
	bs, err := ParseBackends(" a=http://127.0.0.1:8081 , b=https://b.internal/app ")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Name != "a" || bs[0].URL.String() != "http://127.0.0.1:8081" || bs[1].URL.Path != "/app" || bs[1].Weight != 1 {
		t.Fatalf("got %+v", bs)
	}
	if bs, err := ParseBackends(""); err != nil || len(bs) != 0 {
		t.Fatalf("empty spec: %v %v", bs, err)
	}
	for _, tc := range []struct{ spec, want string }{
		{"a=http://x:1,a=http://y:1", `duplicate backend name "a"`},
		{"a", `want name=url`},
		{"a=ftp://x", `scheme must be http or https`},
		{"a=http://", `no host`},
		{"a=http://x:99999", `bad port`},
		{"a=http://u:p@x", `user info`},
		{"a=http://x/?q=1", `query`},
		{"a=://x", `not a URL`},
		{"a b=http://x", `backend name "a b"`},
		{"=http://x", `backend name ""`},
		{"a=http://x,,b=http://y", `item 2 is empty`},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := ParseBackends(tc.spec)
			if !errors.Is(err, ErrInvalidRoutes) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseBackends(%q) = %v, want error containing %q", tc.spec, err, tc.want)
			}
		})
	}
}

const goodRoutes = `
health:
  interval: 5s
pools:
  - name: shop
    hosts: [Shop.Example.com, "[2001:db8::1]"]
    health: {path: /ready, timeout: 500ms, rise: 1, fall: 2}
    backends:
      - {name: s1, url: "http://10.0.0.1:8080", weight: 2}
      - {name: s2, url: "http://10.0.0.2:8080"}
  - name: default
    hosts: [www.example.com]
    health: {path: ""}
`

func TestBuildRoutes(t *testing.T) {
	r, err := BuildRoutes("a=http://127.0.0.1:1,b=http://127.0.0.1:2", []byte(goodRoutes))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Pools) != 2 {
		t.Fatalf("pools: %+v", r.Pools)
	}
	shop, def := r.Pools[0], r.Pools[1]
	if shop.Hosts[0] != "shop.example.com" || shop.Hosts[1] != "[2001:db8::1]" {
		t.Errorf("hosts not normalised: %v", shop.Hosts)
	}
	want := HealthCheck{Path: "/ready", Interval: 5 * time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 2}
	if shop.Health != want {
		t.Errorf("shop health %+v, want %+v", shop.Health, want)
	}
	if shop.Backends[0].Weight != 2 || shop.Backends[1].Weight != 1 {
		t.Errorf("weights: %+v", shop.Backends)
	}
	if def.Name != DefaultPool || len(def.Backends) != 2 || def.Backends[1].Name != "b" || def.Health.Path != "" || def.Health.Interval != 5*time.Second {
		t.Errorf("default pool: %+v", def)
	}
	// Without a file, TETHER_BACKENDS alone makes the default pool.
	r, err = BuildRoutes("a=http://127.0.0.1:1", nil)
	if err != nil || len(r.Pools) != 1 || r.Pools[0].Name != DefaultPool || r.Pools[0].Health != DefaultHealthCheck() {
		t.Fatalf("backends only: %+v, %v", r, err)
	}
}

func TestBuildRoutesErrors(t *testing.T) {
	for _, tc := range []struct{ name, backends, file, want string }{
		{"nothing", "", "", "no pools"},
		{"bad yaml", "", "pools: [", "routes file"},
		{"yaml library panic", "", "pools: !tag\nfoo", "parser failed"},
		{"unknown field", "", "pools:\n  - name: x\n    hostz: [a]\n", "hostz"},
		{"pool without hosts", "", "pools:\n  - name: x\n    backends: [{name: a, url: 'http://x'}]\n", `no hosts`},
		{"pool without backends", "", "pools:\n  - name: x\n    hosts: [a.com]\n", "no backends"},
		{"duplicate pool", "", "pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x'}]}\n  - {name: x, hosts: [b.com], backends: [{name: a, url: 'http://x'}]}\n", `duplicate pool name "x"`},
		{"host in two pools", "", "pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x'}]}\n  - {name: y, hosts: [A.com], backends: [{name: a, url: 'http://x'}]}\n", `already in pool "x"`},
		{"host with port", "", "pools:\n  - {name: x, hosts: ['a.com:80'], backends: [{name: a, url: 'http://x'}]}\n", "no port"},
		{"bad host", "", "pools:\n  - {name: x, hosts: ['a b'], backends: [{name: a, url: 'http://x'}]}\n", `hosts[0] "a b"`},
		{"bad url", "", "pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'gopher://x'}]}\n", `.url "gopher://x"`},
		{"duplicate backend", "", "pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]}\n", `duplicate backend name "a"`},
		{"zero weight", "", "pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x', weight: 0}]}\n", "weight 0"},
		{"negative weight", "", "pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x', weight: -1}]}\n", "weight -1"},
		{"bad interval", "", "health: {interval: soon}\npools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x'}]}\n", `interval "soon"`},
		{"zero timeout", "", "pools:\n  - {name: x, hosts: [a.com], health: {interval: 1s, timeout: 0s}, backends: [{name: a, url: 'http://x'}]}\n", "timeout 0s"},
		{"rise zero", "", "pools:\n  - {name: x, hosts: [a.com], health: {rise: 0}, backends: [{name: a, url: 'http://x'}]}\n", "rise 0"},
		{"path relative", "", "pools:\n  - {name: x, hosts: [a.com], health: {path: healthz}, backends: [{name: a, url: 'http://x'}]}\n", `path "healthz"`},
		{"default twice", "a=http://x", "pools:\n  - {name: default, backends: [{name: a, url: 'http://x'}]}\n", "TETHER_BACKENDS already"},
		{"bad backends", "a=http://x,a=http://y", "", `duplicate backend name "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildRoutes(tc.backends, []byte(tc.file))
			if !errors.Is(err, ErrInvalidRoutes) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadRoutesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(p, []byte(goodRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRoutes("", p); err == nil || !strings.Contains(err.Error(), "no backends") {
		t.Fatalf("default pool without backends: %v", err)
	}
	if _, err := LoadRoutes("a=http://x", p); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRoutes("a=http://x", filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrInvalidRoutes) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzRoutes: any routes file and TETHER_BACKENDS either fail with
// ErrInvalidRoutes or give routes that validate; never a panic.
func FuzzRoutes(f *testing.F) {
	f.Add("a=http://127.0.0.1:1", goodRoutes)
	f.Add("", "pools:\n  - {name: x, hosts: [a.com], backends: [{name: a, url: 'http://x', weight: 2.5}]}\n")
	f.Add("a=http://x,b=https://y:443/p", "health: {interval: 1s, rise: 1}\n")
	f.Add("", "pools: [{name: default, backends: []}]")
	f.Fuzz(func(t *testing.T, backends, file string) {
		r, err := BuildRoutes(backends, []byte(file))
		if err != nil {
			if !errors.Is(err, ErrInvalidRoutes) {
				t.Fatalf("error without ErrInvalidRoutes: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("built routes do not validate: %v", err)
		}
	})
}
