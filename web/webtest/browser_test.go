package webtest

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tetherproxy/tether/stickydb"
	"github.com/tetherproxy/tether/web"
)

type members []web.Member

func (m members) Members() []web.Member { return append([]web.Member(nil), m...) }

type backends struct {
	mu     sync.Mutex
	list   []web.BackendStatus
	drains []string
}

func (b *backends) Backends() []web.BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]web.BackendStatus(nil), b.list...)
}

func (b *backends) SetDrain(pool, name string, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.list {
		if b.list[i].Pool == pool && b.list[i].Name == name {
			b.list[i].Draining = on
			b.drains = append(b.drains, fmt.Sprintf("%s/%s=%v", pool, name, on))
			return nil
		}
	}
	return fmt.Errorf("no backend %s/%s", pool, name)
}

func (b *backends) Reload() error { return nil }

func mustKey(t *testing.T, ip, host string) stickydb.Key {
	k, err := stickydb.NewKey(netip.MustParseAddr(ip), host)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestBrowser drives the pages in a real browser against a real server and
// a real stickydb.DB (membership and the proxy are stand-ins): log in
// through the form, search a binding, delete it with the two-step button,
// drain a backend, and watch the live refresh pick up a new binding. One
// screenshot per page. The fleet test of phase 2 follows the same steps
// against three nodes.
func TestBrowser(t *testing.T) {
	b := NewBrowser(t, 90*time.Second)
	now := time.Now()
	db, err := stickydb.New(stickydb.DefaultConfig("a"), now)
	if err != nil {
		t.Fatal(err)
	}
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.1.7", "2001:db8::1"} {
		if _, _, err := db.BindIfAbsent(mustKey(t, ip, "shop.test"), fmt.Sprintf("r%d", i%2+1), now); err != nil {
			t.Fatal(err)
		}
	}
	be := &backends{list: []web.BackendStatus{
		{Pool: "shop", Hosts: []string{"shop.test"}, Name: "r1", URL: "http://127.0.0.1:8001", Weight: 1, Healthy: true},
		{Pool: "shop", Hosts: []string{"shop.test"}, Name: "r2", URL: "http://127.0.0.1:8002", Weight: 1, Healthy: true},
	}}
	cfg := web.DefaultConfig()
	cfg.Token = "browser-token-0123456789"
	cfg.Refresh = 300 * time.Millisecond
	in := Start(t, cfg, web.Sources{
		Core:     db,
		Members:  members{{Name: "a", Addr: "127.0.0.1:7946", State: "alive"}, {Name: "b", Addr: "127.0.0.2:7946", State: "suspect"}},
		Backends: be,
		Node:     web.NodeInfo{Version: "test", Started: now},
	})

	row := `tr[data-client="10.0.1.7"][data-host="shop.test"]`
	var flash, loginURL string
	steps := []struct {
		name    string
		actions []chromedp.Action[chromedp.Void]
	}{
		{"login", []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(in.URL + "/bindings"),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
			Read(chromedp.Location(), &loginURL),
			b.Shot("login"),
			Login(in.Token),
			chromedp.WaitVisible(chromedp.CSS("#bindings-search")),
		}},
		{"overview", []chromedp.Action[chromedp.Void]{
			Nav(chromedp.Click(chromedp.CSS("#nav-overview"))),
			chromedp.WaitVisible(chromedp.CSS(`#members-table tr[data-member="b"][data-state="suspect"]`)),
			b.Shot("overview"),
		}},
		{"search", []chromedp.Action[chromedp.Void]{
			Nav(chromedp.Click(chromedp.CSS("#nav-bindings"))),
			chromedp.SendKeys(chromedp.CSS("#f-client"), "10.0.1.7"),
			chromedp.SendKeys(chromedp.CSS("#f-host"), "shop.test"),
			Nav(chromedp.Click(chromedp.CSS("#f-submit"))),
			chromedp.WaitVisible(chromedp.CSS(row)),
			b.Shot("bindings"),
		}},
		{"delete", []chromedp.Action[chromedp.Void]{
			ConfirmClick(row + ` button[data-action="delete"]`),
			chromedp.WaitVisible(chromedp.CSS(`#flash[data-kind="ok"]`)),
			Read(chromedp.Text(chromedp.CSS("#flash")), &flash),
			chromedp.WaitVisible(chromedp.CSS("#bindings-empty")),
		}},
		{"vectors", []chromedp.Action[chromedp.Void]{
			Nav(chromedp.Click(chromedp.CSS("#nav-vectors"))),
			chromedp.WaitVisible(chromedp.CSS(`#vector-matrix td[data-row="a"][data-origin="a"][data-seq="5"]`)),
			b.Shot("vectors"),
		}},
		{"drain", []chromedp.Action[chromedp.Void]{
			Nav(chromedp.Click(chromedp.CSS("#nav-backends"))),
			ConfirmClick(`tr[data-pool="shop"][data-backend="r2"] button[data-action="drain"]`),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-pool="shop"][data-backend="r2"][data-draining="true"]`)),
			b.Shot("backends"),
		}},
		{"live refresh", []chromedp.Action[chromedp.Void]{
			Nav(chromedp.Click(chromedp.CSS("#nav-bindings"))),
			chromedp.WaitVisible(chromedp.CSS("#bindings-table")),
			chromedp.Click(chromedp.CSS("#live-toggle")),
			chromedp.Func(func(context.Context, *chromedp.Target) error {
				_, _, err := db.BindIfAbsent(mustKey(t, "10.200.0.1", "shop.test"), "r1", time.Now())
				return err
			}),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-client="10.200.0.1"][data-host="shop.test"]`)),
			chromedp.Click(chromedp.CSS("#live-toggle")),
		}},
	}
	for _, st := range steps {
		if err := chromedp.Do(b.Ctx, st.actions...); err != nil {
			t.Fatalf("step %s: %v (screenshots in %s)", st.name, err, b.Dir)
		}
	}
	if !strings.Contains(loginURL, "/login?next=") {
		t.Errorf("not sent to the login page: %s", loginURL)
	}
	if !strings.Contains(flash, "10.0.1.7") {
		t.Errorf("flash %q", flash)
	}
	if got, _ := db.Lookup(mustKey(t, "10.0.1.7", "shop.test")); !got.Deleted {
		t.Errorf("the page's delete did not reach the core: %+v", got)
	}
	if _, found, err := in.Binding("shop.test", "10.0.1.7"); found || err != nil {
		t.Errorf("the API still shows the deleted binding (%v)", err)
	}
	be.mu.Lock()
	drains := strings.Join(be.drains, ",")
	be.mu.Unlock()
	if drains != "shop/r2=true" {
		t.Errorf("drains %q", drains)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the browser reported problems:\n%s", strings.Join(p, "\n"))
	}
	t.Logf("screenshots in %s", b.Dir)
}

// TestBrowserSeesProblems proves that Problems can fail a test: a console
// error from the page is collected.
func TestBrowserSeesProblems(t *testing.T) {
	b := NewBrowser(t, 30*time.Second)
	if _, err := chromedp.Run(b.Ctx, chromedp.Evaluate[any](`console.error("probe-1234")`)); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, "console error collected", func() bool {
		return strings.Contains(strings.Join(b.Problems(), "\n"), "probe-1234")
	})
}
