package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
	"github.com/tetherproxy/tether/web"
	"github.com/tetherproxy/tether/web/webtest"
)

// adminAPI is a JSON client of one node's admin API that sends the fleet's
// token (fleet.Node.Get sends none). Its idle connections close when the
// test ends.
func adminAPI(t *testing.T, n *fleet.Node, token string) *webtest.Instance {
	in := &webtest.Instance{URL: "http://" + n.Admin, Token: token, Client: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(in.Client.CloseIdleConnections)
	return in
}

// backendsOf reads /api/v1/backends.
func backendsOf(in *webtest.Instance) ([]web.BackendView, error) {
	var out []web.BackendView
	_, err := in.Do(http.MethodGet, "/api/v1/backends", nil, &out)
	return out, err
}

// draining reports whether pool/name is draining in a /api/v1/backends answer.
func draining(bs []web.BackendView, pool, name string) (on, found bool) {
	for _, b := range bs {
		if b.Pool == pool && b.Name == name {
			return b.Draining, true
		}
	}
	return false, false
}

// eventually polls cond every 25 ms until it returns nil or within passes,
// then fails the test with msg and cond's last error.
func eventually(t *testing.T, within time.Duration, msg string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s: %v", within, msg, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// onEvery runs check against every node and joins the failures.
func onEvery(apis []*webtest.Instance, names []string, check func(in *webtest.Instance) error) error {
	var bad []string
	for i, in := range apis {
		if err := check(in); err != nil {
			bad = append(bad, names[i]+": "+err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// artifactsDir is where a test's screenshots go: $TETHER_ARTIFACTS/name
// when set, else test/artifacts/name (gitignored). Old files are removed,
// so every file there is from this run.
func artifactsDir(t *testing.T, name string) string {
	base := os.Getenv("TETHER_ARTIFACTS")
	if base == "" {
		base = "artifacts"
	}
	dir := filepath.Join(base, name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
