package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tetherproxy/tether/test/fleet"
	"github.com/tetherproxy/tether/web"
	"github.com/tetherproxy/tether/web/webtest"
	"go.uber.org/goleak"
)

// TestBrowserFleet (issue 6, phase 2) drives node A's admin pages in a real
// headless chromium against a 3-node fleet of real tether processes:
//
//   - a real client request through node B's proxy, from its own 127.x
//     source address, makes a binding; every node's API shows it;
//   - on node A's Bindings page the test searches it by client and host,
//     finds the row (replica, origin B, generation as A's API says), and
//     deletes it with the two-step button; every node's API then answers
//     404 for it within a deadline;
//   - with live refresh on, a binding made through node C appears on the
//     open page without a reload;
//   - the Vectors page shows B's origin at the sequence A's API reports;
//   - on node A's Backends page it drains the binding's replica (two-step):
//     every node's /api/v1/backends shows the drain (gossip), and new
//     clients through node C avoid the replica; undrain is seen everywhere.
//
// Variants: admin open on loopback, and with TETHER_ADMIN_TOKEN (the
// browser logs in through the form; the API refuses requests without the
// token). A screenshot of every page goes to test/artifacts/browser-fleet/
// (or $TETHER_ARTIFACTS/browser-fleet/). Chromium missing is a failure, not
// a skip: `make test` installs it.
func TestBrowserFleet(t *testing.T) {
	if _, err := webtest.FindChromium(); err != nil {
		t.Fatal(err)
	}
	for i, v := range []struct{ name, token string }{
		{"open", ""},
		{"token", "fleet-browser-token-0123456789"},
	} {
		t.Run(v.name, func(t *testing.T) {
			// Registered first, so it runs after every other cleanup
			// (browser, fleet, clients) has ended its goroutines.
			before := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, before) })
			browserFleet(t, v.name, v.token, 120_000+i)
		})
	}
}

