package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// need fails the test when a tool the Makefile installs is missing.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: `make test` installs it (make systemd); on Debian: apt-get install dpkg systemd", tool)
		}
	}
}

func sh(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	if env == nil {
		cmd.Env = os.Environ()
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDeb builds the package with `make deb`, inspects it with dpkg-deb,
// unpacks it with dpkg -x into a scratch root, runs the unpacked binary
// (version, validate with the environment the unit gives it), checks the
// unit with systemd-analyze verify and security, and runs the postinst
// with its commands recorded.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package (make deb): not in -short")
	}
	need(t, "make", "git", "dpkg-deb", "dpkg", "systemd-analyze")
	out := t.TempDir()
	sh(t, "..", nil, "make", "--no-print-directory", "deb", "DEB_OUT="+out)
	debs, _ := filepath.Glob(filepath.Join(out, "tether_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	deb := debs[0]
	describe := strings.TrimSpace(sh(t, "..", nil, "git", "describe", "--tags", "--always", "--dirty"))

	info := sh(t, "", nil, "dpkg-deb", "--info", deb)
	for _, w := range []string{"Package: tether", "Architecture: ", "Depends: passwd", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, w) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", w, info)
		}
	}
	contents := sh(t, "", nil, "dpkg-deb", "--contents", deb)
	for _, w := range []string{"-rwxr-xr-x root/root", "./usr/bin/tether", "./lib/systemd/system/tether.service",
		"./etc/tether/tether.env", "./etc/logrotate.d/tether", "./usr/share/doc/tether/operations.md"} {
		if !strings.Contains(contents, w) {
			t.Errorf("package lacks %q:\n%s", w, contents)
		}
	}
	ctrl := t.TempDir()
	sh(t, "", nil, "dpkg-deb", "--control", deb, ctrl)
	conf, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	for _, w := range []string{"/etc/tether/tether.env", "/etc/logrotate.d/tether"} {
		if !strings.Contains(string(conf), w) {
			t.Errorf("conffiles lacks %s: %q", w, conf)
		}
	}

	root := t.TempDir()
	sh(t, "", nil, "dpkg", "-x", deb, root)
	bin := filepath.Join(root, "usr/bin/tether")
	if v := sh(t, "", nil, bin, "version"); !strings.Contains(v, "tether "+describe+" (commit ") {
		t.Errorf("version %q, want git describe %q", v, describe)
	}

	unit := readUnit(t, filepath.Join(root, "lib/systemd/system/tether.service"))
	want := map[string][]string{
		"User": {"tether"}, "Group": {"tether"},
		"EnvironmentFile":     {"/etc/tether/tether.env"},
		"ExecStartPre":        {"/usr/bin/tether validate"},
		"ExecStart":           {"/usr/bin/tether serve"},
		"ExecReload":          {"/usr/bin/tether validate", "/bin/kill -HUP $MAINPID"},
		"StateDirectory":      {"tether"},
		"Environment":         {"TETHER_DATA_DIR=/var/lib/tether"},
		"AmbientCapabilities": {"CAP_NET_BIND_SERVICE"}, "CapabilityBoundingSet": {"CAP_NET_BIND_SERVICE"},
		"NoNewPrivileges": {"yes"}, "ProtectSystem": {"strict"}, "ProtectHome": {"yes"}, "PrivateTmp": {"yes"},
	}
	for k, vs := range want {
		if got := unit[k]; strings.Join(got, "|") != strings.Join(vs, "|") {
			t.Errorf("unit %s = %q, want %q", k, got, vs)
		}
	}

	// The environment the unit gives the service: Environment=, then the
	// file (which overrides it), as systemd does.
	env := []string{"PATH=/usr/bin:/bin"}
	for _, e := range unit["Environment"] {
		env = append(env, e)
	}
	env = append(env, readEnvFile(t, filepath.Join(root, "etc/tether/tether.env"))...)
	v := sh(t, "", env, bin, "validate")
	for _, w := range []string{"configuration OK", "TETHER_DATA_DIR=/var/lib/tether", "TETHER_BACKENDS=app-1="} {
		if !strings.Contains(v, w) {
			t.Errorf("validate output lacks %q:\n%s", w, v)
		}
	}
	// And validate refuses a broken file, as ExecStartPre and ExecReload need.
	cmd := exec.Command(bin, "validate")
	cmd.Env = append(env, "TETHER_JOIN=tether-2")
	if b, err := cmd.CombinedOutput(); err == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(b), "TETHER_JOIN") {
		t.Errorf("validate with a bad join: %v %s", err, b)
	}

	// systemd-analyze verify checks the directives and that the commands
	// exist: point them at the unpacked binary (the unit's /usr/bin/tether
	// is not installed on this machine).
	raw, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/tether.service"))
	checked := filepath.Join(t.TempDir(), "tether.service")
	if err := os.WriteFile(checked, []byte(strings.ReplaceAll(string(raw), "/usr/bin/tether", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", checked).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The hardening, scored by systemd: exposure at most 2.5 of 10 ("OK").
	if out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=25", "--no-pager", checked).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security above 2.5: %v\n%s", err, lastLines(string(out), 3))
	}

	// postinst creates the system user (commands recorded by stand-ins).
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		sh(t, "", nil, "sh", "-n", filepath.Join(ctrl, s))
	}
	shims := t.TempDir()
	log := filepath.Join(shims, "calls")
	for _, c := range []string{"useradd", "groupadd", "chown", "chmod"} {
		os.WriteFile(filepath.Join(shims, c), []byte("#!/bin/sh\necho "+c+" \"$@\" >> "+log+"\n"), 0o755)
	}
	os.WriteFile(filepath.Join(shims, "getent"), []byte("#!/bin/sh\nexit 2\n"), 0o755)
	sh(t, "", []string{"PATH=" + shims + ":/usr/bin:/bin"}, "sh", filepath.Join(ctrl, "postinst"), "configure")
	calls, _ := os.ReadFile(log)
	for _, re := range []string{`(?m)^groupadd --system tether$`, `(?m)^useradd --system --gid tether .*--shell /usr/sbin/nologin .*tether$`,
		`(?m)^chown root:tether /etc/tether/tether.env$`} {
		if !regexp.MustCompile(re).Match(calls) {
			t.Errorf("postinst calls lack %s:\n%s", re, calls)
		}
	}
}

// readUnit returns the unit's directives, every value of each in order.
func readUnit(t *testing.T, path string) map[string][]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		m[k] = append(m[k], v)
	}
	return m
}

// readEnvFile reads a systemd EnvironmentFile: KEY=VALUE lines, # comments.
func readEnvFile(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && l[0] != '#' {
			if !strings.Contains(l, "=") {
				t.Fatalf("%s: not KEY=VALUE: %q", path, l)
			}
			out = append(out, l)
		}
	}
	return out
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
