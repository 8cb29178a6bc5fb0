package console_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"html"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// section is the element of page that starts with open, up to its closing
// tag: what a person sees in one day's column or one table row.
func section(t *testing.T, page, open, closing string) string {
	t.Helper()
	i := strings.Index(page, open)
	if i < 0 {
		t.Fatalf("no %s on the page", open)
	}
	rest := page[i:]
	j := strings.Index(rest, closing)
	if j < 0 {
		t.Fatalf("%s is not closed", open)
	}
	return rest[:j]
}

// addBoxes adds boxes (id → village) through the admin's API.
func (s *site) addBoxes(boxes map[string]string) {
	s.t.Helper()
	for id, village := range boxes {
		if _, err := s.admin.AddDevice(context.Background(), api.AddDeviceRequest{ID: id, Groups: []string{village}}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// recording uploads a second of tone as "Chuông" through the admin's API
// (it needs ffmpeg, as every upload does) and returns its id.
func (s *site) recording(t *testing.T) string {
	t.Helper()
	m, err := s.admin.AddMedia(context.Background(), "Chuông", bytes.NewReader(sound(t, "wav", "1")))
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestScheduleWeek: a rule shows on its weekday at its time in the week
// asked for; an operator pauses, resumes and deletes it; a viewer sees no
// buttons and is refused.
func TestScheduleWeek(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	s.addBoxes(map[string]string{"box-1": "thon-1"})
	media := s.recording(t)
	// Wednesdays at 06:30, commune time; and every hour, to fill a day.
	rule, err := s.admin.AddSchedule(ctx, api.AnnounceRequest{Name: "Thể dục buổi sáng", Cron: "30 6 * * 3", Media: media,
		Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	hourly, err := s.admin.AddSchedule(ctx, api.AnnounceRequest{Name: "Giờ", Cron: "0 * * * 6", Media: media,
		Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}

	op := s.person()
	op.signIn(s.tokenFor("can-bo", "operator"))
	// A Thursday: the week shown is the one from Monday 7 December 2037 (a week to come, whenever the test runs).
	status, page, _ := op.get("/schedules?week=2037-12-10")
	if status != http.StatusOK {
		t.Fatalf("GET /schedules: %d\n%s", status, page)
	}
	grid := section(t, page, `id="week"`, `<h2>`)
	if !strings.Contains(grid, `data-week="2037-12-07"`) {
		t.Errorf("the week shown does not start on Monday 2037-12-07")
	}
	for _, link := range []string{`href="/schedules?week=2037-11-30"`, `href="/schedules?week=2037-12-14"`} {
		if !strings.Contains(page, link) {
			t.Errorf("no link %s to the weeks around", link)
		}
	}
	days := regexp.MustCompile(`id="day-(\d{4}-\d\d-\d\d)"`).FindAllStringSubmatch(grid, -1)
	if len(days) != 7 || days[0][1] != "2037-12-07" || days[6][1] != "2037-12-13" {
		t.Fatalf("day columns %v; want Monday 7 to Sunday 13 December", days)
	}
	for _, d := range days {
		day := section(t, grid, `id="day-`+d[1]+`"`, `</section>`)
		has := strings.Contains(day, `data-rule="`+rule.ID+`"`)
		if want := d[1] == "2037-12-09"; has != want {
			t.Errorf("%s shows the Wednesday rule: %v; want %v", d[1], has, want)
		}
		if d[1] == "2037-12-09" {
			for _, want := range []string{`datetime="2037-12-09T06:30:00+07:00"`, ">06:30</time>", "Thể dục buổi sáng", "thôn: thon-1", "Chuông"} {
				if !strings.Contains(html.UnescapeString(day), want) {
					t.Errorf("Wednesday's column has no %q:\n%s", want, day)
				}
			}
		}
		if d[1] == "2037-12-12" {
			// 24 times on Saturday: the first 8 and how many more.
			if n := strings.Count(day, `class="slot" data-rule="`+hourly.ID+`"`); n != 8 {
				t.Errorf("Saturday shows the hourly rule %d times; want 8", n)
			}
			if !strings.Contains(day, "và 16 lần nữa") {
				t.Errorf("Saturday does not say 16 more times:\n%s", day)
			}
		}
	}
	if !strings.Contains(page, `id="pause-`+rule.ID+`"`) || !strings.Contains(page, `id="delete-`+rule.ID+`"`) {
		t.Fatal("an operator has no pause or delete button")
	}

	// A week before the rules were made shows none of their times.
	before := time.Now().AddDate(0, 0, -7).Format("2006-01-02")
	if _, page, _ := op.get("/schedules?week=" + before); strings.Contains(section(t, page, `id="week"`, `<h2>`), `class="slot`) {
		t.Errorf("the week of %s, before the rules were made, shows their times", before)
	}

	// Pause: back to the same week, the rule shown paused.
	status, _, loc := op.post("/schedules/"+rule.ID+"/pause", url.Values{"week": {"2037-12-07"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/schedules?") || !strings.Contains(loc, "week=2037-12-07") {
		t.Fatalf("pause: %d → %q", status, loc)
	}
	if got := findRule(t, s, rule.ID); got == nil || !got.Paused {
		t.Fatalf("after pause: %+v", got)
	}
	_, page, _ = op.get(loc)
	day := section(t, page, `id="day-2037-12-09"`, `</section>`)
	if !strings.Contains(day, `class="slot paused"`) || !strings.Contains(day, "tạm dừng") {
		t.Errorf("the paused rule is not shown paused:\n%s", day)
	}
	if !strings.Contains(page, `id="resume-`+rule.ID+`"`) || !strings.Contains(page, `role="status"`) {
		t.Error("after pause: no resume button, or no notice")
	}
	if status, _, _ := op.post("/schedules/"+rule.ID+"/resume", url.Values{}); status != http.StatusSeeOther {
		t.Fatalf("resume: %d", status)
	}
	if got := findRule(t, s, rule.ID); got == nil || got.Paused {
		t.Fatalf("after resume: %+v", got)
	}

	// A viewer sees the week but no buttons, and is refused the forms.
	viewer := s.person()
	viewer.signIn(s.tokenFor("xem", "viewer"))
	_, page, _ = viewer.get("/schedules?week=2037-12-07")
	if !strings.Contains(page, `data-rule="`+rule.ID+`"`) {
		t.Error("a viewer does not see the rule")
	}
	if strings.Contains(page, `action="/schedules/`) {
		t.Error("a viewer's page has schedule buttons")
	}
	for _, action := range []string{"pause", "resume", "delete"} {
		status, body, _ := viewer.post("/schedules/"+rule.ID+"/"+action, url.Values{})
		if status != http.StatusForbidden || !strings.Contains(body, "xem") {
			t.Errorf("viewer POST %s: %d; want 403 naming the token", action, status)
		}
	}
	if got := findRule(t, s, rule.ID); got == nil || got.Paused {
		t.Fatalf("a viewer changed the rule: %+v", got)
	}

	// Delete; an unknown rule is an error page.
	if status, _, _ := op.post("/schedules/"+rule.ID+"/delete", url.Values{}); status != http.StatusSeeOther {
		t.Fatalf("delete: %d", status)
	}
	if got := findRule(t, s, rule.ID); got != nil {
		t.Fatalf("still there after delete: %+v", got)
	}
	if status, _, _ := op.post("/schedules/s-nope/pause", url.Values{}); status != http.StatusNotFound {
		t.Errorf("pausing an unknown rule: %d; want 404", status)
	}
	_, page, _ = op.get("/schedules?week=2037-12-07")
	if strings.Contains(page, `data-rule="`+rule.ID+`"`) {
		t.Error("the deleted rule is still in the week")
	}
}

func findRule(t *testing.T, s *site, id string) *api.Announcement {
	t.Helper()
	list, err := s.admin.Schedules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.ID == id {
			return &a
		}
	}
	return nil
}

// TestMediaLibrary: an operator uploads a WAV and an M4A; the library
// lists each with its length and loudness; a recording in use cannot be
// deleted and the page says why; a viewer cannot upload.
func TestMediaLibrary(t *testing.T) {
	wav, m4a := sound(t, "wav", "3"), sound(t, "m4a", "2")
	s := openSite(t)
	ctx := context.Background()
	s.addBoxes(map[string]string{"box-1": "thon-1"})
	op := s.person()
	op.signIn(s.tokenFor("can-bo", "operator"))

	status, body, loc := op.postFile("/media", url.Values{"name": {"Lịch tiêm chủng"}}, "file", "tiem-chung.wav", wav)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/media?added=") {
		t.Fatalf("upload WAV: %d → %q\n%s", status, loc, body)
	}
	wavID := strings.TrimPrefix(loc, "/media?added=")
	status, body, loc = op.postFile("/media", url.Values{}, "file", "hop-dan.m4a", m4a)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/media?added=") {
		t.Fatalf("upload M4A: %d → %q\n%s", status, loc, body)
	}
	m4aID := strings.TrimPrefix(loc, "/media?added=")

	_, page, _ := op.get(loc)
	if !strings.Contains(page, `role="status"`) || !strings.Contains(section(t, page, `id="notice"`, `</p>`), "hop-dan") {
		t.Error("no notice naming the upload (by the file's name)")
	}
	table := section(t, page, `id="media"`, `</table>`)
	for id, want := range map[string][]string{
		wavID: {"Lịch tiêm chủng", `class="duration">0:03<`, " LUFS", " dBTP", "opus"},
		m4aID: {"hop-dan", `class="duration">0:02<`, " LUFS", " dBTP"},
	} {
		row := section(t, table, `id="media-`+id+`"`, `</tr>`)
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("row of %s has no %q:\n%s", id, w, row)
			}
		}
		// A 440 Hz tone at ffmpeg's default level is about −21 LUFS: a
		// number with a decimal comma, in Vietnamese.
		if !regexp.MustCompile(`class="loudness">−\d+,\d LUFS<`).MatchString(row) {
			t.Errorf("row of %s: loudness not written as −NN,N LUFS:\n%s", id, row)
		}
	}

	// Not audio: refused, and the page says so above the form.
	status, body, _ = op.postFile("/media", url.Values{"name": {"rác"}}, "file", "notes.txt", []byte("not a sound at all"))
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `role="alert"`) || !strings.Contains(body, `value="rác"`) {
		t.Errorf("a text file: %d; want 422 with the reason and the name kept", status)
	}
	if status, body, _ = op.postFile("/media", url.Values{}, "nofile", "x.wav", wav); status != http.StatusBadRequest ||
		!strings.Contains(body, messages.In("vi", messages.ConsoleMediaNoFile)) {
		t.Errorf("no file: %d; want 400 asking for one", status)
	}

	// In use by a schedule: the API refuses, the page says which.
	rule, err := s.admin.AddSchedule(ctx, api.AnnounceRequest{Cron: "0 7 * * *", Media: wavID, Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ = op.post("/media/"+wavID+"/delete", url.Values{})
	if status != http.StatusConflict || !strings.Contains(body, `role="alert"`) || !strings.Contains(body, `id="media-`+wavID+`"`) {
		t.Errorf("deleting media in use: %d; want 409 with the API's reason above the library\n%s", status, body)
	}
	if err := s.admin.RemoveSchedule(ctx, rule.ID); err != nil {
		t.Fatal(err)
	}
	if status, _, loc := op.post("/media/"+m4aID+"/delete", url.Values{}); status != http.StatusSeeOther || loc != "/media?deleted=1" {
		t.Fatalf("delete: %d → %q", status, loc)
	}
	if _, page, _ = op.get("/media"); strings.Contains(page, `id="media-`+m4aID+`"`) {
		t.Error("the deleted recording is still listed")
	}

	// A viewer: the list, no upload form, refused by hand.
	viewer := s.person()
	viewer.signIn(s.tokenFor("xem", "viewer"))
	_, page, _ = viewer.get("/media")
	if !strings.Contains(page, `id="media-`+wavID+`"`) || strings.Contains(page, `id="upload"`) || strings.Contains(page, "/delete") {
		t.Error("a viewer's library: want the list without upload or delete")
	}
	if status, _, _ := viewer.postFile("/media", url.Values{}, "file", "x.wav", wav); status != http.StatusForbidden {
		t.Errorf("viewer upload: %d; want 403", status)
	}
	if status, _, _ := viewer.post("/media/"+wavID+"/delete", url.Values{}); status != http.StatusForbidden {
		t.Errorf("viewer delete: %d; want 403", status)
	}
}

// TestReport: an announcement to a village makes a pending row per box;
// the page filters by village, box and status and pages; the CSV has the
// header and the rows, times in the commune's zone.
func TestReport(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	s.addBoxes(map[string]string{"box-1": "thon-1", "box-2": "thon-1", "box-3": "thon-2"})
	a, err := s.admin.Announce(ctx, api.AnnounceRequest{Media: s.recording(t), Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	today := time.Now().In(zone)
	span := url.Values{"since": {today.AddDate(0, 0, -1).Format("2006-01-02")}, "until": {today.AddDate(0, 0, 1).Format("2006-01-02")}}
	with := func(kv ...string) string {
		v := url.Values{}
		for k, x := range span {
			v[k] = x
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}

	p := s.person()
	p.signIn(s.tokenFor("xem", "viewer"))
	status, page, _ := p.get("/report?" + with())
	if status != http.StatusOK || !strings.Contains(page, `id="report-filter"`) || !strings.Contains(page, `id="csv"`) {
		t.Fatalf("GET /report: %d; want the filter form and the CSV link\n%s", status, page)
	}
	for _, box := range []string{"box-1", "box-2"} {
		if !strings.Contains(page, `data-device="`+box+`" data-status="pending"`) {
			t.Errorf("no pending row for %s", box)
		}
	}
	if strings.Contains(page, `data-device="box-3"`) {
		t.Error("a row for box-3, which the announcement did not target")
	}
	if _, page, _ = p.get("/report"); !strings.Contains(page, `data-device="box-1"`) {
		t.Error("the default span (the last 7 days) misses today's announcement")
	}
	if _, page, _ = p.get("/report?" + with("village", "thon-2")); strings.Contains(page, "data-device=") {
		t.Error("village thon-2 shows rows")
	}
	if _, page, _ = p.get("/report?" + with("box", "box-2")); !strings.Contains(page, `data-device="box-2"`) || strings.Contains(page, `data-device="box-1"`) {
		t.Error("box filter box-2: want box-2's row only")
	}
	if _, page, _ = p.get("/report?" + with("status", "played")); strings.Contains(page, "data-device=") {
		t.Error("status played shows pending rows")
	}
	status, page, _ = p.get("/report/box/box-1?" + with())
	if status != http.StatusOK || !strings.Contains(page, `id="box-now"`) || !strings.Contains(page, `data-device="box-1"`) || strings.Contains(page, `data-device="box-2"`) {
		t.Errorf("box-1's report: %d; want its state and its row only", status)
	}
	if status, _, _ := p.get("/report/box/nope"); status != http.StatusNotFound {
		t.Errorf("an unknown box's report: %d; want 404", status)
	}
	if status, page, _ = p.get("/report?since=yesterday"); status != http.StatusOK || !strings.Contains(page, `role="alert"`) {
		t.Errorf("a bad day: %d; want the page with the problem shown", status)
	}

	// The CSV: every row, the header first, times RFC 3339 in +07:00.
	resp, err := p.hc.Get(s.base + "/report.csv?" + with())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	wantName := `attachment; filename="loa-report-` + span.Get("since") + "_" + span.Get("until") + `.csv"`
	if cd := resp.Header.Get("Content-Disposition"); cd != wantName {
		t.Errorf("Content-Disposition %q; want %q", cd, wantName)
	}
	records, err := readCSV(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	header := []string{"item", "announcement", "device", "groups", "status", "scheduled_at", "started_at", "finished_at", "reason", "exercise", "text", "heard_ms", "missed_ms"}
	if len(records) == 0 || !slices.Equal(records[0], header) {
		t.Fatalf("CSV header %v; want %v", records[:min(1, len(records))], header)
	}
	if len(records) != 3 {
		t.Fatalf("CSV has %d rows; want 2 (box-1, box-2)\n%v", len(records)-1, records)
	}
	var boxes []string
	for _, r := range records[1:] {
		boxes = append(boxes, r[2])
		if r[1] != a.ID || r[3] != "thon-1" || r[4] != "pending" || r[6] != "" {
			t.Errorf("CSV row %v; want %s to thon-1, pending, not started", r, a.ID)
		}
		due, err := time.Parse(time.RFC3339, r[5])
		if err != nil || !strings.HasSuffix(r[5], "+07:00") || due.Sub(a.Start).Abs() > time.Second {
			t.Errorf("scheduled_at %q; want %v in +07:00", r[5], a.Start)
		}
	}
	slices.Sort(boxes)
	if !slices.Equal(boxes, []string{"box-1", "box-2"}) {
		t.Errorf("CSV boxes %v", boxes)
	}
	// One box's CSV.
	resp2, err := p.hc.Get(s.base + "/report.csv?" + with("box", "box-2"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	records, err = readCSV(t, resp2.Body)
	if err != nil || len(records) != 2 || records[1][2] != "box-2" || !strings.Contains(resp2.Header.Get("Content-Disposition"), "-box-2.csv") {
		t.Errorf("box-2's CSV: %v, %v, %q", records, err, resp2.Header.Get("Content-Disposition"))
	}
}

// TestReasonsInPageLanguage: why a box missed an item, which it sent as
// codes, is said in the page's language on the announcement and the
// report; a reason without codes is shown as the box wrote it.
func TestReasonsInPageLanguage(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	s.addBoxes(map[string]string{"box-1": "thon-1", "box-2": "thon-1"})
	a, err := s.admin.Announce(ctx, api.AnnounceRequest{Media: s.recording(t), Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The boxes' answers, as the broadcaster stores them.
	st, err := store.Open(ctx, filepath.Join(s.data, "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	item := a.ID + "-" + strconv.FormatInt(a.Start.Unix(), 10)
	for box, ev := range map[string]protocol.Event{
		"box-1": {Type: protocol.EventMissed, Reason: "media not ready by expiry; HTTP 404",
			Why: []protocol.Why{{Code: protocol.WhyMediaNotReady}, {Code: protocol.WhyDownloadFailed, Args: []string{"HTTP 404"}}}},
		"box-2": {Type: protocol.EventFailed, Reason: "an older box's words"},
	} {
		ev.Item, ev.Announcement, ev.At = item, a.ID, a.Start.Add(time.Minute)
		if err := st.RecordEvent(ctx, box, ev, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	zone, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	today := time.Now().In(zone)
	report := "/report?since=" + today.AddDate(0, 0, -1).Format("2006-01-02") + "&until=" + today.AddDate(0, 0, 1).Format("2006-01-02")
	p := s.person()
	p.signIn(s.tokenFor("xem", "viewer"))
	for _, tc := range []struct{ lang, want string }{
		{"vi", "tệp âm thanh chưa sẵn sàng khi hết hạn; tải về bị lỗi: HTTP 404"},
		{"en", "media not ready by expiry; HTTP 404"},
	} {
		p.get("/lang/" + tc.lang + "?next=/")
		for _, path := range []string{"/announcements/" + a.ID, report} {
			status, page, _ := p.get(path)
			if status != http.StatusOK || !strings.Contains(page, tc.want) || !strings.Contains(page, "an older box&#39;s words") {
				t.Errorf("%s in %s: %d; want the reasons %q and the older box's own\n%s", path, tc.lang, status, tc.want, page)
			}
		}
	}
}

// TestReportPages: more rows than a page hold go on the next page.
func TestReportPages(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	s.addBoxes(map[string]string{"box-1": "thon-1", "box-2": "thon-1"})
	media := s.recording(t)
	for i := range 101 {
		targets := store.Targets{Groups: []string{"thon-1"}}
		if i >= 51 {
			targets = store.Targets{Devices: []string{"box-1"}} // box-1 gets 101 rows, box-2 51
		}
		if _, err := s.admin.Announce(ctx, api.AnnounceRequest{Media: media, Targets: targets}); err != nil {
			t.Fatal(err)
		}
	}
	zone, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	today := time.Now().In(zone)
	q := "since=" + today.AddDate(0, 0, -1).Format("2006-01-02") + "&until=" + today.AddDate(0, 0, 1).Format("2006-01-02")
	p := s.person()
	p.signIn(s.token)
	_, page, _ := p.get("/report?" + q)
	if n := strings.Count(page, "data-device="); n != 100 {
		t.Fatalf("first page: %d rows; want 100", n)
	}
	if !strings.Contains(page, "Dòng 1–100 trong 152.") {
		t.Errorf("the first page does not say rows 1–100 of 152")
	}
	m := regexp.MustCompile(`href="(/report\?[^"]+)" id="page-next"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no next page link")
	}
	_, page, _ = p.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if n := strings.Count(page, "data-device="); n != 52 || !strings.Contains(page, "Dòng 101–152 trong 152.") || !strings.Contains(page, `id="page-first"`) {
		t.Errorf("second page: %d rows; want 52, numbered 101–152, with a link to the first", n)
	}
	resp, err := p.hc.Get(s.base + "/report.csv?" + q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if records, err := readCSV(t, resp.Body); err != nil || len(records) != 153 {
		t.Errorf("CSV: %d records, %v; want the header and 152 rows", len(records), err)
	}

	// One box's report pages the same way, on its own page.
	_, page, _ = p.get("/report/box/box-1?" + q)
	if n := strings.Count(page, `data-device="box-1"`); n != 100 || strings.Contains(page, `data-device="box-2"`) || !strings.Contains(page, "Dòng 1–100 trong 101.") {
		t.Fatalf("box-1's first page: %d of its rows; want 100 of 101, and none of box-2", n)
	}
	m = regexp.MustCompile(`href="(/report/box/box-1\?[^"]+)" id="page-next"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no next page link on box-1's report")
	}
	_, page, _ = p.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if n := strings.Count(page, `data-device="box-1"`); n != 1 || !strings.Contains(page, "Dòng 101–101 trong 101.") || !strings.Contains(page, `id="box-now"`) {
		t.Errorf("box-1's second page: %d rows; want 1, numbered 101, under the box's state", n)
	}
	resp2, err := p.hc.Get(s.base + "/report.csv?box=box-1&" + q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if records, err := readCSV(t, resp2.Body); err != nil || len(records) != 102 {
		t.Errorf("box-1's CSV: %d records, %v; want the header and 101 rows", len(records), err)
	}
}

// TestAudit: the console's changes are in the audit log under the name of
// the token that made them, newest first.
func TestAudit(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	s.addBoxes(map[string]string{"box-1": "thon-1"})
	rule, err := s.admin.AddSchedule(ctx, api.AnnounceRequest{Cron: "0 6 * * *", Media: s.recording(t), Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	op := s.person()
	op.signIn(s.tokenFor("ubnd-xa", "operator"))
	op.post("/schedules/"+rule.ID+"/pause", url.Values{})
	op.post("/schedules/"+rule.ID+"/resume", url.Values{})

	viewer := s.person()
	viewer.signIn(s.tokenFor("xem", "viewer"))
	status, page, _ := viewer.get("/audit")
	if status != http.StatusOK {
		t.Fatalf("GET /audit: %d", status)
	}
	table := section(t, page, `id="audit"`, `</table>`)
	pause := strings.Index(table, "tạm dừng một lịch phát")
	resume := strings.Index(table, "chạy lại một lịch phát")
	if pause < 0 || resume < 0 || resume > pause {
		t.Fatalf("the log does not show the resume above the pause:\n%s", table)
	}
	for _, want := range []string{`class="actor">ubnd-xa<`, "/v1/schedules/" + rule.ID + "/pause"} {
		if !strings.Contains(table, want) {
			t.Errorf("the log has no %q", want)
		}
	}
	// Actions only: no requests.
	if _, page, _ = viewer.get("/audit?kind=actions"); strings.Contains(section(t, page, `id="audit"`, `</table>`), "ubnd-xa") {
		t.Error("kind=actions lists requests")
	}
	// English.
	viewer.get("/lang/en?next=/audit")
	if _, page, _ = viewer.get("/audit?kind=requests"); !strings.Contains(page, "paused a schedule") {
		t.Error("the English log does not say “paused a schedule”")
	}
}

// TestRecordPagesInEnglish: every record page draws in both languages
// with its words, for a viewer with nothing recorded yet.
func TestRecordPagesInEnglish(t *testing.T) {
	s := openSite(t)
	p := s.person()
	p.signIn(s.tokenFor("xem", "viewer"))
	for _, lang := range []string{"vi", "en"} {
		p.get("/lang/" + lang + "?next=/")
		for _, path := range []string{"/schedules", "/media", "/report", "/audit"} {
			status, page, _ := p.get(path)
			if status != http.StatusOK || strings.Contains(page, "%!") || strings.Contains(page, "MISSING") {
				t.Errorf("%s in %s: %d, or a word is missing\n%s", path, lang, status, page)
			}
		}
	}
	// Keys the pages make in Go or with printf.
	var made []string
	for i := 1; i <= 7; i++ {
		made = append(made, "console.weekday."+string(rune('0'+i)))
	}
	for _, k := range []string{"all", "actions", "requests"} {
		made = append(made, "console.audit.kind."+k)
	}
	for _, k := range made {
		for _, lang := range []string{"en", "vi"} {
			if !messages.Has(lang, messages.Key(k)) {
				t.Errorf("%q has no %s text", k, lang)
			}
		}
	}
}

// readCSV reads the report's CSV, which starts with a UTF-8 byte-order mark
// (for Excel).
func readCSV(t *testing.T, r io.Reader) ([][]string, error) {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(b, []byte("\ufeff"))
	if !ok {
		t.Error("the CSV does not start with a UTF-8 byte-order mark: Excel would garble its Vietnamese")
	}
	return csv.NewReader(bytes.NewReader(rest)).ReadAll()
}
