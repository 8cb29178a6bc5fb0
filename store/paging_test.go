package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// statusCommune is twelve boxes loa-01..loa-12, odd ones in thon-a and even
// ones in thon-b (loa-01 also in cho), with states: loa-01 playing, loa-02
// idle, loa-03 waiting for time, loa-04 idle but silent since long ago,
// loa-05 said it went offline, the rest never reported.
func statusCommune(t *testing.T) (*Store, time.Time) {
	t.Helper()
	s := openStore(t)
	for i := 1; i <= 12; i++ {
		g := []string{"thon-b"}
		if i%2 == 1 {
			g = []string{"thon-a"}
		}
		if i == 1 {
			g = append(g, "cho")
		}
		addDevice(t, s, fmt.Sprintf("loa-%02d", i), g...)
	}
	ctx := context.Background()
	for id, st := range map[string]protocol.State{
		"loa-01": {Online: true, State: protocol.StatePlaying, Playing: "a-1-100"},
		"loa-02": {Online: true, State: protocol.StateIdle},
		"loa-03": {Online: true, State: protocol.StateWaitingForTime},
		"loa-05": {Online: false, State: protocol.StateOffline, Playing: "a-1-100"},
	} {
		if err := s.RecordState(ctx, id, st, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordState(ctx, "loa-04", protocol.State{Online: true, State: protocol.StateIdle}, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	return s, t0.Add(-10 * time.Minute)
}

func ids(page StatusPage) []string {
	out := []string{}
	for _, d := range page.Devices {
		out = append(out, d.ID)
	}
	return out
}

func TestStatusPageWalksEveryBoxOnce(t *testing.T) {
	s, stale := statusCommune(t)
	ctx := context.Background()
	for _, limit := range []int{1, 4, 5, 12, 13, 0} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			q := StatusQuery{Limit: limit, StaleBefore: stale}
			for pages := 0; ; pages++ {
				p, err := s.StatusPage(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if p.Total != 12 || p.Offset != len(got) {
					t.Fatalf("page %d: total %d offset %d, want 12 and %d", pages, p.Total, p.Offset, len(got))
				}
				got = append(got, ids(p)...)
				if p.Next == "" {
					break
				}
				if p.Next != got[len(got)-1] {
					t.Fatalf("next %q is not the last row %q", p.Next, got[len(got)-1])
				}
				q.After = p.Next
			}
			want := []string{"loa-01", "loa-02", "loa-03", "loa-04", "loa-05", "loa-06", "loa-07", "loa-08", "loa-09", "loa-10", "loa-11", "loa-12"}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("walked %v", got)
			}
		})
	}
}

