package broadcaster

import (
	"testing"
	"time"

	"github.com/loa-commune/loa/scheduler"
)

// TestRulesUntilMovesAtThreeAtNight: how long boxes may expand their
// plans' rules moves once a day, at 03:00 in the site's zone.
func TestRulesUntilMovesAtThreeAtNight(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, loc) }
	for _, tc := range []struct {
		name    string
		offline time.Duration
		now     time.Time
		want    time.Time
	}{
		{"before three: yesterday's", 0, at(2, 2, 59), at(1, 3, 0).Add(DefaultOfflineFor)},
		{"at three", 0, at(2, 3, 0), at(2, 3, 0).Add(DefaultOfflineFor)},
		{"evening", 0, at(2, 23, 30), at(2, 3, 0).Add(DefaultOfflineFor)},
		{"a week", 7 * 24 * time.Hour, at(2, 12, 0), at(9, 3, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{opts: Options{OfflineFor: tc.offline}, sched: scheduler.New(loc, 0)}
			if got := s.rulesUntil(tc.now); !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("rulesUntil(%v) = %v, want %v (UTC)", tc.now, got, tc.want)
			}
		})
	}
}