func browserFleet(t *testing.T, variant, token string, clientIndex int) {
	start := time.Now()
	reps, spec := backends(t, "r1", "r2")
	env := map[string]string{"TETHER_BACKENDS": spec}
	if token != "" {
		env["TETHER_ADMIN_TOKEN"] = token
	}
	f := fleet.Start(t, bin, fleet.Options{Nodes: 3, Env: env})
	a, b, c := f.Nodes[0], f.Nodes[1], f.Nodes[2]
	var apis []*webtest.Instance
	var names []string
	for _, n := range f.Nodes {
		apis = append(apis, adminAPI(t, n, token))
		names = append(names, n.Name)
	}
	t.Logf("fleet ready in %v", time.Since(start).Round(time.Millisecond))
	if token != "" {
		// The token is in force on every node: no token, no API.
		for _, n := range f.Nodes {
			if code, _, err := n.Get("/api/v1/bindings"); err != nil || code != http.StatusUnauthorized {
				t.Fatalf("%s: GET /api/v1/bindings without the token: %d %v, want 401", n.Name, code, err)
			}
		}
	}

	// A real end user through node B's proxy.
	user := fleet.NewClient(fleet.ClientAddr(clientIndex), false)
	t.Cleanup(user.Close)
	ctx := ctxTimeout(t, 30*time.Second)
	replica, err := user.Backend(ctx, b.Proxy, appHost)
	if err != nil {
		t.Fatalf("request through %s: %v\n%s", b.Name, err, b.LogTail(20))
	}
	if replica != reps[0].Name() && replica != reps[1].Name() {
		t.Fatalf("served by %q", replica)
	}
	other := reps[0].Name()
	if replica == other {
		other = reps[1].Name()
	}
	client := user.Addr.String()
	took := eventually(t, 10*time.Second, "the binding replicated to every node", func() error {
		return onEvery(apis, names, func(in *webtest.Instance) error {
			got, found, err := in.Binding(appHost, client)
			switch {
			case err != nil:
				return err
			case !found:
				return errors.New("not found")
			case got.Replica != replica || got.Origin != b.Name:
				return fmt.Errorf("got %s from %s", got.Replica, got.Origin)
			}
			return nil
		})
	})
	t.Logf("binding %s %s -> %s made through %s, on every node in %v", client, appHost, replica, b.Name, took.Round(time.Millisecond))
	atA, _, err := apis[0].Binding(appHost, client)
	if err != nil {
		t.Fatal(err)
	}
	vec, err := apis[0].Vector()
	if err != nil || len(vec.Vector[b.Name]) == 0 {
		t.Fatalf("%s's vector has no %s: %+v %v", a.Name, b.Name, vec.Vector, err)
	}
	var seqB web.Pair // B's newest epoch, the one the matrix cell shows
	for _, p := range vec.Vector[b.Name] {
		if p.Epoch >= seqB.Epoch {
			seqB = p
		}
	}

	browserStart := time.Now()
	br := webtest.NewBrowser(t, 60*time.Second)
	t.Logf("chromium started in %v", time.Since(browserStart).Round(time.Millisecond))
	br.Dir = artifactsDir(t, filepath.Join("browser-fleet", variant))
	admin := "http://" + a.Admin
	row := fmt.Sprintf(`#bindings-table tr[data-client=%q][data-host=%q]`, client, appHost)
	backendRow := func(name string) string { return fmt.Sprintf(`tr[data-pool="default"][data-backend=%q]`, name) }
	var flash, location string

	steps := []step{
		{"open node A", []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(admin + "/"),
			chromedp.WaitReady(chromedp.CSS("body")),
			webtest.Read(chromedp.Location(), &location),
		}},
	}
	if token != "" {
		steps = append(steps, step{"login", []chromedp.Action[chromedp.Void]{
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
			br.Shot("login"),
			webtest.Login(token),
		}})
	}
	steps = append(steps, []step{
		{"overview", []chromedp.Action[chromedp.Void]{
			chromedp.WaitVisible(chromedp.CSS(`#node-name`)),
			chromedp.WaitVisible(chromedp.CSS(`#members-table tr[data-member="node0"][data-state="alive"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#members-table tr[data-member="node1"][data-state="alive"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#members-table tr[data-member="node2"][data-state="alive"]`)),
			br.Shot("overview"),
		}},
		{"find the binding", []chromedp.Action[chromedp.Void]{
			webtest.Nav(chromedp.Click(chromedp.CSS("#nav-bindings"))),
			chromedp.SendKeys(chromedp.CSS("#f-client"), client),
			chromedp.SendKeys(chromedp.CSS("#f-host"), appHost),
			webtest.Nav(chromedp.Click(chromedp.CSS("#f-submit"))),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`%s[data-replica=%q][data-origin=%q][data-generation="%d"]`,
				row, replica, b.Name, atA.Generation))),
			chromedp.WaitVisible(chromedp.CSS(`#bindings-count[data-count="1"]`)),
			br.Shot("bindings"),
		}},
		{"delete it", []chromedp.Action[chromedp.Void]{
			webtest.ConfirmClick(row + ` button[data-action="delete"]`),
			chromedp.WaitVisible(chromedp.CSS(`#flash[data-kind="ok"]`)),
			webtest.Read(chromedp.Text(chromedp.CSS("#flash")), &flash),
			chromedp.WaitVisible(chromedp.CSS("#bindings-empty")),
			br.Shot("bindings-deleted"),
		}},
	}...)
	run(t, br, f, steps)
	if token != "" && !strings.Contains(location, "/login") {
		t.Errorf("with a token, node A's overview sent the browser to %s, not the login page", location)
	}
	if token == "" && strings.Contains(location, "/login") {
		t.Errorf("without a token, node A asked for a login (%s)", location)
	}
	if !strings.Contains(flash, client) {
		t.Errorf("flash after delete %q does not name the client", flash)
	}
	took = eventually(t, 10*time.Second, "the deleted binding gone from every node's API", func() error {
		return onEvery(apis, names, func(in *webtest.Instance) error {
			got, found, err := in.Binding(appHost, client)
			switch {
			case err != nil:
				return err
			case found:
				return fmt.Errorf("still %s, generation %d", got.Replica, got.Generation)
			}
			return nil
		})
	})
	t.Logf("delete through %s's page: 404 on every node in %v", a.Name, took.Round(time.Millisecond))

	// Live refresh shows what the fleet does: with "live" on, a binding
	// made through node C appears on node A's open page, no reload.
	late := fleet.NewClient(fleet.ClientAddr(clientIndex+1000), false)
	t.Cleanup(late.Close)
	lateRow := fmt.Sprintf(`#bindings-table tr[data-client=%q][data-host=%q][data-origin=%q]`, late.Addr, appHost, c.Name)
	run(t, br, f, []step{
		{"live refresh", []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(fmt.Sprintf("%s/bindings?client=%s&host=%s", admin, late.Addr, appHost)),
			chromedp.WaitVisible(chromedp.CSS("#bindings-empty")),
			chromedp.Click(chromedp.CSS("#live-toggle")),
			chromedp.Func(func(context.Context, *chromedp.Target) error {
				_, err := late.Backend(ctx, c.Proxy, appHost)
				return err
			}),
			chromedp.WaitVisible(chromedp.CSS(lateRow)),
			chromedp.Click(chromedp.CSS("#live-toggle")),
			chromedp.WaitVisible(chromedp.CSS(`#live-toggle:not(:checked)`)),
		}},
		{"vectors", []chromedp.Action[chromedp.Void]{
			webtest.Nav(chromedp.Click(chromedp.CSS("#nav-vectors"))),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#vector-matrix td[data-row=%q][data-origin=%q][data-epoch="%d"][data-seq="%d"]`, a.Name, b.Name, seqB.Epoch, seqB.Seq))),
			br.Shot("vectors"),
		}},
		{"drain", []chromedp.Action[chromedp.Void]{
			webtest.Nav(chromedp.Click(chromedp.CSS("#nav-backends"))),
			chromedp.WaitVisible(chromedp.CSS(backendRow(replica) + `[data-draining="false"]`)),
			webtest.ConfirmClick(backendRow(replica) + ` button[data-action="drain"]`),
			chromedp.WaitVisible(chromedp.CSS(`#flash[data-kind="ok"]`)),
			chromedp.WaitVisible(chromedp.CSS(backendRow(replica) + `[data-draining="true"]`)),
			br.Shot("backends"),
		}},
	})
	drainSeen := func(want bool) func() error {
		return func() error {
			return onEvery(apis, names, func(in *webtest.Instance) error {
				bs, err := backendsOf(in)
				if err != nil {
					return err
				}
				on, found := draining(bs, "default", replica)
				if !found {
					return fmt.Errorf("no backend default/%s in %+v", replica, bs)
				}
				if on != want {
					return fmt.Errorf("draining %v", on)
				}
				return nil
			})
		}
	}
	took = eventually(t, 15*time.Second, "the drain in every node's /api/v1/backends", drainSeen(true))
	t.Logf("drain of %s through %s's page: seen on every node in %v", replica, a.Name, took.Round(time.Millisecond))
	// The drain is real on node C's proxy: new clients avoid the replica
	// (each would have a 1 in 2 chance of it otherwise).
	for i := 1; i <= 8; i++ {
		fresh := fleet.NewClient(fleet.ClientAddr(clientIndex+100*i), false)
		got, err := fresh.Backend(ctx, c.Proxy, appHost)
		fresh.Close()
		if err != nil || got != other {
			t.Fatalf("new client %d through %s with %s drained: served by %q (%v), want %s", i, c.Name, replica, got, err, other)
		}
	}

	run(t, br, f, []step{
		{"undrain", []chromedp.Action[chromedp.Void]{
			webtest.Nav(chromedp.Click(chromedp.CSS(backendRow(replica) + ` button[data-action="undrain"]`))),
			chromedp.WaitVisible(chromedp.CSS(`#flash[data-kind="ok"]`)),
			chromedp.WaitVisible(chromedp.CSS(backendRow(replica) + `[data-draining="false"]`)),
			br.Shot("backends-undrained"),
		}},
	})
	took = eventually(t, 15*time.Second, "the undrain in every node's /api/v1/backends", drainSeen(false))
	t.Logf("undrain seen on every node in %v", took.Round(time.Millisecond))

	if p := br.Problems(); len(p) > 0 {
		t.Errorf("the browser reported problems:\n%s", strings.Join(p, "\n"))
	}
	shots, _ := filepath.Glob(filepath.Join(br.Dir, "*.png"))
	for _, s := range shots {
		if st, err := os.Stat(s); err != nil || st.Size() < 1000 {
			t.Errorf("screenshot %s is empty (%v)", s, err)
		}
	}
	t.Logf("%d screenshots in %s; %v in all", len(shots), br.Dir, time.Since(start).Round(time.Millisecond))
}

