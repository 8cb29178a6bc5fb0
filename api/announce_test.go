package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// commune is an env with three boxes in two villages and one tone.
func commune(t *testing.T) (*env, string) {
	t.Helper()
	e := newEnv(t)
	e.addDevice(t, "loa-1", "thon-1")
	e.addDevice(t, "loa-2", "thon-1")
	e.addDevice(t, "loa-3", "thon-2")
	return e, e.addMedia(t, wav(8000, time.Second)).ID
}

func (e *env) rules(t *testing.T) []store.Rule {
	t.Helper()
	r, err := e.store.Rules(context.Background(), "", true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAnnounceRefuses(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	all := store.Targets{All: true}
	unknownMedia := strings.Repeat("f", 64)
	tests := []struct {
		name   string
		req    api.AnnounceRequest
		status int
		code   messages.Key
		naming string // the message must name this
	}{
		{"unknown group", api.AnnounceRequest{Media: media, Targets: store.Targets{Groups: []string{"thon-1", "thon-9"}}}, 404, messages.UnknownGroup, `"thon-9"`},
		{"unknown device", api.AnnounceRequest{Media: media, Targets: store.Targets{Devices: []string{"loa-9"}}}, 404, messages.UnknownDevice, `"loa-9"`},
		{"unknown media", api.AnnounceRequest{Media: unknownMedia, Targets: all}, 404, messages.UnknownMedia, unknownMedia},
		{"no media", api.AnnounceRequest{Targets: all}, 400, messages.NoMedia, "--media"},
		{"no target", api.AnnounceRequest{Media: media}, 400, messages.NoTarget, "--all"},
		{"all and a group", api.AnnounceRequest{Media: media, Targets: store.Targets{All: true, Groups: []string{"thon-1"}}}, 400, messages.BadRequest, "--all"},
		{"bad at", api.AnnounceRequest{Media: media, Targets: all, At: "tomorrow morning"}, 400, messages.BadTime, "tomorrow morning"},
		{"bad at hour", api.AnnounceRequest{Media: media, Targets: all, At: "25:00"}, 400, messages.BadTime, "25:00"},
		{"date in the past", api.AnnounceRequest{Media: media, Targets: all, At: "2026-02-28 06:00"}, 400, messages.TimeInPast, "2026-02-28 06:00"},
		{"RFC 3339 in the past", api.AnnounceRequest{Media: media, Targets: all, At: "2026-03-01T05:00:00+07:00"}, 400, messages.TimeInPast, "2026-03-01 05:00"},
		{"bad priority", api.AnnounceRequest{Media: media, Targets: all, Priority: "urgent"}, 400, messages.BadPriority, "urgent"},
		{"repeat over max", api.AnnounceRequest{Media: media, Targets: all, Repeat: protocol.MaxRepeat + 1}, 400, messages.BadRepeat, ""},
		{"negative repeat", api.AnnounceRequest{Media: media, Targets: all, Repeat: -1}, 400, messages.BadRepeat, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replans, _ := e.bc.counts()
			_, err := e.client.Announce(ctx, tc.req)
			ae := apiError(t, err, tc.status)
			if ae.Code != string(tc.code) || !strings.Contains(ae.Message, tc.naming) {
				t.Fatalf("answer %s %q, want code %s naming %q", ae.Code, ae.Message, tc.code, tc.naming)
			}
			if r := e.rules(t); len(r) != 0 {
				t.Fatalf("a refused announcement was stored: %+v", r)
			}
			if rep, _ := e.store.Report(ctx, time.Time{}, time.Time{}); len(rep) != 0 {
				t.Fatalf("a refused announcement made deliveries: %+v", rep)
			}
			if after, _ := e.bc.counts(); after != replans {
				t.Fatal("a refused announcement asked for a replan")
			}
		})
	}
}

func TestAnnounceTimes(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	local := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, e.loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	// now is 2026-03-01 05:30 in Asia/Ho_Chi_Minh.
	tests := []struct {
		at   string
		want time.Time
	}{
		{"", e.now.UTC().Add(2 * time.Second)}, // now: on a whole second at least 1 s ahead, for a synchronised start
		{"06:00", local("2026-03-01 06:00")},
		{"05:00", local("2026-03-02 05:00")},                          // earlier than now: the next 05:00
		{"05:29:30", local("2026-03-01 05:29").Add(30 * time.Second)}, // within the minute: now
		{"2026-03-01 18:30", local("2026-03-01 18:30")},
		{"2026-03-02T07:15", local("2026-03-02 07:15")},
		{"2026-03-01T12:00:00Z", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.at, func(t *testing.T) {
			a, err := e.client.Announce(ctx, api.AnnounceRequest{Media: media, Targets: store.Targets{All: true}, At: tc.at})
			if err != nil {
				t.Fatal(err)
			}
			if !a.Start.Equal(tc.want) {
				t.Fatalf("start %v (%v local), want %v", a.Start, a.Start.In(e.loc), tc.want.In(e.loc))
			}
			got, err := e.client.Announcement(ctx, a.ID)
			if err != nil || len(got.Deliveries) != 3 {
				t.Fatalf("GET %s: %d deliveries, %v; want 3", a.ID, len(got.Deliveries), err)
			}
			for _, d := range got.Deliveries {
				if d.Item != scheduler.ItemID(a.ID, tc.want) || !d.ScheduledAt.Equal(tc.want) {
					t.Fatalf("delivery %+v does not match the start", d)
				}
			}
		})
	}
}

func TestAnnounceTargetsExactlyThoseBoxes(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		targets store.Targets
		want    []string
	}{
		{"all", store.Targets{All: true}, []string{"loa-1", "loa-2", "loa-3"}},
		{"one village", store.Targets{Groups: []string{"thon-1"}}, []string{"loa-1", "loa-2"}},
		{"one box", store.Targets{Devices: []string{"loa-3"}}, []string{"loa-3"}},
		{"village and a box in it", store.Targets{Groups: []string{"thon-1"}, Devices: []string{"loa-2"}}, []string{"loa-1", "loa-2"}},
		{"village and a box elsewhere", store.Targets{Groups: []string{"thon-2"}, Devices: []string{"loa-1"}}, []string{"loa-1", "loa-3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replans, _ := e.bc.counts()
			a, err := e.client.Announce(ctx, api.AnnounceRequest{Media: media, Targets: tc.targets, Priority: "priority", Repeat: 2})
			if err != nil {
				t.Fatal(err)
			}
			if a.Kind != store.KindOnce || a.Priority != "priority" || a.Repeat != 2 || a.Media != media || !strings.HasPrefix(a.ID, "a-") {
				t.Fatalf("announcement %+v", a)
			}
			if !slices.Equal(a.Devices, tc.want) {
				t.Fatalf("devices %v, want %v", a.Devices, tc.want)
			}
			if a.Deliveries != nil {
				t.Fatalf("the answer to the announcement carries report rows: %+v", a.Deliveries)
			}
			// The report shows a pending row for exactly those boxes.
			rows, err := e.store.Deliveries(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range rows {
				if d.Status != store.StatusPending || d.Item != scheduler.ItemID(a.ID, a.Start) {
					t.Fatalf("delivery %+v", d)
				}
				got = append(got, d.Device)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pending deliveries for %v, want %v", got, tc.want)
			}
			fetched, err := e.client.Announcement(ctx, a.ID)
			if err != nil || !slices.Equal(fetched.Devices, tc.want) || !slices.EqualFunc(fetched.Deliveries, rows, sameRow) {
				t.Fatalf("GET announcement = %+v, %v; want the rows %+v", fetched, err, rows)
			}
			if after, _ := e.bc.counts(); after <= replans {
				t.Fatal("announcing did not ask for a replan")
			}
		})
	}
}

// sameRow compares two report rows, their times as instants.
func sameRow(a, b store.Delivery) bool {
	return a.Item == b.Item && a.Announcement == b.Announcement && a.Device == b.Device && a.Status == b.Status &&
		a.ScheduledAt.Equal(b.ScheduledAt) && a.StartedAt.Equal(b.StartedAt) && a.FinishedAt.Equal(b.FinishedAt) && a.Reason == b.Reason
}

func TestAnnouncementCancel(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	a, err := e.client.Announce(ctx, api.AnnounceRequest{Media: media, Targets: store.Targets{All: true}, At: "18:00"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.CancelAnnouncement(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.Announcement(ctx, a.ID)
	if err != nil || !got.Cancelled {
		t.Fatalf("after cancel: %+v, %v", got, err)
	}
	apiError(t, e.client.CancelAnnouncement(ctx, a.ID), http.StatusNotFound)
	_, err = e.client.Announcement(ctx, "a-nothing")
	if ae := apiError(t, err, http.StatusNotFound); ae.Code != string(messages.UnknownRule) {
		t.Fatalf("%+v", ae)
	}
}

func TestScheduleRefusesBadCron(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	for _, spec := range []string{"61 * * * *", "* * *", "", "@fortnightly", "0 6 * * * *", "0 25 * * *", "0 6 31 2 *", "TZ=UTC 0 6 * * *", "CRON_TZ=Asia/Tokyo 0 6 * * *"} {
		t.Run(spec, func(t *testing.T) {
			_, err := e.client.AddSchedule(ctx, api.AnnounceRequest{Media: media, Targets: store.Targets{All: true}, Cron: spec})
			if ae := apiError(t, err, http.StatusBadRequest); ae.Code != string(messages.BadCron) {
				t.Fatalf("%+v", ae)
			}
			if r := e.rules(t); len(r) != 0 {
				t.Fatalf("stored %+v", r)
			}
			if list, _ := e.client.Schedules(ctx); len(list) != 0 {
				t.Fatalf("schedule list %+v", list)
			}
		})
	}
}

func TestScheduleLifecycle(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	// now is 2026-03-01 05:30 in Hanoi; 06:00 there is 23:00 UTC the day before.
	tests := []struct {
		spec string
		next time.Time
	}{
		{"0 6 * * *", time.Date(2026, 2, 28, 23, 0, 0, 0, time.UTC)},
		{"30 17 * * 1-5", time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)}, // 1 March 2026 is a Sunday
		{"@daily", time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC)},
		{" 0 5 * * * ", time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)},
	}
	var ids []string
	for _, tc := range tests {
		s, err := e.client.AddSchedule(ctx, api.AnnounceRequest{Media: media, Targets: store.Targets{Groups: []string{"thon-1"}}, Cron: tc.spec, Name: "tin sáng"})
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if !s.Next.Equal(tc.next) || s.Kind != store.KindCron || s.Cron != strings.TrimSpace(tc.spec) || s.Name != "tin sáng" || !strings.HasPrefix(s.ID, "s-") {
			t.Fatalf("%q: %+v; want next %v (%v local)", tc.spec, s, tc.next, tc.next.In(e.loc))
		}
		if !slices.Equal(s.Devices, []string{"loa-1", "loa-2"}) {
			t.Fatalf("devices %v", s.Devices)
		}
		ids = append(ids, s.ID)
	}
	list, err := e.client.Schedules(ctx)
	if err != nil || len(list) != len(tests) {
		t.Fatalf("schedules %+v, %v", list, err)
	}

	id := ids[0]
	p, err := e.client.PauseSchedule(ctx, id, true)
	if err != nil || !p.Paused || !p.Next.IsZero() {
		t.Fatalf("pause = %+v, %v", p, err)
	}
	if r, _ := e.store.RuleByID(ctx, id); !r.Paused {
		t.Fatal("not paused in the store")
	}
	p, err = e.client.PauseSchedule(ctx, id, false)
	if err != nil || p.Paused || !p.Next.Equal(tests[0].next) {
		t.Fatalf("resume = %+v, %v", p, err)
	}
	_, err = e.client.PauseSchedule(ctx, "s-ghost", true)
	apiError(t, err, http.StatusNotFound)

	if err := e.client.RemoveSchedule(ctx, id); err != nil {
		t.Fatal(err)
	}
	list, _ = e.client.Schedules(ctx)
	if len(list) != len(tests)-1 || slices.ContainsFunc(list, func(a api.Announcement) bool { return a.ID == id }) {
		t.Fatalf("schedules after rm: %+v", list)
	}
	if ae := apiError(t, e.client.RemoveSchedule(ctx, id), http.StatusNotFound); ae.Code != string(messages.UnknownRule) {
		t.Fatalf("rm twice: %+v", ae)
	}
	_, err = e.client.PauseSchedule(ctx, id, false)
	apiError(t, err, http.StatusNotFound)

	// An announcement is not a schedule.
	a, err := e.client.Announce(ctx, api.AnnounceRequest{Media: media, Targets: store.Targets{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	apiError(t, e.client.RemoveSchedule(ctx, a.ID), http.StatusNotFound)
	if got, _ := e.client.Announcement(ctx, a.ID); got.Cancelled {
		t.Fatal("schedule rm cancelled an announcement")
	}
}

// getJSON fetches path with the admin token and decodes it generically.
func (e *env) getJSON(t *testing.T, path string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET %s: not a JSON array: %v", path, err)
	}
	return out
}

func hasKeys(t *testing.T, what string, row map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := row[k]; !ok {
			t.Errorf("%s row %v lacks %q", what, row, k)
		}
	}
}

func TestStatusAndReportJSON(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	if err := e.store.RecordState(ctx, "loa-1", protocol.State{Online: true, State: protocol.StatePlaying, Playing: "x-1", Volume: 70}, e.now); err != nil {
		t.Fatal(err)
	}
	a, err := e.client.Announce(ctx, api.AnnounceRequest{Media: media, Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	item := scheduler.ItemID(a.ID, a.Start)
	for _, ev := range []protocol.Event{
		{Item: item, Announcement: a.ID, Type: protocol.EventPlaying, At: a.Start},
		{Item: item, Announcement: a.ID, Type: protocol.EventPlayed, At: a.Start.Add(5 * time.Second)},
	} {
		if err := e.store.RecordEvent(ctx, "loa-1", ev, e.now); err != nil {
			t.Fatal(err)
		}
	}

	status := e.getJSON(t, "/v1/status")
	if len(status) != 3 {
		t.Fatalf("status has %d rows", len(status))
	}
	for _, row := range status {
		hasKeys(t, "status", row, "id", "name", "groups", "online", "state", "playing", "volume", "last_seen")
	}
	if status[0]["id"] != "loa-1" || status[0]["online"] != true || status[0]["state"] != "playing" || status[0]["playing"] != "x-1" {
		t.Errorf("status of loa-1: %v", status[0])
	}
	if status[2]["id"] != "loa-3" || status[2]["online"] != false || status[2]["state"] != "offline" || status[2]["playing"] != nil {
		t.Errorf("status of the never-seen loa-3: %v", status[2])
	}

	report := e.getJSON(t, "/v1/report")
	if len(report) != 2 {
		t.Fatalf("report has %d rows: %v", len(report), report)
	}
	for _, row := range report {
		hasKeys(t, "report", row, "item", "announcement", "device", "status", "started_at", "finished_at", "reason")
	}
	played, pending := report[0], report[1]
	if played["device"] != "loa-1" || played["status"] != "played" || played["item"] != item || played["announcement"] != a.ID ||
		played["started_at"] != a.Start.Format(time.RFC3339) || played["finished_at"] != a.Start.Add(5*time.Second).Format(time.RFC3339) {
		t.Errorf("loa-1's row: %v", played)
	}
	if pending["device"] != "loa-2" || pending["status"] != "pending" {
		t.Errorf("loa-2's row: %v", pending)
	}

	// The client reads the same rows; since/until filter by schedule time.
	rows, err := e.client.Report(ctx, "", "")
	if err != nil || len(rows) != 2 || rows[0].Status != "played" || !rows[0].StartedAt.Equal(a.Start) {
		t.Fatalf("client report %+v, %v", rows, err)
	}
	if rows, err := e.client.Report(ctx, "06:00", ""); err != nil || len(rows) != 0 {
		t.Fatalf("report since 06:00: %+v, %v", rows, err)
	}
	if rows, err := e.client.Report(ctx, "2026-03-01 05:00", "2026-03-01T06:00:00+07:00"); err != nil || len(rows) != 2 {
		t.Fatalf("report 05:00-06:00: %+v, %v", rows, err)
	}
	_, err = e.client.Report(ctx, "yesterday", "")
	if ae := apiError(t, err, http.StatusBadRequest); ae.Code != string(messages.BadTime) {
		t.Fatalf("%+v", ae)
	}
}
