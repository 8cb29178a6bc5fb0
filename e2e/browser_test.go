package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loa-commune/loa/internal/mediatest"
)

// browser is Debian's headless Chromium driven through the DevTools
// protocol: a real browser runs the console's pages, scripts, cookies and
// forms. Each browser has its own profile, so its cookies are its own.
type browser struct {
	t   testing.TB
	ctx context.Context
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	mediatest.Need(t, "chromium")
	path, _ := exec.LookPath("chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first call starts the browser and lives as long as ctx: no
	// timeout on it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

// tab opens another tab of the same browser (same cookies).
func (b *browser) tab() *browser {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.t.Fatalf("open a tab: %v", err)
	}
	return &browser{t: b.t, ctx: ctx}
}

// run runs steps within a minute, failing the test with what was being
// done and the page it was on.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.within(time.Minute, chromedp.Steps(steps...)); err != nil {
		b.fail(what, err)
	}
}

// value runs a for its value within a minute.
func value[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

func (b *browser) within(d time.Duration, a chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Do(ctx, a)
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	url, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	b.t.Fatalf("browser: %s: %v\n(at %s)\n%s", what, err, url, tail(text, 2000))
}

// signIn signs in with token on the console at base.
func (b *browser) signIn(base, token string) {
	b.t.Helper()
	b.run("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("boxes")),
	)
}

// post posts a form from the page's own script, as someone who
// copies a request by hand would, and returns the answer's status and text.
func (b *browser) post(path string, form map[string]string) (int, string) {
	b.t.Helper()
	type answer struct {
		Status int    `json:"status"`
		Text   string `json:"text"`
	}
	js := `(async () => {
		const f = new URLSearchParams(` + jsonString(b.t, form) + `);
		const r = await fetch(` + jsonString(b.t, path) + `, {method: "POST", body: f, redirect: "manual"});
		return {status: r.status, text: await r.text()};
	})()`
	res := value(b, "post "+path, chromedp.Evaluate[answer](js, chromedp.EvalAwaitPromise))
	return res.Status, res.Text
}

// screenshot saves the page as docs/console/NAME.png when LOA_SCREENSHOTS
// names the folder (make screenshots).
func (b *browser) screenshot(name string) {
	dir := os.Getenv("LOA_SCREENSHOTS")
	if dir == "" {
		return
	}
	b.run("settle", chromedp.Sleep(300*time.Millisecond))
	png := value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// phone makes the window a phone's (for a screenshot of the small layout).
func (b *browser) phone() {
	b.run("phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
}

func jsonString(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
