package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

type obj = map[string]any

// get walks maps by key and lists by index ("0").
func get(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func readDocs(t *testing.T, path string) []obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []obj
	for {
		var o obj
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// kustomize reads a kustomization's resources (what `kubectl kustomize`
// would emit, before its transformations) by kind/name.
func kustomize(t *testing.T, dir string) map[string]obj {
	t.Helper()
	k := readDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	out := map[string]obj{}
	for _, r := range list(k, "resources") {
		for _, o := range readDocs(t, filepath.Join(dir, r.(string))) {
			id := str(o, "kind") + "/" + str(o, "metadata", "name")
			if _, dup := out[id]; dup {
				t.Fatalf("%s twice", id)
			}
			out[id] = o
		}
	}
	return out
}

func envOf(c any) map[string]any {
	m := map[string]any{}
	for _, e := range list(c, "env") {
		if v, ok := get(e, "value").(string); ok {
			m[str(e, "name")] = v
		} else {
			m[str(e, "name")] = get(e, "valueFrom")
		}
	}
	return m
}

func matches(selector, labels any) bool {
	sel, _ := selector.(map[string]any)
	lab, _ := labels.(map[string]any)
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lab[k] != v {
			return false
		}
	}
	return true
}

// The fleet's manifests fit together: names, ports, selectors, probes,
// volumes and Secret keys refer to what exists; the client Service keeps
// client addresses; and the container's environment is a configuration
// `tether validate` accepts (and refuses with the Secret as shipped).
func TestKubernetesManifests(t *testing.T) {
	objs := kustomize(t, "kubernetes")
	sts, secret, routes := objs["StatefulSet/tether"], objs["Secret/tether"], objs["ConfigMap/tether-routes"]
	headless, client, admin, pdb := objs["Service/tether-gossip"], objs["Service/tether"], objs["Service/tether-admin"], objs["PodDisruptionBudget/tether"]
	for id, o := range map[string]obj{"StatefulSet": sts, "Secret": secret, "ConfigMap": routes, "headless Service": headless,
		"client Service": client, "admin Service": admin, "PodDisruptionBudget": pdb} {
		if o == nil {
			t.Fatalf("no %s in %v", id, keys(objs))
		}
	}
	pod := get(sts, "spec", "template")
	labels := get(pod, "metadata", "labels")
	if !matches(get(sts, "spec", "selector", "matchLabels"), labels) || !matches(get(pdb, "spec", "selector", "matchLabels"), labels) {
		t.Error("the StatefulSet's or the PDB's selector does not select the pods")
	}
	if str(sts, "spec", "serviceName") != "tether-gossip" || str(headless, "spec", "clusterIP") != "None" || get(headless, "spec", "publishNotReadyAddresses") != true {
		t.Error("the StatefulSet's serviceName must be the headless Service, publishing not-ready pods (they join before they are ready)")
	}
	if str(client, "spec", "externalTrafficPolicy") != "Local" {
		t.Error("the client Service must keep client addresses (externalTrafficPolicy: Local)")
	}
	if get(pdb, "spec", "maxUnavailable") == nil && get(pdb, "spec", "minAvailable") == nil {
		t.Error("the PDB bounds nothing")
	}
	c := list(pod, "spec", "containers")[0]
	ports := map[string]int{}
	for _, p := range list(c, "ports") {
		ports[str(p, "name")] = int(get(p, "containerPort").(uint64))
	}
	for _, svc := range []obj{headless, client, admin} {
		if !matches(get(svc, "spec", "selector"), labels) {
			t.Errorf("Service %s does not select the pods", str(svc, "metadata", "name"))
		}
		for _, p := range list(svc, "spec", "ports") {
			if _, ok := ports[str(p, "targetPort")]; !ok {
				t.Errorf("Service %s targets port %q the container does not name", str(svc, "metadata", "name"), str(p, "targetPort"))
			}
		}
	}
	env := envOf(c)
	if str(c, "readinessProbe", "httpGet", "path") != "/readyz" || str(c, "readinessProbe", "httpGet", "port") != "admin" {
		t.Error("readiness must be /readyz on the admin port")
	}
	if _, ok := env["TETHER_ADMIN_LISTEN"].(string); !ok || !strings.HasSuffix(env["TETHER_ADMIN_LISTEN"].(string), ":"+strconv.Itoa(ports["admin"])) {
		t.Errorf("TETHER_ADMIN_LISTEN %v is not the admin port %d", env["TETHER_ADMIN_LISTEN"], ports["admin"])
	}
	if env["TETHER_NODE_NAME"] != "$(POD_NAME)" || str(env["POD_NAME"], "fieldRef", "fieldPath") != "metadata.name" {
		t.Error("node names must be the stable pod names")
	}
	if env["TETHER_JOIN"] != "tether-gossip:"+strconv.Itoa(ports["gossip"]) {
		t.Errorf("TETHER_JOIN %v: want the headless Service name and the gossip port", env["TETHER_JOIN"])
	}
	if get(c, "lifecycle", "preStop") == nil {
		t.Error("no preStop hook")
	}
	if get(pod, "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("pods must run as non-root")
	}
	// Secret keys the environment refers to exist.
	for name, v := range env {
		if ref := get(v, "secretKeyRef"); ref != nil {
			if str(ref, "name") != "tether" || get(secret, "stringData", str(ref, "key")) == nil {
				t.Errorf("%s refers to a missing Secret key %v", name, ref)
			}
		}
	}
	// The data dir is the volume claim; the routes file is the ConfigMap.
	mounts := map[string]string{}
	for _, m := range list(c, "volumeMounts") {
		mounts[str(m, "mountPath")] = str(m, "name")
	}
	if mounts[env["TETHER_DATA_DIR"].(string)] != str(sts, "spec", "volumeClaimTemplates", "0", "metadata", "name") {
		t.Error("TETHER_DATA_DIR is not the volume claim's mount")
	}
	rf := env["TETHER_ROUTES_FILE"].(string)
	if vol := mounts[filepath.Dir(rf)]; vol == "" || str(findNamed(list(pod, "spec", "volumes"), vol), "configMap", "name") != "tether-routes" ||
		get(routes, "data", filepath.Base(rf)) == nil {
		t.Error("TETHER_ROUTES_FILE is not the routes ConfigMap's key")
	}

	// The container's configuration, with the pod's values filled in.
	dir := t.TempDir()
	routesFile := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routesFile, []byte(str(routes, "data", "routes.yaml")), 0o600); err != nil {
		t.Fatal(err)
	}
	podEnv := func(secrets map[string]string) []string {
		out := []string{"PATH=/usr/bin:/bin"}
		subst := strings.NewReplacer("$(POD_NAME)", "tether-0", "$(POD_IP)", "10.1.2.3")
		for name, v := range env {
			if !strings.HasPrefix(name, "TETHER_") {
				continue
			}
			s, ok := v.(string)
			if !ok {
				s = secrets[str(v, "secretKeyRef", "key")]
			}
			switch name {
			case "TETHER_ROUTES_FILE":
				s = routesFile
			case "TETHER_DATA_DIR":
				s = filepath.Join(dir, "data")
			}
			out = append(out, name+"="+subst.Replace(s))
		}
		return out
	}
	good := map[string]string{"gossip-key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "admin-token": "7d1f0c9a4be23865f0a1c7e9d4b2"}
	out := runOK(t, "", podEnv(good), bin, "validate")
	for _, w := range []string{"TETHER_NODE_NAME=tether-0", "TETHER_GOSSIP_ADVERTISE=10.1.2.3:7946", "pool app: hosts app.example.com", "app-2 http://app-2.app:8080"} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("validate output lacks %q:\n%s", w, out)
		}
	}
	shipped := map[string]string{}
	for k, v := range get(secret, "stringData").(map[string]any) {
		shipped[k] = v.(string)
	}
	cmd := exec.Command(bin, "validate")
	cmd.Env = podEnv(shipped)
	if b, err := cmd.CombinedOutput(); err == nil || cmd.ProcessState.ExitCode() != 2 || !bytes.Contains(b, []byte("TETHER_GOSSIP_KEY")) {
		t.Errorf("the shipped Secret must be refused (exit 2, TETHER_GOSSIP_KEY): %v %s", err, b)
	}

	// The example app: its pod names are the routes' replica names, and
	// its preStop hook drains its own name and waits.
	app := kustomize(t, "kubernetes/example-app")["StatefulSet/app"]
	n := int(get(app, "spec", "replicas").(uint64))
	var names []string
	for _, b := range list(readDocs(t, routesFile)[0], "pools", "0", "backends") {
		names = append(names, str(b, "name"))
	}
	if len(names) != n {
		t.Errorf("routes name %v, the app runs %d pods", names, n)
	}
	for i, name := range names {
		if name != "app-"+strconv.Itoa(i) {
			t.Errorf("replica %q is not pod app-%d", name, i)
		}
	}
	hook := strings.Join(toStrings(list(app, "spec", "template", "spec", "containers", "0", "lifecycle", "preStop", "exec", "command")), " ")
	if !regexp.MustCompile(`/api/v1/backends/\$POD_NAME/drain\?wait=\d+m`).MatchString(hook) {
		t.Errorf("the app's preStop does not drain itself with a wait: %q", hook)
	}

	if tool(t, "kubectl") {
		for _, d := range []string{"kubernetes", "kubernetes/example-app"} {
			out := runOK(t, "", nil, "kubectl", "kustomize", d)
			if !bytes.Contains(out, []byte("kind: ")) {
				t.Errorf("kubectl kustomize %s: %s", d, out)
			}
		}
	}
}

func findNamed(l []any, name string) any {
	for _, v := range l {
		if str(v, "name") == name {
			return v
		}
	}
	return nil
}

func toStrings(l []any) []string {
	var out []string
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func keys(m map[string]obj) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
