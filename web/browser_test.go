package web

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the browser the test drives. `make test` installs
// Debian's chromium; without it the test is skipped locally and fails in CI.
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found (make browser installs it)")
	}
	t.Skip("chromium not found; `make browser` installs it")
	return ""
}

// artifactDir is where screenshots go: $TETHER_ARTIFACTS when set.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("TETHER_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// newBrowserCtx starts a headless chromium. problems returns every
// uncaught exception and console error the pages reported so far (a CSP
// violation is one).
func newBrowserCtx(t *testing.T) (ctx context.Context, problems func() []string) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(bctx, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var msgs []string
	var wg sync.WaitGroup
	messages := chromedp.Console(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				mu.Lock()
				msgs = append(msgs, fmt.Sprintf("%s %s: %s", m.Type, m.Source, m.Text))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc(); wg.Wait() })
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), msgs...)
	}
}

// TestBrowser drives the pages in a real browser against a real server
// and a real stickydb.DB: log in through the form, search a binding,
// delete it with the two-step button, drain a backend, and watch the live
// refresh pick up a new binding. One screenshot per page.
func TestBrowser(t *testing.T) {
	ctx, problems := newBrowserCtx(t)
	f := newFixtureAt(t, time.Now())
	f.clk = nil
	src := f.sources()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Token = testToken
	cfg.Refresh = 300 * time.Millisecond
	s, err := New(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	base := s.URL()
	dir := artifactDir(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
		}
	}
	// nav runs an action that navigates (a link, a form) and waits for the
	// new page to load, so that the next query sees the new document.
	nav := func(a chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.RunResponse(ctx, a)
			return chromedp.Void{}, err
		}
	}
	// read stores an action's result.
	read := func(a chromedp.Action[string], into *string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := a(ctx, tg)
			*into = v
			return chromedp.Void{}, err
		}
	}
	row := `tr[data-client="10.0.1.7"][data-host="shop.test"]`
	var flash, loginURL string
	steps := []struct {
		name    string
		actions []chromedp.Action[chromedp.Void]
	}{
		{"login", []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/bindings"),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
			read(chromedp.Location(), &loginURL),
			shot("login"),
			chromedp.SendKeys(chromedp.CSS("#login-token"), testToken),
			nav(chromedp.Click(chromedp.CSS("#login-submit"))),
			chromedp.WaitVisible(chromedp.CSS("#bindings-search")),
		}},
		{"overview", []chromedp.Action[chromedp.Void]{
			nav(chromedp.Click(chromedp.CSS("#nav-overview"))),
			chromedp.WaitVisible(chromedp.CSS(`#members-table tr[data-member="c"][data-state="suspect"]`)),
			shot("overview"),
		}},
		{"search", []chromedp.Action[chromedp.Void]{
			nav(chromedp.Click(chromedp.CSS("#nav-bindings"))),
			chromedp.WaitVisible(chromedp.CSS("#f-client")),
			chromedp.SendKeys(chromedp.CSS("#f-client"), "10.0.1.7"),
			chromedp.SendKeys(chromedp.CSS("#f-host"), "shop.test"),
			nav(chromedp.Click(chromedp.CSS("#f-submit"))),
			chromedp.WaitVisible(chromedp.CSS(row)),
			shot("bindings"),
		}},
		{"delete", []chromedp.Action[chromedp.Void]{
			chromedp.Click(chromedp.CSS(row + ` button[data-action="delete"]`)),
			chromedp.WaitVisible(chromedp.CSS(row + ` button[data-action="delete"].armed`)),
			nav(chromedp.Click(chromedp.CSS(row + ` button[data-action="delete"]`))),
			chromedp.WaitVisible(chromedp.CSS(`#flash[data-kind="ok"]`)),
			read(chromedp.Text(chromedp.CSS("#flash")), &flash),
			chromedp.WaitVisible(chromedp.CSS("#bindings-empty")),
		}},
		{"vectors", []chromedp.Action[chromedp.Void]{
			nav(chromedp.Click(chromedp.CSS("#nav-vectors"))),
			chromedp.WaitVisible(chromedp.CSS(`#vector-matrix td[data-row="a"][data-origin="a"][data-seq="7"]`)),
			shot("vectors"),
		}},
		{"drain", []chromedp.Action[chromedp.Void]{
			nav(chromedp.Click(chromedp.CSS("#nav-backends"))),
			chromedp.Click(chromedp.CSS(`tr[data-pool="shop"][data-backend="r2"] button[data-action="drain"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-pool="shop"][data-backend="r2"] button[data-action="drain"].armed`)),
			nav(chromedp.Click(chromedp.CSS(`tr[data-pool="shop"][data-backend="r2"] button[data-action="drain"]`))),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-pool="shop"][data-backend="r2"][data-draining="true"]`)),
			shot("backends"),
		}},
		{"live refresh", []chromedp.Action[chromedp.Void]{
			nav(chromedp.Click(chromedp.CSS("#nav-bindings"))),
			chromedp.WaitVisible(chromedp.CSS("#bindings-table")),
			chromedp.Click(chromedp.CSS("#live-toggle")),
			chromedp.Func(func(context.Context, *chromedp.Target) error {
				_, _, err := f.db.BindIfAbsent(key(t, "10.200.0.1", "shop.test"), "r1", time.Now())
				return err
			}),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-client="10.200.0.1"][data-host="shop.test"]`)),
			chromedp.Click(chromedp.CSS("#live-toggle")),
		}},
	}
	for _, st := range steps {
		if err := chromedp.Do(ctx, st.actions...); err != nil {
			t.Fatalf("step %s: %v (screenshots in %s)", st.name, err, dir)
		}
	}
	if !strings.Contains(loginURL, "/login?next=") {
		t.Errorf("not sent to the login page: %s", loginURL)
	}
	if !strings.Contains(flash, "10.0.1.7") {
		t.Errorf("flash %q", flash)
	}
	if b, _ := f.db.Lookup(key(t, "10.0.1.7", "shop.test")); !b.Deleted {
		t.Errorf("the page's delete did not reach the core: %+v", b)
	}
	if strings.Join(f.backends.drains, ",") != "shop/r2=true" {
		t.Errorf("drains %v", f.backends.drains)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("browser reported problems:\n%s", strings.Join(p, "\n"))
	}
	t.Logf("screenshots in %s", dir)
}
