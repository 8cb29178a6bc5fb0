package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// villages gives the site box-1 and box-2 in thon-1, box-3 in thon-2.
func (s *site) villages() {
	s.t.Helper()
	for _, d := range []api.AddDeviceRequest{
		{ID: "box-1", Groups: []string{"thon-1"}},
		{ID: "box-2", Groups: []string{"thon-1"}},
		{ID: "box-3", Groups: []string{"thon-2"}},
	} {
		if _, err := s.admin.AddDevice(context.Background(), d); err != nil {
			s.t.Fatal(err)
		}
	}
}

// operator is an operator signed in to the console.
func (s *site) operator() *person {
	s.t.Helper()
	p := s.person()
	if status, _ := p.signIn(s.tokenFor("can-bo", "operator")); status != http.StatusSeeOther {
		s.t.Fatalf("operator sign-in: %d", status)
	}
	return p
}

// row finds box's row in an announcement page and its data-status.
func row(page, box string) (string, bool) {
	m := regexp.MustCompile(`<tr id="delivery-` + regexp.QuoteMeta(box) + `" data-status="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// TestAnnounceUpload: an operator uploads an M4A through the form to one
// village and lands on the announcement, where both of its boxes wait; the
// page's live stream draws the same rows. A refused time keeps the
// uploaded file, chosen from the library.
func TestAnnounceUpload(t *testing.T) {
	audio := sound(t, "m4a", "2")
	s := openSite(t)
	s.villages()
	p := s.operator()

	status, page, _ := p.get("/announce")
	if status != http.StatusOK {
		t.Fatalf("GET /announce: %d\n%s", status, page)
	}
	for _, want := range []string{`id="announce-form"`, `enctype="multipart/form-data"`, `id="file" name="file"`,
		`name="group" value="thon-1"`, `name="device" value="box-3"`, `id="text" name="text"`, `name="when" value="now" checked`,
		`name="when" value="at"`, `name="when" value="repeat"`, `id="at"`, `id="cron"`, `id="send"`, `src="/static/announce.js"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the announce form has no %s", want)
		}
	}

	// A time in the past: refused, and the file, now in the library, is
	// chosen so it need not be sent again.
	status, page, _ = p.postFile("/announce", url.Values{"group": {"thon-1"}, "when": {"at"}, "at": {"2020-01-02T06:00"}}, "file", "thong-bao.m4a", audio)
	if status != http.StatusBadRequest || !strings.Contains(page, html.EscapeString(messages.In("vi", messages.TimeInPast, "2020-01-02 06:00"))) {
		t.Fatalf("a time in the past: %d; want 400 with the API's message\n%s", status, page)
	}
	media, err := s.admin.Media(context.Background())
	if err != nil || len(media) != 1 || media[0].Name != "thong-bao.m4a" {
		t.Fatalf("media after the refused form: %+v, %v; want the uploaded file", media, err)
	}
	if !strings.Contains(page, `<option value="`+media[0].ID+`" selected>`) {
		t.Errorf("the form came back without the uploaded file chosen from the library")
	}
	if !strings.Contains(page, `value="2020-01-02T06:00"`) || !strings.Contains(page, `name="group" value="thon-1" checked`) {
		t.Errorf("the form came back without what was typed")
	}

	status, page, loc := p.postFile("/announce", url.Values{"group": {"thon-1"}, "when": {"now"}, "name": {"Tiêm chủng"}}, "file", "thong-bao.m4a", audio)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/announcements/a-") {
		t.Fatalf("announce: %d → %q; want a redirect to the announcement\n%s", status, loc, page)
	}
	id := strings.TrimPrefix(loc, "/announcements/")
	a, err := s.admin.Announcement(context.Background(), id)
	if err != nil || a.Media != media[0].ID || a.Targets.String() != "group:thon-1" || a.Name != "Tiêm chủng" || a.Priority != "normal" {
		t.Fatalf("announcement %+v, %v; want the uploaded file on thon-1", a, err)
	}

	status, page, _ = p.get(loc)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d", loc, status)
	}
	for _, box := range []string{"box-1", "box-2"} {
		if st, ok := row(page, box); !ok || st != "pending" {
			t.Errorf("%s: row %v, status %q; want it listed as pending", box, ok, st)
		}
	}
	if _, ok := row(page, "box-3"); ok {
		t.Error("box-3 of thon-2 is listed")
	}
	for _, want := range []string{`id="deliveries"`, "thong-bao.m4a", "Tiêm chủng", "thon-1", `id="cancel"`,
		`data-events="/events?view=announcement&amp;id=` + id + `"`, messages.In("vi", "console.announcement.summary", 0, 2)} {
		if !strings.Contains(page, want) {
			t.Errorf("the announcement page has no %s", want)
		}
	}

	// The live stream draws the rows.
	parts := p.liveParts(t, "/events?view=announcement&id="+url.QueryEscape(id), "answers")
	if st, ok := row(parts["answers"], "box-2"); !ok || st != "pending" {
		t.Errorf("the live answers: box-2 %v %q\n%s", ok, st, parts["answers"])
	}

	// Cancel: the page says so and offers no Cancel any more.
	status, _, loc = p.post("/announcements/"+id+"/cancel", url.Values{})
	if status != http.StatusSeeOther || loc != "/announcements/"+id+"?cancelled=1" {
		t.Fatalf("cancel: %d → %q", status, loc)
	}
	if a, _ := s.admin.Announcement(context.Background(), id); !a.Cancelled {
		t.Fatal("not cancelled")
	}
	_, page, _ = p.get(loc)
	if !strings.Contains(page, messages.In("vi", messages.ConsoleAnnouncementCancelled, id)) || strings.Contains(page, `id="cancel"`) {
		t.Errorf("after Cancel the page shows no notice or still offers Cancel")
	}
}

