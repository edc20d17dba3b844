package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tetherproxy/tether/internal/demobackend"
	"github.com/tetherproxy/tether/test/fleet"
)

// dashboardExprs returns every panel target's PromQL, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("grafana/tether.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title, UID string
		Panels     []struct {
			Type, Title string
			GridPos     struct{ H, W, X, Y int }
			Targets     []struct{ Expr, RefID string }
		}
		Templating struct{ List []struct{ Name, Type string } }
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("the dashboard needs a title and a uid")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("dashboard variables %v: want datasource and instance", vars)
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// alertRules reads the rule file: every rule an alert with a summary and
// a severity.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	docs := readDocs(t, "prometheus/tether.rules.yml")
	out := map[string]string{}
	for _, g := range list(docs[0], "groups") {
		for _, r := range list(g, "rules") {
			name := str(r, "alert")
			if name == "" || str(r, "expr") == "" || str(r, "labels", "severity") == "" || str(r, "annotations", "summary") == "" {
				t.Errorf("rule %v: want alert, expr, labels.severity and annotations.summary", r)
			}
			out[name] = str(r, "expr")
		}
	}
	return out
}

// The dashboard and the alert rules parse, cover what operators watch,
// and promtool accepts them (the dashboard's queries too, with Grafana's
// variables filled in).
func TestDashboardAndRulesParse(t *testing.T) {
	panels := dashboardExprs(t)
	rules := alertRules(t)
	all := strings.Join(flatten(panels), "\n")
	for what, metric := range map[string]string{
		"traffic per backend": "tether_proxy_requests_total", "latency": "tether_proxy_request_duration_seconds_bucket",
		"bindings": "tether_bindings_live", "replication lag per peer": "tether_replication_lag_events",
		"gaps": "tether_replication_requests_total", "full copies": "tether_replication_full_copies_total", "readiness": "tether_ready",
	} {
		if !strings.Contains(all, metric) {
			t.Errorf("the dashboard shows no %s (%s)", what, metric)
		}
	}
	for _, a := range []string{"TetherNodeNotReady", "TetherPeerLag", "TetherBackendDown", "TetherGossipDecodeErrors", "TetherBindingEvictions"} {
		if rules[a] == "" {
			t.Errorf("no alert %s", a)
		}
	}
	if !tool(t, "promtool") {
		return
	}
	runOK(t, "", nil, "promtool", "check", "rules", "prometheus/tether.rules.yml")
	// The dashboard's queries as recording rules: promtool parses each.
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	i := 0
	for _, title := range sortedKeys(panels) {
		for _, e := range panels[title] {
			i++
			q, _ := json.Marshal(grafana.Replace(e))
			fmt.Fprintf(&b, "      - record: dashboard:panel%d\n        expr: %s\n", i, q)
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runOK(t, "", nil, "promtool", "check", "rules", f)
}

// Every metric the dashboard and the rules name is exported by a running
// fleet (two nodes, traffic to a healthy and a dead replica, so that the
// per-backend, per-peer and per-class series exist).
func TestDashboardMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet: not in -short")
	}
	a, err := demobackend.Start("a", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f := fleet.StartEach(t, bin, 2, fleet.Options{
		Backends: "a=" + a.URL + ",b=http://" + fleet.FreePort(t),
		Env:      map[string]string{"TETHER_TRUSTED_PROXIES": "127.0.0.1", "TETHER_LOG_LEVEL": "warn"},
	}, nil)
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest(http.MethodGet, "http://"+f.Nodes[i%2].Proxy+"/", nil)
		req.Host = "app.test"
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	exported := map[string]string{} // name -> type
	for _, n := range f.Nodes {
		code, body, err := n.Get("/metrics")
		if err != nil || code != 200 {
			t.Fatalf("%s /metrics: %d %v", n.Name, code, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) == 4 && fs[0] == "#" && fs[1] == "TYPE" {
				exported[fs[2]] = fs[3]
			}
		}
	}
	exists := func(name string) bool {
		if _, ok := exported[name]; ok {
			return true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && exported[base] == "histogram" {
				return true
			}
		}
		return false
	}
	used := map[string][]string{}
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			for _, m := range metricNames(e) {
				used[m] = append(used[m], "panel "+title)
			}
		}
	}
	for alert, e := range alertRules(t) {
		for _, m := range metricNames(e) {
			used[m] = append(used[m], "alert "+alert)
		}
	}
	if len(used) < 15 {
		t.Fatalf("only %d metric names found: %v", len(used), used)
	}
	for _, m := range sortedKeys(used) {
		if !exists(m) {
			t.Errorf("%s (used by %v) is not exported by a running node", m, used[m])
		}
	}
}

func flatten(m map[string][]string) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, m[k]...)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
