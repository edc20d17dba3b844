package webtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser is a headless chromium for a test, with the page problems it saw.
type Browser struct {
	// Ctx runs chromedp actions: chromedp.Do(b.Ctx, ...).
	Ctx context.Context
	// Dir is where Shot writes screenshots: $TETHER_ARTIFACTS when set, else
	// a temporary directory of the test.
	Dir string

	mu       sync.Mutex
	problems []string
}

// ErrNoChromium means no chromium was found on PATH.
var ErrNoChromium = errors.New("webtest: chromium not found on PATH (`make browser` installs Debian's chromium; `make test` runs it first)")

// FindChromium returns the path of the browser, or ErrNoChromium. A test
// that must not be skipped (the fleet browser test) fails on the error.
func FindChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// Chromium returns the path of the browser. `make test` installs Debian's
// chromium first; without it the test fails (a skipped browser test would
// prove nothing).
func Chromium(tb testing.TB) string {
	tb.Helper()
	p, err := FindChromium()
	if err != nil {
		tb.Fatal("webtest: chromium not found on PATH (`make browser` installs it)")
	}
	return p
}

// NewBrowser starts a headless chromium that lives until the test ends (at
// most timeout). Every uncaught exception and console error of the pages
// (a CSP violation is one) is collected: check Problems at the end.
func NewBrowser(tb testing.TB, timeout time.Duration) *Browser {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(tb)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		// No traffic of its own: the tests share a loopback-only machine.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(bctx, timeout)
	b := &Browser{Ctx: ctx, Dir: os.Getenv("TETHER_ARTIFACTS")}
	if b.Dir == "" {
		b.Dir = tb.TempDir()
	} else if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc(); wg.Wait() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		tb.Fatalf("webtest: start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s %s: %s", m.Type, m.Source, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// Problems returns the exceptions and console errors seen so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Nav runs an action that navigates (a link, a form submit) and waits for
// the new page to load, so the next query sees the new document.
func Nav(a chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.RunResponse(ctx, a)
		return chromedp.Void{}, err
	}
}

// Read runs an action and stores its result in into.
func Read[T any](a chromedp.Action[T], into *T) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, tg)
		*into = v
		return chromedp.Void{}, err
	}
}

// Shot saves a full-page PNG screenshot as Dir/name.png.
func (b *Browser) Shot(name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Void{}, os.WriteFile(filepath.Join(b.Dir, name+".png"), buf, 0o644)
	}
}

// Login fills the admin login form (the page the admin redirects to).
func Login(token string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#login-token"), token),
		Nav(chromedp.Click(chromedp.CSS("#login-submit"))),
	)
}

// ConfirmClick clicks a two-step button (data-confirm): the first click
// arms it, the second, which navigates, submits its form.
func ConfirmClick(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Click(chromedp.CSS(selector)),
		chromedp.WaitVisible(chromedp.CSS(selector+".armed")),
		Nav(chromedp.Click(chromedp.CSS(selector))),
	)
}