// liveParts reads the page's live stream until it has drawn the parts
// named, and returns their HTML.
func (p *person) liveParts(t *testing.T, path string, ids ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var f struct{ ID, HTML string }
		if json.Unmarshal([]byte(data), &f) == nil && f.ID != "" {
			got[f.ID] = f.HTML
		}
		all := true
		for _, id := range ids {
			_, have := got[id]
			all = all && have
		}
		if all {
			return got
		}
	}
	t.Fatalf("the stream %s ended without %v: %v", path, ids, sc.Err())
	return nil
}

// TestAnnounceText: typed text is spoken by the controller and sent to
// the boxes chosen one by one.
func TestAnnounceText(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng is not installed")
	}
	s := openSite(t)
	s.villages()
	p := s.operator()
	text := "Kính mời bà con đưa trẻ đi tiêm chủng tại trạm y tế xã."
	status, page, loc := p.postFile("/announce", url.Values{"device": {"box-1", "box-3"}, "when": {"now"}, "text": {text}, "priority": {"priority"}}, "file", "", nil)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/announcements/") {
		t.Fatalf("text announcement: %d → %q\n%s", status, loc, page)
	}
	a, err := s.admin.Announcement(context.Background(), strings.TrimPrefix(loc, "/announcements/"))
	if err != nil || a.Text != text || a.Priority != "priority" || strings.Join(a.Devices, ",") != "box-1,box-3" {
		t.Fatalf("announcement %+v, %v; want the text at priority on box-1 and box-3", a, err)
	}
	_, page, _ = p.get(loc)
	for _, box := range []string{"box-1", "box-3"} {
		if st, ok := row(page, box); !ok || st != "pending" {
			t.Errorf("%s: %v %q; want pending", box, ok, st)
		}
	}
	if !strings.Contains(page, text) {
		t.Error("the page does not say the text")
	}
}

// TestAnnounceRepeat: a repeating rule makes a schedule, from a preset or
// typed; a wrong rule comes back with the API's reason.
func TestAnnounceRepeat(t *testing.T) {
	audio := sound(t, "m4a", "2")
	s := openSite(t)
	s.villages()
	m, err := s.admin.AddMedia(context.Background(), "ban-tin-sang.m4a", bytes.NewReader(audio))
	if err != nil {
		t.Fatal(err)
	}
	p := s.operator()
	status, page, _ := p.postFile("/announce", url.Values{"all": {"1"}, "media": {m.ID}, "when": {"repeat"}, "cron": {"61 6 * * *"}}, "file", "", nil)
	if status != http.StatusBadRequest || !strings.Contains(page, `role="alert"`) || !strings.Contains(page, `value="61 6 * * *"`) {
		t.Fatalf("a wrong cron rule: %d; want 400 with the reason and the rule kept\n%s", status, page)
	}
	status, page, loc := p.postFile("/announce", url.Values{"all": {"1"}, "group": {"thon-1"}, "media": {m.ID}, "when": {"repeat"},
		"preset": {"0 6 * * *"}, "name": {"Bản tin sáng"}}, "file", "", nil)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/schedules") {
		t.Fatalf("repeating: %d → %q\n%s", status, loc, page)
	}
	sched, err := s.admin.Schedules(context.Background())
	if err != nil || len(sched) != 1 || sched[0].Cron != "0 6 * * *" || !sched[0].Targets.All || sched[0].Media != m.ID || sched[0].Name != "Bản tin sáng" {
		t.Fatalf("schedules %+v, %v; want the 6:00 rule on the whole commune", sched, err)
	}
	if !strings.Contains(loc, sched[0].ID) {
		t.Errorf("sent to %q; want it to name %s", loc, sched[0].ID)
	}
}