func TestStatusPageFilters(t *testing.T) {
	s, stale := statusCommune(t)
	ctx := context.Background()
	allCounts := map[string]int{"playing": 1, "idle": 1, "waiting-for-time": 1, "offline": 9}
	tests := []struct {
		name       string
		q          StatusQuery
		want       []string
		total, off int
		next       string
		counts     map[string]int
	}{
		{"first page", StatusQuery{Limit: 5}, []string{"loa-01", "loa-02", "loa-03", "loa-04", "loa-05"}, 12, 0, "loa-05", allCounts},
		{"middle page", StatusQuery{Limit: 5, After: "loa-05"}, []string{"loa-06", "loa-07", "loa-08", "loa-09", "loa-10"}, 12, 5, "loa-10", allCounts},
		{"last page", StatusQuery{Limit: 5, After: "loa-10"}, []string{"loa-11", "loa-12"}, 12, 10, "", allCounts},
		{"last page exactly full", StatusQuery{Limit: 2, After: "loa-10"}, []string{"loa-11", "loa-12"}, 12, 10, "", allCounts},
		{"past the end", StatusQuery{Limit: 5, After: "loa-12"}, []string{}, 12, 12, "", allCounts},
		// A cursor is a position, not a row: the box may have been removed.
		{"after a removed box", StatusQuery{Limit: 2, After: "loa-055"}, []string{"loa-06", "loa-07"}, 12, 5, "loa-07", allCounts},
		{"group", StatusQuery{Group: "thon-a"}, []string{"loa-01", "loa-03", "loa-05", "loa-07", "loa-09", "loa-11"}, 6, 0, "",
			map[string]int{"playing": 1, "waiting-for-time": 1, "offline": 4}},
		{"group paged", StatusQuery{Group: "thon-a", Limit: 2, After: "loa-03"}, []string{"loa-05", "loa-07"}, 6, 2, "loa-07",
			map[string]int{"playing": 1, "waiting-for-time": 1, "offline": 4}},
		{"online", StatusQuery{State: "online"}, []string{"loa-01", "loa-02", "loa-03"}, 3, 0, "", allCounts},
		// loa-04 says idle but is silent: offline, like loa-05 and the never seen.
		{"offline", StatusQuery{State: "offline", Limit: 3}, []string{"loa-04", "loa-05", "loa-06"}, 9, 0, "loa-06", allCounts},
		{"offline middle", StatusQuery{State: "offline", Limit: 3, After: "loa-06"}, []string{"loa-07", "loa-08", "loa-09"}, 9, 3, "loa-09", allCounts},
		{"playing", StatusQuery{State: "playing"}, []string{"loa-01"}, 1, 0, "", allCounts},
		{"waiting-for-time", StatusQuery{State: "waiting-for-time"}, []string{"loa-03"}, 1, 0, "", allCounts},
		{"group and state", StatusQuery{Group: "thon-a", State: "offline"}, []string{"loa-05", "loa-07", "loa-09", "loa-11"}, 4, 0, "",
			map[string]int{"playing": 1, "waiting-for-time": 1, "offline": 4}},
		{"prefix", StatusQuery{IDPrefix: "loa-1"}, []string{"loa-10", "loa-11", "loa-12"}, 3, 0, "", map[string]int{"offline": 3}},
		{"prefix and group", StatusQuery{IDPrefix: "loa-1", Group: "thon-b"}, []string{"loa-10", "loa-12"}, 2, 0, "", map[string]int{"offline": 2}},
		{"nothing matches", StatusQuery{State: "error"}, []string{}, 0, 0, "", allCounts},
		{"no such prefix", StatusQuery{IDPrefix: "xyz"}, []string{}, 0, 0, "", map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.StaleBefore = stale
			p, err := s.StatusPage(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p); !reflect.DeepEqual(got, tc.want) || p.Total != tc.total || p.Offset != tc.off || p.Next != tc.next {
				t.Errorf("got %v total %d offset %d next %q; want %v total %d offset %d next %q", got, p.Total, p.Offset, p.Next, tc.want, tc.total, tc.off, tc.next)
			}
			if !reflect.DeepEqual(p.Counts, tc.counts) {
				t.Errorf("counts %v, want %v", p.Counts, tc.counts)
			}
		})
	}
}

