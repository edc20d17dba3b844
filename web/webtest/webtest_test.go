package webtest

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/tetherproxy/tether/stickydb"
	"github.com/tetherproxy/tether/web"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInstance(t *testing.T) {
	db, err := stickydb.New(stickydb.DefaultConfig("n1"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, _ := stickydb.NewKey(netip.MustParseAddr("127.0.0.9"), "app.test")
	if _, _, err := db.BindIfAbsent(k, "r1", time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg := web.DefaultConfig()
	cfg.Token = "webtest-token-0123456789"
	in := Start(t, cfg, web.Sources{Core: db})

	b, found, err := in.Binding("app.test", "127.0.0.9")
	if err != nil || !found || b.Replica != "r1" {
		t.Fatalf("%+v %v %v", b, found, err)
	}
	if code, err := in.Do(http.MethodPut, "/api/v1/bindings/app.test/127.0.0.9", web.RebindRequest{Replica: "r2"}, &b); code != 200 || err != nil || b.Replica != "r2" {
		t.Fatalf("rebind %d %v %+v", code, err, b)
	}
	if code, err := in.Do(http.MethodDelete, "/api/v1/bindings/app.test/127.0.0.9", nil, nil); code != 200 || err != nil {
		t.Fatalf("delete %d %v", code, err)
	}
	Eventually(t, 2*time.Second, "binding gone", func() bool {
		_, found, err := in.Binding("app.test", "127.0.0.9")
		return err == nil && !found
	})
	if code, err := in.Do(http.MethodGet, "/api/v1/bindings?client=x", nil, nil); code != 400 || err == nil {
		t.Errorf("bad filter: %d %v", code, err)
	}
	v, err := in.Vector()
	if err != nil || v.Node != "n1" || v.Seq != 3 || v.Digest.Sum == "" {
		t.Errorf("vector %+v %v", v, err)
	}
	noToken := *in
	noToken.Token = ""
	if code, _ := noToken.Do(http.MethodGet, "/api/v1/vector", nil, nil); code != 401 {
		t.Errorf("without token: %d", code)
	}
}