// TestAnnounceRefusals: the form says what is missing and sends nothing;
// a viewer may not see the form but may follow an announcement.
func TestAnnounceRefusals(t *testing.T) {
	s := openSite(t)
	s.villages()
	p := s.operator()
	for name, tc := range map[string]struct {
		form url.Values
		want string
	}{
		"no target":     {url.Values{"text": {"x"}, "when": {"now"}}, messages.In("vi", messages.ConsoleAnnounceNoTarget)},
		"no sound":      {url.Values{"group": {"thon-1"}, "when": {"now"}}, messages.In("vi", messages.ConsoleAnnounceNoSound)},
		"no time":       {url.Values{"group": {"thon-1"}, "text": {"x"}, "when": {"at"}}, messages.In("vi", messages.ConsoleAnnounceNoTime)},
		"no rule":       {url.Values{"group": {"thon-1"}, "text": {"x"}, "when": {"repeat"}}, messages.In("vi", messages.ConsoleAnnounceNoRule)},
		"emergency":     {url.Values{"group": {"thon-1"}, "text": {"x"}, "priority": {"emergency"}}, messages.In("vi", messages.ConsoleAnnouncePriority, "emergency")},
		"unknown media": {url.Values{"group": {"thon-1"}, "media": {strings.Repeat("ab", 32)}}, messages.In("vi", messages.UnknownMedia, strings.Repeat("ab", 32))},
	} {
		status, page, _ := p.postFile("/announce", tc.form, "file", "", nil)
		if status < 400 || status >= 500 || !strings.Contains(page, html.EscapeString(tc.want)) {
			t.Errorf("%s: %d; want a refusal saying %q", name, status, tc.want)
		}
	}
	status, page, _ := p.postFile("/announce", url.Values{"group": {"thon-1"}, "media": {"x"}}, "file", "a.m4a", []byte("not sound"))
	if status != http.StatusBadRequest || !strings.Contains(page, html.EscapeString(messages.In("vi", messages.ConsoleAnnounceFileAndMedia))) {
		t.Errorf("a file and a library recording: %d; want 400", status)
	}
	if r, err := s.admin.Report(context.Background(), "", ""); err != nil || len(r) != 0 {
		t.Fatalf("refused forms sent %+v, %v", r, err)
	}

	// A viewer: no form, but the announcement's page without Cancel.
	v := s.person()
	v.signIn(s.tokenFor("xem", "viewer"))
	if status, _, _ := v.get("/announce"); status != http.StatusForbidden {
		t.Errorf("viewer GET /announce: %d; want 403", status)
	}
	if status, _, _ := v.get("/announcements/a-none"); status != http.StatusNotFound {
		t.Errorf("an unknown announcement: %d; want 404", status)
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng is not installed: no spoken announcement to follow")
	}
	a, err := s.admin.Announce(context.Background(), api.AnnounceRequest{Targets: store.Targets{Groups: []string{"thon-2"}}, Text: "Họp thôn lúc 8 giờ.", At: "2099-01-01 06:00"})
	if err != nil {
		t.Fatal(err)
	}
	status, page, _ = v.get("/announcements/" + a.ID)
	if status != http.StatusOK || strings.Contains(page, `id="cancel"`) {
		t.Errorf("viewer GET /announcements/%s: %d, Cancel offered: %v", a.ID, status, strings.Contains(page, `id="cancel"`))
	}
	if st, ok := row(page, "box-3"); !ok || st != "pending" {
		t.Errorf("viewer sees box-3 %v %q", ok, st)
	}
	if !strings.Contains(page, "01/01/2099 06:00:00") {
		t.Errorf("the page does not say when, in the commune's time")
	}
	if status, _, _ := v.post("/announcements/"+a.ID+"/cancel", url.Values{}); status != http.StatusForbidden {
		t.Errorf("viewer cancel: %d; want 403", status)
	}
}

// TestAnnounceKeys: the words the announce pages make from values are in
// both languages.
func TestAnnounceKeys(t *testing.T) {
	var keys []string
	for _, k := range []string{"daily_6", "daily_17", "weekdays_6", "monday_7", "monthly_6"} {
		keys = append(keys, "console.announce.preset."+k)
	}
	for _, k := range []string{"background", "normal", "priority", "emergency"} {
		keys = append(keys, "console.priority."+k)
	}
	for _, k := range []string{"pending", "received", "ready", "playing", "preempted", "played", "failed", "missed", "expired", "cancelled"} {
		keys = append(keys, "console.status."+k)
	}
	for _, k := range keys {
		for _, lang := range []string{"en", "vi"} {
			if !messages.Has(lang, messages.Key(k)) {
				t.Errorf("%q has no %s text", k, lang)
			}
		}
	}
}

// TestAnnouncementEmergency: an emergency's page says it is one and
// cancels it the emergency's way.
func TestAnnouncementEmergency(t *testing.T) {
	s := openSite(t)
	s.villages()
	a, err := s.admin.StartEmergency(context.Background(), api.AnnounceRequest{Targets: store.Targets{Groups: []string{"thon-2"}}, Tone: "storm", Repeat: 1, Exercise: true})
	if err != nil {
		t.Fatal(err)
	}
	p := s.operator()
	status, page, _ := p.get("/announcements/" + a.ID)
	if status != http.StatusOK {
		t.Fatalf("GET /announcements/%s: %d", a.ID, status)
	}
	for _, want := range []string{messages.In("vi", "console.announcement.emergency"), messages.In("vi", "console.tone.storm"),
		`action="/emergency/cancel"`, `name="id" value="` + a.ID + `"`, `id="delivery-box-3"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the emergency's page has no %s", want)
		}
	}
}
