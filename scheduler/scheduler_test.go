package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

func hcm(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestCronFiresAtLocalTimes(t *testing.T) {
	loc := hcm(t)
	s := New(loc, 48*time.Hour)
	// 2026-03-01 05:30 local = 2026-02-28 22:30 UTC.
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	tests := []struct {
		name string
		spec string
		want []string // local "2006-01-02 15:04"
	}{
		{"six every morning", "0 6 * * *", []string{"2026-03-01 06:00", "2026-03-02 06:00"}},
		{"daily descriptor is midnight, expired one kept", "@daily", []string{"2026-03-01 00:00", "2026-03-02 00:00", "2026-03-03 00:00"}},
		{"weekdays at 17:30", "30 17 * * 1-5", []string{"2026-03-02 17:30"}}, // Mar 1 2026 is a Sunday
		{"twice a day", "0 6,17 * * *", []string{"2026-03-01 06:00", "2026-03-01 17:00", "2026-03-02 06:00", "2026-03-02 17:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, err := s.Items([]Rule{{ID: "s1", Cron: tc.spec, Item: template()}}, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.Start.In(loc).Format("2006-01-02 15:04"))
				if it.ID != ItemID("s1", it.Start) || it.Announcement != "s1" {
					t.Errorf("item id %q announcement %q", it.ID, it.Announcement)
				}
				if it.Expires.Sub(it.Start) != DefaultValidity {
					t.Errorf("validity %v", it.Expires.Sub(it.Start))
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("starts = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSixAMIsTwentyThreeUTC(t *testing.T) {
	loc := hcm(t)
	s := New(loc, 24*time.Hour)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	items, err := s.Items([]Rule{{ID: "s", Cron: "0 6 * * *", Item: template()}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || !items[0].Start.Equal(time.Date(2026, 6, 1, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("got %+v, want one item at 23:00 UTC", items)
	}
}

func TestOnceAndKeep(t *testing.T) {
	s := New(time.UTC, 48*time.Hour)
	at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	r := Rule{ID: "a1", At: at, Validity: 10 * time.Minute, Item: template()}
	for _, tc := range []struct {
		now  time.Time
		want int
	}{
		{at.Add(-49 * time.Hour), 0},                     // beyond the horizon
		{at.Add(-47 * time.Hour), 1},                     // within it
		{at.Add(10*time.Minute + Keep - time.Second), 1}, // expired, still kept
		{at.Add(10*time.Minute + Keep + time.Second), 0}, // gone
	} {
		items, err := s.Items([]Rule{r}, tc.now)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != tc.want {
			t.Errorf("at %v: %d items, want %d", tc.now, len(items), tc.want)
		}
	}
	r.Paused = true
	if items, _ := s.Items([]Rule{r}, at); len(items) != 0 {
		t.Errorf("paused rule made items")
	}
}

// TestSessionStartsAtItsOrigin: a live session's item starts where its
// sound starts, not at the whole second before (a box would cue it, or
// join it, up to a second early and count the silence as missed); its id
// keeps the second, like every item's. An announcement's start is the
// second.
func TestSessionStartsAtItsOrigin(t *testing.T) {
	s := New(time.UTC, 48*time.Hour)
	at := time.Date(2026, 5, 1, 8, 0, 0, 431_000_000, time.UTC)
	session := template()
	session.Media = protocol.Media{}
	session.Stream = &protocol.StreamRef{Channels: 1}
	for _, tc := range []struct {
		name  string
		item  protocol.PlanItem
		start time.Time
	}{
		{"session", session, at},
		{"announcement", template(), at.Truncate(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := s.Items([]Rule{{ID: "l-1", At: at, Validity: time.Minute, Item: tc.item}}, at.Add(-time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 {
				t.Fatalf("%d items, want 1", len(items))
			}
			it := items[0]
			if !it.Start.Equal(tc.start) || !it.Expires.Equal(tc.start.Add(time.Minute)) || it.ID != ItemID("l-1", at.Truncate(time.Second)) {
				t.Errorf("item %s from %v to %v, want %s from %v for a minute", it.ID, it.Start, it.Expires, ItemID("l-1", at.Truncate(time.Second)), tc.start)
			}
		})
	}
}

func TestNotBeforeAndNextChange(t *testing.T) {
	s := New(time.UTC, 24*time.Hour)
	now := time.Date(2026, 5, 1, 5, 0, 0, 0, time.UTC)
	r := Rule{ID: "s", Cron: "0 6 * * *", NotBefore: now.Add(2 * time.Hour), Item: template()}
	items, _ := s.Items([]Rule{r}, now)
	if len(items) != 0 {
		t.Fatalf("schedule created at 07:00 made %d items before it existed", len(items))
	}
	// The next 06:00 (May 2) enters the 24 h horizon at May 1 06:00.
	if got, want := s.NextChange([]Rule{r}, now), time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("NextChange = %v, want %v", got, want)
	}
	items, _ = s.Items([]Rule{r}, time.Date(2026, 5, 1, 6, 0, 1, 0, time.UTC))
	if len(items) != 1 {
		t.Fatalf("after the horizon moved: %d items, want 1", len(items))
	}
}

func TestParseCronErrors(t *testing.T) {
	s := New(time.UTC, 0)
	for _, spec := range []string{"", "61 * * * *", "* * *", "0 6 * * * *", "TZ=UTC 0 6 * * *", "@fortnightly", "0 6 31 2 *"} {
		t.Run(spec, func(t *testing.T) {
			if _, err := s.ParseCron(spec); err == nil {
				t.Fatalf("ParseCron(%q) accepted a bad rule", spec)
			}
		})
	}
	for _, spec := range []string{"0 6 * * *", "@hourly", "@every 90m", "*/15 5-20 * * 1-6"} {
		if _, err := s.ParseCron(spec); err != nil {
			t.Errorf("ParseCron(%q): %v", spec, err)
		}
	}
}

func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"0 6 * * *", "@daily", "*/5 * * * 1-5", "@every 1h", "0 0 29 2 *"} {
		f.Add(s)
	}
	s := New(time.UTC, time.Hour)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		if _, err := s.ParseCron(spec); err != nil {
			return
		}
		items, err := s.Items([]Rule{{ID: "f", Cron: spec, Item: template()}}, now)
		if err != nil {
			t.Fatalf("valid spec %q failed to expand: %v", spec, err)
		}
		if len(items) > maxItemsPerRule {
			t.Fatalf("%d items", len(items))
		}
	})
}

func template() protocol.PlanItem {
	return protocol.PlanItem{Priority: protocol.Normal, Repeat: 1, Status: protocol.StatusLive,
		Media: protocol.Media{SHA256: strings.Repeat("a", 64), Size: 1, DurationMS: 1}}
}
