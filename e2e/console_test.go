package e2e

import (
	"context"
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loa-commune/loa/internal/mediatest"
)

// consoleCommune is a commune of three boxes (two in thon-1, one in
// thon-2, placed on the map) with an operator and a viewer token.
func consoleCommune(t *testing.T) (c *commune, played map[string]string, operator, viewer string) {
	t.Helper()
	c = newCommune(t, "", "")
	places := map[string][2]string{"box-1": {"22.3364", "103.8438"}, "box-2": {"22.3391", "103.8502"}, "box-3": {"22.3298", "103.8367"}}
	played = map[string]string{}
	for _, b := range []struct{ id, group string }{{"box-1", "thon-1"}, {"box-2", "thon-1"}, {"box-3", "thon-2"}} {
		cfg := c.addBox(b.id, b.group)
		c.cli.ok("device", "locate", b.id, "--lat", places[b.id][0], "--lon", places[b.id][1])
		played[b.id] = c.startBox(b.id, cfg)
	}
	c.waitOnline("box-1", "box-2", "box-3")
	operator = strings.TrimSpace(c.cli.ok("token", "add", "can-bo-xa", "--role", "operator"))
	viewer = strings.TrimSpace(c.cli.ok("token", "add", "truong-thon", "--role", "viewer"))
	return c, played, operator, viewer
}

// TestConsoleAnnounce: an operator signs in, uploads an M4A, announces it
// to thon-1, and watches both of its boxes play it — on the status page,
// live, without reloading, and on the announcement's page — then exports
// the report as CSV. What the boxes played is checked against ffmpeg's
// decode of the upload.
func TestConsoleAnnounce(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "espeak-ng")
	c, played, operator, _ := consoleCommune(t)
	dir := t.TempDir()
	wav := mediatest.Speech(t, filepath.Join(dir, "tiem-chung.wav"),
		"Thông báo. Sáng thứ hai, trạm y tế xã tổ chức tiêm chủng cho trẻ em dưới năm tuổi. Các gia đình đưa con đến đúng giờ.")
	m4a := filepath.Join(dir, "tiem-chung.m4a")
	mediatest.FFmpeg(t, "-i", wav, "-c:a", "aac", "-b:a", "96k", m4a)

	b := newBrowser(t)
	b.signIn(c.server, operator)
	b.screenshot("status")
	// The status page stays open in a second tab, never reloaded.
	status := b.tab()
	status.run("open the status page", chromedp.Navigate(c.server+"/"), chromedp.WaitVisible(chromedp.ID("boxes")),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`window.loaNotReloaded = true`)(ctx, t)
			return err
		}))

	b.run("fill the announce form",
		chromedp.Navigate(c.server+"/announce"),
		chromedp.WaitVisible(chromedp.ID("announce-form")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{m4a}),
		chromedp.Click(chromedp.CSS(`input[name="group"][value="thon-1"]`)),
	)
	b.screenshot("announce")
	b.run("send", chromedp.Click(chromedp.ID("send")), chromedp.WaitVisible(chromedp.ID("deliveries")))
	loc := value(b, "where the form led", chromedp.Location())
	id, ok := strings.CutPrefix(loc, c.server+"/announcements/")
	if !ok || id == "" {
		t.Fatalf("after sending, the browser is at %s; want the announcement's page", loc)
	}

	for _, box := range []string{"box-1", "box-2"} {
		status.run(box+" playing on the status page",
			chromedp.WaitVisible(chromedp.CSS(`#box-`+box+`[data-state="playing"]`)))
	}
	if !value(status, "the status page was not reloaded", chromedp.Evaluate[bool](`window.loaNotReloaded === true`)) {
		t.Error("the status page reloaded to show the change; want it updated in place")
	}
	for _, box := range []string{"box-1", "box-2"} {
		b.run(box+" played on the announcement's page",
			chromedp.WaitVisible(chromedp.CSS(`#delivery-`+box+`[data-status="played"]`)))
	}
	b.screenshot("announcement")
	if n := value(b, "rows", chromedp.Evaluate[int](`document.querySelectorAll('#deliveries [id^="delivery-"]').length`)); n != 2 {
		t.Errorf("the announcement's page lists %d boxes; want the 2 of thon-1", n)
	}

	rep := c.report(id)
	want := expectedPCM(t, m4a, 80)
	for _, box := range []string{"box-1", "box-2"} {
		if rep[box].Status != "played" {
			t.Fatalf("report row of %s: %+v", box, rep[box])
		}
		assertSamples(t, box, readWAV(t, filepath.Join(played[box], rep[box].Item+".wav")), want)
	}
	if files, _ := filepath.Glob(filepath.Join(played["box-3"], "*.wav")); len(files) != 0 {
		t.Fatalf("box-3 in thon-2 played %v", files)
	}

	// The report, exported as CSV by the page's own link.
	b.run("open the report", chromedp.Navigate(c.server+"/report"), chromedp.WaitVisible(chromedp.ID("csv")))
	b.screenshot("report")
	text := value(b, "download the CSV", chromedp.Evaluate[string](
		`fetch(document.getElementById("csv").href).then(r => r.ok ? r.text() : "HTTP " + r.status)`, chromedp.EvalAwaitPromise))
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(text, "\ufeff"))).ReadAll()
	if err != nil || len(rows) < 3 {
		t.Fatalf("the report's CSV (%v):\n%s", err, text)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	playedIn := map[string]bool{}
	for _, r := range rows[1:] {
		if r[col["announcement"]] == id && r[col["status"]] == "played" {
			playedIn[r[col["device"]]] = true
		}
	}
	if !playedIn["box-1"] || !playedIn["box-2"] || len(playedIn) != 2 {
		t.Fatalf("the CSV's played rows of %s: %v; want box-1 and box-2 (header %v)", id, playedIn, rows[0])
	}

	// A commune's usual week, for the schedules page.
	c.cli.ok("schedule", "add", "--cron", "0 6 * * *", "--file", "testdata/short.mp3", "--all", "--name", "Bản tin sáng")
	c.cli.ok("schedule", "add", "--cron", "30 17 * * 1,3,5", "--file", m4a, "--group", "thon-1", "--name", "Nhắc tiêm chủng")
	for _, page := range []string{"schedules", "media", "audit"} {
		b.run("open "+page, chromedp.Navigate(c.server+"/"+page), chromedp.WaitVisible(chromedp.ID("main")))
		b.screenshot(page)
	}
	b.phone()
	b.run("status on a phone", chromedp.Navigate(c.server+"/"), chromedp.WaitVisible(chromedp.ID("boxes")))
	b.screenshot("status-phone")
}