func TestStatusPageRows(t *testing.T) {
	s, stale := statusCommune(t)
	p, err := s.StatusPage(context.Background(), StatusQuery{Limit: 5, StaleBefore: stale})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Devices
	if d[0].ID != "loa-01" || !d[0].Online || d[0].State != "playing" || d[0].Playing == nil || *d[0].Playing != "a-1-100" ||
		!reflect.DeepEqual(d[0].Groups, []string{"cho", "thon-a"}) || d[0].Name != "Loa loa-01" || d[0].Volume != 80 || !d[0].LastSeen.Equal(t0) {
		t.Errorf("loa-01: %+v", d[0])
	}
	if d[3].Online || d[3].State != "offline" || d[3].Playing != nil || !d[3].LastSeen.Equal(t0.Add(-time.Hour)) {
		t.Errorf("silent loa-04: %+v", d[3])
	}
	if d[4].Online || d[4].State != "offline" || d[4].Playing != nil {
		t.Errorf("offline loa-05: %+v", d[4])
	}
	if !reflect.DeepEqual(d[1].Groups, []string{"thon-b"}) {
		t.Errorf("loa-02's groups: %v", d[1].Groups)
	}

	// Without StaleBefore, the page says what Status says.
	p, err = s.StatusPage(context.Background(), StatusQuery{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Devices, all) {
		t.Errorf("page\n%+v\nstatus\n%+v", p.Devices, all)
	}
}

func TestStatusPageRefuses(t *testing.T) {
	s, _ := statusCommune(t)
	ctx := context.Background()
	// An unknown group is an error, not an empty page: a typo in a village's
	// name must not read as "no box there".
	if _, err := s.StatusPage(ctx, StatusQuery{Group: "thon-z"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown group: %v", err)
	}
	for _, q := range []StatusQuery{{State: "asleep"}, {Limit: -1}, {Limit: MaxPageSize + 1}} {
		if _, err := s.StatusPage(ctx, q); !errors.Is(err, ErrBadFilter) {
			t.Errorf("%+v: %v", q, err)
		}
	}
}

// reportCommune is four boxes (d1, d2 in g1; d3, d4 in g2) and three items:
// a-1 at t0, a-2 at t0+1h and t0+2h, each pending on every box, then d1
// played a-1, d2 failed it, d1 played a-2's first item.
func reportCommune(t *testing.T) *Store {
	t.Helper()
	s := openStore(t)
	ctx := context.Background()
	for i, g := range []string{"g1", "g1", "g2", "g2"} {
		addDevice(t, s, fmt.Sprintf("d%d", i+1), g)
	}
	boxes := []string{"d1", "d2", "d3", "d4"}
	for _, it := range []struct {
		rule string
		at   time.Time
	}{{"a-1", t0}, {"a-2", t0.Add(time.Hour)}, {"a-2", t0.Add(2 * time.Hour)}} {
		if err := s.addPending(ctx, item(it.rule, it.at), it.rule, it.at, boxes); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []struct {
		box string
		ev  protocol.Event
	}{
		{"d1", protocol.Event{Item: item("a-1", t0), Announcement: "a-1", Type: protocol.EventPlayed, At: t0.Add(time.Minute)}},
		{"d2", protocol.Event{Item: item("a-1", t0), Announcement: "a-1", Type: protocol.EventFailed, At: t0, Reason: "no sound card"}},
		{"d1", protocol.Event{Item: item("a-2", t0.Add(time.Hour)), Announcement: "a-2", Type: protocol.EventPlayed, At: t0.Add(time.Hour)}},
	} {
		if err := s.RecordEvent(ctx, e.box, e.ev, e.ev.At); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func keys(rows []Delivery) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Item[:3]+"@"+r.ScheduledAt.Sub(t0).String()+"/"+r.Device)
	}
	return out
}

func TestReportPageWalksEveryRowOnce(t *testing.T) {
	s := reportCommune(t)
	ctx := context.Background()
	want := keys(report(t, s))
	if len(want) != 12 {
		t.Fatalf("report has %d rows", len(want))
	}
	for _, limit := range []int{1, 5, 6, 12, 0} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			q := ReportQuery{Limit: limit}
			for {
				p, err := s.ReportPage(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if p.Total != 12 || p.Offset != len(got) {
					t.Fatalf("total %d offset %d, want 12 and %d", p.Total, p.Offset, len(got))
				}
				got = append(got, keys(p.Rows)...)
				if p.Next == "" {
					break
				}
				q.After = p.Next
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("walked %v\nwant %v", got, want)
			}
		})
	}
}