// stepTimeout bounds one browser step, so that a missing element fails
// the test with its step's name well before the browser's own deadline.
const stepTimeout = 15 * time.Second

// step is a named list of browser actions.
type step struct {
	name    string
	actions []chromedp.Action[chromedp.Void]
}

// run runs the browser steps in order; on a failure it saves a screenshot
// of where the browser was and shows the nodes' last log lines.
func run(t *testing.T, br *webtest.Browser, f *fleet.Fleet, steps []step) {
	t.Helper()
	for _, st := range steps {
		start := time.Now()
		ctx, cancel := context.WithTimeout(br.Ctx, stepTimeout)
		err := chromedp.Do(ctx, st.actions...)
		cancel()
		if err != nil {
			name := "failed-" + strings.ReplaceAll(st.name, " ", "-")
			shotErr := chromedp.Do(br.Ctx, br.Shot(name))
			var logs strings.Builder
			for _, n := range f.Nodes {
				fmt.Fprintf(&logs, "--- %s\n%s\n", n.Name, n.LogTail(8))
			}
			t.Fatalf("browser step %q: %v (screenshot %s.png in %s: %v)\n%s", st.name, err, name, br.Dir, shotErr, logs.String())
		}
		t.Logf("browser: %s (%v)", st.name, time.Since(start).Round(time.Millisecond))
	}
}
