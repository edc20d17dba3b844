package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// validate accepts what serve accepts, prints every setting with secrets
// hidden, and refuses what serve refuses with exit 2 and the variable,
// flag or file line named.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte("pools:\n  - name: web\n    hosts: [app.example]\n    backends:\n      - {name: web-a, url: 'http://127.0.0.1:8081/app'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badRoutes := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badRoutes, []byte("pools:\n  - name: web\n    hostz: [a.com]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const token, key = "s3cret-token-0123456789", "MDEyMzQ1Njc4OWFiY2RlZg=="
	ok := map[string]string{"TETHER_ROUTES_FILE": routes, "TETHER_ADMIN_LISTEN": "0.0.0.0:9090",
		"TETHER_ADMIN_TOKEN": token, "TETHER_GOSSIP_KEY": key, "TETHER_JOIN": "tether-0.tether:7946"}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		code  int
		want  []string // in stdout (code 0) or stderr
		never []string // in neither
	}{
		{"ok", ok, []string{"--ttl", "10m"}, 0,
			[]string{"TETHER_NODE_NAME=host-a\n", "TETHER_TTL=10m\n", "TETHER_ADMIN_TOKEN=(hidden)\n", "TETHER_GOSSIP_KEY=(hidden)\n",
				"TETHER_JOIN=tether-0.tether:7946\n", "TETHER_LISTEN=:8080\n", "pool web: hosts app.example", "web-a http://127.0.0.1:8081/app weight 1"},
			[]string{token, key}},
		{"join without port", ok, []string{"--join", "tether-0.tether"}, 2, []string{"TETHER_JOIN (--join)", `peer "tether-0.tether"`}, nil},
		{"bad routes line", map[string]string{"TETHER_ROUTES_FILE": badRoutes}, nil, 2,
			[]string{"TETHER_ROUTES_FILE", "bad.yaml", "[3:5]", `unknown field "hostz"`}, nil},
		{"bad token", map[string]string{"TETHER_BACKENDS": "a=http://x:1", "TETHER_ADMIN_TOKEN": "short-secret"}, nil, 2,
			[]string{"TETHER_ADMIN_TOKEN", "(value hidden)"}, []string{"short-secret"}},
		{"unknown flag", ok, []string{"--nope"}, 2, []string{"-nope"}, nil},
		{"extra argument", ok, []string{"serve"}, 2, []string{"unexpected arguments"}, nil},
		{"help", ok, []string{"-h"}, 0, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := validateMain(tc.args, tc.env, hostname, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out.String(), errOut.String())
			}
			got := out.String()
			if code != 0 {
				got = errOut.String()
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(out.String()+errOut.String(), n) {
					t.Errorf("output shows %q", n)
				}
			}
		})
	}
}

// A check registered in configChecks runs in serve's loadConfig and in
// validate alike: the hook TLS certificates use.
func TestConfigChecksRunInBoth(t *testing.T) {
	calls := 0
	old := configChecks
	configChecks = append(configChecks, func(Config) error {
		calls++
		return &settingError{env: "TETHER_X", flag: "x", value: "v", msg: "refused by a check"}
	})
	defer func() { configChecks = old }()
	if _, err := loadConfig(nil, baseEnv(), hostname, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "refused by a check") {
		t.Fatalf("serve's loadConfig: %v", err)
	}
	var errOut bytes.Buffer
	if code := validateMain(nil, baseEnv(), hostname, &bytes.Buffer{}, &errOut); code != 2 || !strings.Contains(errOut.String(), "TETHER_X (--x)") {
		t.Fatalf("validate: exit %d, %q", code, errOut.String())
	}
	if calls != 2 {
		t.Fatalf("check ran %d times, want 2", calls)
	}
}

// tether help lists the commands first, then every command's flags with
// every documented value; -v and --version print the version line.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		var out bytes.Buffer
		if code := run(args, &out, &out); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		h := out.String()
		cmds := strings.Index(h, "commands:")
		flags := strings.Index(h, "flags of tether serve:")
		if cmds < 0 || flags < cmds {
			t.Fatalf("%v: commands then flags expected:\n%s", args, h)
		}
		for name := range commands {
			if !strings.Contains(h[cmds:flags], "  "+name+" ") {
				t.Errorf("command %s not listed", name)
			}
		}
		// Every setting, with its variable and default, and the values
		// each one takes.
		st := reflect.TypeOf(settings{})
		for i := 0; i < st.NumField(); i++ {
			f := st.Field(i)
			if !strings.Contains(h, "-"+f.Tag.Get("flag")+" ") || !strings.Contains(h, "["+f.Tag.Get("env")+"]") {
				t.Errorf("setting %s missing from help", f.Tag.Get("env"))
			}
			if d := f.Tag.Get("envDefault"); d != "" && !strings.Contains(h, `(default "`+d+`")`) {
				t.Errorf("default %q of %s missing", d, f.Tag.Get("env"))
			}
		}
		for _, v := range []string{"trace, debug, info, warn or error", "json or console", "fast (", "stdlib (", "random or roundrobin", "--targets", "-base"} {
			if !strings.Contains(h, v) {
				t.Errorf("help lacks %q", v)
			}
		}
	}
	for _, args := range [][]string{{"-v"}, {"--version"}, {"-version"}} {
		var out bytes.Buffer
		if code := run(args, &out, &out); code != 0 || out.String() != versionLine()+"\n" {
			t.Fatalf("%v: exit %d, %q", args, code, out.String())
		}
	}
	if l := versionLine(); !strings.Contains(l, version) || !strings.Contains(l, commit) || !strings.Contains(l, runtime.Version()) {
		t.Fatalf("version line %q", l)
	}
	var out bytes.Buffer
	if code := run([]string{"nope"}, &out, &out); code != 2 || !strings.Contains(out.String(), `unknown command "nope"`) {
		t.Fatalf("unknown command: %d %q", code, out.String())
	}
}

// ldflags win; without them the build info gives the module version and
// the VCS revision; without either, "dev" and "unknown".
func TestStamp(t *testing.T) {
	info := func(mainVersion string, settings ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{Main: debug.Module{Version: mainVersion}}
			for i := 0; i+1 < len(settings); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
			}
			return bi, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name, v, c string
		read       func() (*debug.BuildInfo, bool)
		wantV      string
		wantC      string
	}{
		{"ldflags", "v1.2.0-3-gabc", "abc123", info("v9"), "v1.2.0-3-gabc", "abc123"},
		{"go install", "", "", info("v1.3.0", "vcs.revision", "def"), "v1.3.0", "def"},
		{"checkout, dirty", "", "", info("(devel)", "vcs.revision", "def", "vcs.modified", "true"), "dev", "def-dirty"},
		{"nothing", "", "", none, "dev", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, c := stamp(tc.v, tc.c, tc.read)
			if v != tc.wantV || c != tc.wantC {
				t.Fatalf("got %q %q, want %q %q", v, c, tc.wantV, tc.wantC)
			}
		})
	}
}