func TestReportPageFilters(t *testing.T) {
	s := reportCommune(t)
	ctx := context.Background()
	all := map[string]int{"played": 2, "failed": 1, "pending": 9}
	first, err := s.ReportPage(ctx, ReportQuery{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	middle, err := s.ReportPage(ctx, ReportQuery{Limit: 5, After: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		q          ReportQuery
		want       []string
		total, off int
		next       bool
		counts     map[string]int
	}{
		{"first page", ReportQuery{Limit: 5}, []string{"a-1@0s/d1", "a-1@0s/d2", "a-1@0s/d3", "a-1@0s/d4", "a-2@1h0m0s/d1"}, 12, 0, true, all},
		{"middle page", ReportQuery{Limit: 5, After: first.Next}, []string{"a-2@1h0m0s/d2", "a-2@1h0m0s/d3", "a-2@1h0m0s/d4", "a-2@2h0m0s/d1", "a-2@2h0m0s/d2"}, 12, 5, true, all},
		{"last page", ReportQuery{Limit: 5, After: middle.Next}, []string{"a-2@2h0m0s/d3", "a-2@2h0m0s/d4"}, 12, 10, false, all},
		{"status", ReportQuery{Status: "played"}, []string{"a-1@0s/d1", "a-2@1h0m0s/d1"}, 2, 0, false, all},
		{"status paged", ReportQuery{Status: "pending", Limit: 4, After: first.Next}, []string{"a-2@1h0m0s/d2", "a-2@1h0m0s/d3", "a-2@1h0m0s/d4", "a-2@2h0m0s/d1"}, 9, 2, true, all},
		{"group", ReportQuery{Group: "g1"}, []string{"a-1@0s/d1", "a-1@0s/d2", "a-2@1h0m0s/d1", "a-2@1h0m0s/d2", "a-2@2h0m0s/d1", "a-2@2h0m0s/d2"}, 6, 0, false,
			map[string]int{"played": 2, "failed": 1, "pending": 3}},
		{"group and status", ReportQuery{Group: "g2", Status: "pending", Limit: 2}, []string{"a-1@0s/d3", "a-1@0s/d4"}, 6, 0, true, map[string]int{"pending": 6}},
		{"device", ReportQuery{Device: "d1"}, []string{"a-1@0s/d1", "a-2@1h0m0s/d1", "a-2@2h0m0s/d1"}, 3, 0, false,
			map[string]int{"played": 2, "pending": 1}},
		{"device paged", ReportQuery{Device: "d1", Limit: 2}, []string{"a-1@0s/d1", "a-2@1h0m0s/d1"}, 3, 0, true,
			map[string]int{"played": 2, "pending": 1}},
		{"announcement", ReportQuery{Announcement: "a-1"}, []string{"a-1@0s/d1", "a-1@0s/d2", "a-1@0s/d3", "a-1@0s/d4"}, 4, 0, false,
			map[string]int{"played": 1, "failed": 1, "pending": 2}},
		{"since and until", ReportQuery{Since: t0.Add(time.Hour), Until: t0.Add(2 * time.Hour), Group: "g2"}, []string{"a-2@1h0m0s/d3", "a-2@1h0m0s/d4"}, 2, 0, false,
			map[string]int{"pending": 2}},
		{"nothing matches", ReportQuery{Status: "expired"}, []string{}, 0, 0, false, all},
		{"nothing in the span", ReportQuery{Since: t0.Add(24 * time.Hour)}, []string{}, 0, 0, false, map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.ReportPage(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(p.Rows); !reflect.DeepEqual(got, tc.want) || p.Total != tc.total || p.Offset != tc.off || (p.Next != "") != tc.next {
				t.Errorf("got %v total %d offset %d next %q; want %v total %d offset %d next %v", got, p.Total, p.Offset, p.Next, tc.want, tc.total, tc.off, tc.next)
			}
			if !reflect.DeepEqual(p.Counts, tc.counts) {
				t.Errorf("counts %v, want %v", p.Counts, tc.counts)
			}
		})
	}
}

func TestReportPageSumsUpAnnouncements(t *testing.T) {
	s := reportCommune(t)
	ctx := context.Background()
	p, err := s.ReportPage(ctx, ReportQuery{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	// Both announcements are on the first page; each is counted whole.
	want := []AnnouncementSummary{
		{Announcement: "a-1", Total: 4, Counts: map[string]int{"played": 1, "failed": 1, "pending": 2}},
		{Announcement: "a-2", Total: 8, Counts: map[string]int{"played": 1, "pending": 7}},
	}
	if !reflect.DeepEqual(p.Announcements, want) {
		t.Errorf("summary %+v", p.Announcements)
	}
	// Only what is on the page, counted within the filter.
	p, err = s.ReportPage(ctx, ReportQuery{Group: "g1", Since: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want = []AnnouncementSummary{{Announcement: "a-2", Total: 4, Counts: map[string]int{"played": 1, "pending": 3}}}
	if !reflect.DeepEqual(p.Announcements, want) {
		t.Errorf("summary of g1 from t0+1h: %+v", p.Announcements)
	}
	if p, err := s.ReportPage(ctx, ReportQuery{Status: "expired"}); err != nil || len(p.Announcements) != 0 || p.Announcements == nil {
		t.Errorf("empty page: %+v, %v", p.Announcements, err)
	}
}

func TestReportPageRefuses(t *testing.T) {
	s := reportCommune(t)
	ctx := context.Background()
	if _, err := s.ReportPage(ctx, ReportQuery{Group: "g9"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown group: %v", err)
	}
	for _, c := range []string{"!!", "bm9waXBl", reportCursor{1, "x", "y"}.String()[:4]} {
		if _, err := s.ReportPage(ctx, ReportQuery{After: c}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
	for _, q := range []ReportQuery{{Status: "sung"}, {Limit: -5}, {Limit: 501}} {
		if _, err := s.ReportPage(ctx, q); !errors.Is(err, ErrBadFilter) {
			t.Errorf("%+v: %v", q, err)
		}
	}
}

func TestReportCursorRoundTrip(t *testing.T) {
	for _, c := range []reportCursor{{0, "", ""}, {1772406000000, "a-1-1772406000", "loa-01"}, {5, "odd|item", "box"}} {
		got, err := parseReportCursor(c.String())
		if err != nil || got != c {
			t.Errorf("%+v: got %+v, %v", c, got, err)
		}
	}
}
