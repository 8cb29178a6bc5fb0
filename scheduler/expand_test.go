package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/loa-commune/loa/protocol"
)

// expandTable is the specs the controller and the boxes must expand alike:
// month ends, leap days, a window of quarter hours, a descriptor, and a zone
// with summer time beside one without.
var expandTable = []struct {
	name, spec, zone string
	want             int // starts in the two years 2027-2028, local; 0: not counted
}{
	{"daily 06:00", "0 6 * * *", "Asia/Ho_Chi_Minh", 731},
	{"weekdays 17:30", "30 17 * * 1-5", "Asia/Ho_Chi_Minh", 521},
	{"monthly on the 31st", "0 7 31 * *", "Asia/Ho_Chi_Minh", 14},
	{"29 February", "0 8 29 2 *", "Asia/Ho_Chi_Minh", 1},
	{"every 15 minutes 06:00-08:59", "*/15 6-8 * * *", "Asia/Ho_Chi_Minh", 731 * 12},
	{"@daily", "@daily", "Asia/Ho_Chi_Minh", 731},
	{"daily 06:00 Berlin", "0 6 * * *", "Europe/Berlin", 731},
	{"02:30 Berlin, in the spring gap", "30 2 * * *", "Europe/Berlin", 0},
	{"Sundays 03:00 Berlin", "0 3 * * 0", "Europe/Berlin", 105},
	{"monthly on the 31st Berlin", "15 23 31 * *", "Europe/Berlin", 14},
}

func loadZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestExpandMatchesCronOverTwoYears: the union of Expand over the windows a
// controller publishes (now-Keep to now+48h, now stepping a day at a time)
// is exactly what robfig/cron's own Next gives, stepped here, over 2027 and
// 2028: every start once, with its id, expiry and template.
func TestExpandMatchesCronOverTwoYears(t *testing.T) {
	for _, tc := range expandTable {
		t.Run(tc.name, func(t *testing.T) {
			loc := loadZone(t, tc.zone)
			from := time.Date(2027, 1, 1, 0, 0, 0, 0, loc)
			to := time.Date(2029, 1, 1, 0, 0, 0, 0, loc)
			r := Rule{ID: "s-1", Cron: tc.spec, NotBefore: from, Validity: 10 * time.Minute, Item: template()}

			// The reference: robfig/cron's Next from the rule's creation.
			ref, err := cron.ParseStandard("CRON_TZ=" + tc.zone + " " + tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			var want []time.Time
			for s := ref.Next(from.Add(-time.Second)); s.Before(to); s = ref.Next(s) {
				want = append(want, s)
			}
			if tc.want != 0 && len(want) != tc.want {
				t.Fatalf("the reference has %d starts, want %d", len(want), tc.want)
			}

			got := map[string]protocol.PlanItem{}
			for now := from; now.Before(to); now = now.Add(24 * time.Hour) {
				items, err := Expand(r, loc, now.Add(-Keep), now.Add(DefaultHorizon))
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range items {
					if prev, ok := got[it.ID]; ok && !sameItem(prev, it) {
						t.Fatalf("item %s differs between windows: %+v and %+v", it.ID, prev, it)
					}
					got[it.ID] = it
				}
			}
			n := 0
			for _, it := range got {
				if it.Start.Before(to) {
					n++
				}
			}
			if n != len(want) {
				t.Fatalf("Expand gave %d starts before %v, the reference %d", n, to, len(want))
			}
			for _, s := range want {
				it, ok := got[ItemID("s-1", s)]
				if !ok {
					t.Fatalf("no item for %v", s.In(loc))
				}
				if !it.Start.Equal(s) || it.Start.Location() != time.UTC || !it.Expires.Equal(s.Add(10*time.Minute)) ||
					it.Announcement != "s-1" || it.Media != r.Item.Media || it.Priority != r.Item.Priority {
					t.Fatalf("item %+v for start %v", it, s)
				}
			}
		})
	}
}

func sameItem(a, b protocol.PlanItem) bool {
	return a.ID == b.ID && a.Start.Equal(b.Start) && a.Expires.Equal(b.Expires) && a.Media == b.Media &&
		a.Priority == b.Priority && a.Announcement == b.Announcement
}

// TestExpandEdges: pause, the rule's start and end, and the window's edges.
func TestExpandEdges(t *testing.T) {
	loc := loadZone(t, "Asia/Ho_Chi_Minh")
	day := func(d int) time.Time { return time.Date(2027, 3, d, 6, 0, 0, 0, loc) }
	r := Rule{ID: "s", Cron: "0 6 * * *", NotBefore: day(2), NotAfter: day(5), Item: template()}
	count := func(r Rule, from, to time.Time) int {
		t.Helper()
		items, err := Expand(r, loc, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return len(items)
	}
	if n := count(r, day(1), day(9)); n != 3 { // the 2nd, 3rd, 4th
		t.Errorf("between its start and end: %d items, want 3", n)
	}
	if n := count(r, day(3).Add(DefaultValidity-time.Second), day(4)); n != 1 { // the 3rd expires a second later
		t.Errorf("an item that expires after the window's start is of interest: %d, want 1", n)
	}
	if n := count(r, day(3).Add(DefaultValidity), day(4)); n != 0 { // the 3rd expires just then
		t.Errorf("an item that expires at the window's start is not: %d, want 0", n)
	}
	if n := count(r, day(3), day(4)); n != 1 { // the 4th starts at the end: not in
		t.Errorf("window ending at a start: %d, want 1", n)
	}
	r.Paused = true
	if n := count(r, day(1), day(9)); n != 0 {
		t.Errorf("paused: %d items", n)
	}
	if _, err := Expand(Rule{ID: "bad", Cron: "61 * * * *"}, loc, day(1), day(2)); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("bad spec: %v", err)
	}
}

// FuzzPlanRuleOnBox: whatever spec a plan carries, a box either refuses
// the rule or makes valid items of it, no more than a rule may make.
func FuzzPlanRuleOnBox(f *testing.F) {
	for _, s := range []string{"0 6 * * *", "@daily", "*/5 * * * 1-5", "0 0 29 2 *", "30 2 * * *", "@every 1h"} {
		f.Add(s, int64(900_000), false)
	}
	from := time.Date(2027, 3, 28, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string, validity int64, berlin bool) {
		pr := protocol.PlanRule{ID: "s-1", Cron: spec, Zone: "Asia/Ho_Chi_Minh", ValidityMS: validity, Priority: protocol.Normal,
			Media: template().Media, Repeat: 1, Status: protocol.StatusLive}
		if berlin {
			pr.Zone = "Europe/Berlin"
		}
		p := protocol.Plan{Target: "all", Items: []protocol.PlanItem{}, Rules: []protocol.PlanRule{pr}}
		if p.Validate() != nil {
			return
		}
		r, loc, err := FromPlanRule(pr)
		if err != nil {
			return
		}
		items, err := Expand(r, loc, from.Add(-Keep), from.Add(24*time.Hour))
		if err != nil {
			t.Fatalf("a rule FromPlanRule took does not expand: %v", err)
		}
		if len(items) > maxItemsPerRule {
			t.Fatalf("%d items", len(items))
		}
		for _, it := range items {
			if err := it.Validate(); err != nil {
				t.Fatalf("spec %q made a bad item: %v", spec, err)
			}
		}
	})
}
