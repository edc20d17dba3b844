package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// bin is tether built with the Dockerfile's build command (TestMain).
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tether-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		if bin, err = buildAsDockerfile(dir); err != nil {
			fmt.Fprintln(os.Stderr, "building tether as the Dockerfile does:", err)
			return 1
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

func parseDockerfile(path string) ([]instruction, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur.Reset()
	}
	return out, sc.Err()
}

// stages splits instructions at FROM; names by "AS name".
func stages(ins []instruction) (names []string, body [][]instruction) {
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			name := ""
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			}
			names = append(names, name)
			body = append(body, []instruction{in})
			continue
		}
		if len(body) > 0 {
			body[len(body)-1] = append(body[len(body)-1], in)
		}
	}
	return names, body
}

// buildAsDockerfile runs the build stage's `go build` line in the
// repository (the Dockerfile's /src), output in dir instead of /out.
func buildAsDockerfile(dir string) (string, error) {
	ins, err := parseDockerfile("../Dockerfile")
	if err != nil {
		return "", err
	}
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			script := strings.ReplaceAll(in.args, "/out/", dir+"/")
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "VERSION=deploy-test", "COMMIT=c0ffee")
			if out, err := cmd.CombinedOutput(); err != nil {
				return "", fmt.Errorf("%s: %v\n%s", script, err, out)
			}
			return filepath.Join(dir, "tether"), nil
		}
	}
	return "", fmt.Errorf("no RUN ... go build in the Dockerfile")
}

// The Dockerfile: a build stage and a distroless non-root run stage, the
// binary static and stamped, no shell needed to start it.
func TestDockerfile(t *testing.T) {
	ins, err := parseDockerfile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	names, body := stages(ins)
	if len(names) != 2 || names[0] != "build" {
		t.Fatalf("stages %q, want build then the run stage", names)
	}
	if !strings.Contains(body[0][0].args, "golang:") {
		t.Errorf("build stage from %q", body[0][0].args)
	}
	run := body[1]
	if from := run[0].args; !strings.Contains(from, "distroless/static") || !strings.Contains(from, "nonroot") {
		t.Errorf("run stage from %q, want distroless/static ...:nonroot", from)
	}
	var user, entry string
	copied := false
	for _, in := range run[1:] {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "RUN", "SHELL":
			t.Errorf("line %d: %s in the run stage (it has no shell)", in.line, in.cmd)
		case "COPY":
			if strings.Contains(in.args, "--from=build") && strings.Contains(in.args, "/usr/bin/tether") {
				copied = true
			}
		}
	}
	if u := strings.Split(user, ":")[0]; u == "" || u == "0" || u == "root" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if entry != `["/usr/bin/tether"]` {
		t.Errorf("ENTRYPOINT %s: want the exec form [\"/usr/bin/tether\"]", entry)
	}
	if !copied {
		t.Error("the run stage does not copy /usr/bin/tether from the build stage")
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader: not static (CGO_ENABLED=0?)")
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tether deploy-test (commit c0ffee, go") {
		t.Errorf("version: %v %q", err, out)
	}
}

// tool reports whether a tool `make test` installs is here; the parser
// tests run either way.
func tool(t *testing.T, name string) bool {
	if _, err := exec.LookPath(name); err != nil {
		t.Logf("%s not installed (make test installs it): its check did not run", name)
		return false
	}
	return true
}

var metricRE = regexp.MustCompile(`\btether_[a-z0-9_]+`)

// metricNames returns the tether_ names in a PromQL expression.
func metricNames(expr string) []string { return metricRE.FindAllString(expr, -1) }

func runOK(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.Bytes()
}