// TestConsoleRefusals: a viewer finds no announce or emergency controls and
// is refused when posting the forms by hand; a forged CSRF token is refused;
// an emergency whose typed target is wrong sends nothing, the right one
// shows the banner, and Cancel ends it.
func TestConsoleRefusals(t *testing.T) {
	c, _, operator, viewer := consoleCommune(t)
	activeEmergencies := func() int {
		var list []struct{ ID string }
		c.cli.json(&list, "emergency", "list")
		return len(list)
	}

	v := newBrowser(t)
	v.signIn(c.server, viewer)
	if n := value(v, "controls", chromedp.Evaluate[int](
		`document.querySelectorAll('a[href="/announce"], a[href="/emergency"], #send, #sound, .banner form').length`)); n != 0 {
		t.Errorf("a viewer's status page has %d announce or emergency controls", n)
	}
	csrf := value(v, "the session's CSRF token", chromedp.Evaluate[string](`document.body.dataset.csrf`))
	for _, path := range []string{"/announce", "/emergency"} {
		status, body := v.post(path, map[string]string{"csrf": csrf, "group": "thon-1", "text": "Thử", "target": "all", "confirm": "TẤT CẢ", "when": "now"})
		if status != 403 || !strings.Contains(body, "truong-thon") {
			t.Errorf("viewer posting %s by hand: %d; want 403 naming the token\n%s", path, status, tail(body, 500))
		}
	}

	o := newBrowser(t)
	o.signIn(c.server, operator)
	if status, _ := o.post("/emergency", map[string]string{"csrf": "forged-token", "target": "all", "confirm": "TẤT CẢ", "tone": "siren"}); status != 403 {
		t.Errorf("a forged CSRF token: %d; want 403", status)
	}
	// The form itself, its hidden token changed in the page.
	o.run("a tampered form",
		chromedp.Navigate(c.server+"/emergency"),
		chromedp.WaitVisible(chromedp.ID("emergency-form")),
		chromedp.SetAttributeValue(chromedp.CSS(`#emergency-form input[name="csrf"]`), "value", "tampered"),
		chromedp.Click(chromedp.CSS(`input[name="target"][value="all"]`)),
		chromedp.SendKeys(chromedp.ID("confirm"), "TẤT CẢ"),
		chromedp.Click(chromedp.ID("sound")),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if n := activeEmergencies(); n != 0 {
		t.Fatalf("%d emergencies after forged forms; want none", n)
	}

	o.run("the emergency form, wrong target typed",
		chromedp.Navigate(c.server+"/emergency"),
		chromedp.WaitVisible(chromedp.ID("emergency-form")),
		chromedp.Click(chromedp.CSS(`input[name="target"][value="groups"]`)),
		chromedp.Click(chromedp.CSS(`input[name="group"][value="thon-1"]`)),
		chromedp.Click(chromedp.CSS(`input[name="exercise"]`)),
	)
	if want := value(o, "the hint", chromedp.Text(chromedp.ID("confirm-want"))); want != "thon-1" {
		t.Errorf("the form asks to type %q; want thon-1", want)
	}
	o.screenshot("emergency")
	o.run("send with thon-2 typed", chromedp.SendKeys(chromedp.ID("confirm"), "thon-2"), chromedp.Click(chromedp.ID("sound")),
		chromedp.WaitVisible(chromedp.ID("error")))
	if n := activeEmergencies(); n != 0 {
		t.Fatalf("a wrong typed target sent %d emergencies", n)
	}
	o.run("send with thon-1 typed",
		chromedp.WaitVisible(chromedp.ID("emergency-form")), // as sent: thon-1, exercise
		chromedp.Clear(chromedp.ID("confirm")),
		chromedp.SendKeys(chromedp.ID("confirm"), "thon-1"),
		chromedp.Click(chromedp.ID("sound")),
		chromedp.WaitVisible(chromedp.CSS(".banner")),
	)
	if n := activeEmergencies(); n != 1 {
		t.Fatalf("%d emergencies after a confirmed one; want 1", n)
	}
	o.screenshot("emergency-active")
	// The viewer's open page shows the banner too, without its Cancel.
	v.run("the viewer sees the banner", chromedp.Navigate(c.server+"/"), chromedp.WaitVisible(chromedp.CSS(".banner")))
	if n := value(v, "cancel buttons", chromedp.Evaluate[int](`document.querySelectorAll('.banner button').length`)); n != 0 {
		t.Errorf("a viewer's banner has %d buttons", n)
	}
	o.run("cancel", chromedp.Click(chromedp.CSS(".banner button")), chromedp.WaitVisible(chromedp.ID("notice")))
	eventually(t, 10*time.Second, "no active emergency", func() bool { return activeEmergencies() == 0 })
	v.run("the banner goes from the viewer's page by itself", chromedp.WaitNotPresent(chromedp.CSS(".banner")))
}
