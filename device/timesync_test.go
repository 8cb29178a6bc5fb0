package device

import (
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

func TestEstimateOffsetDropsSlowRoundTrips(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []timeSample
		want    time.Duration
		ok      bool
	}{
		{"too few", []timeSample{{5 * ms, ms}, {5 * ms, ms}}, 0, false},
		{"median of equals", []timeSample{{200 * ms, ms}, {201 * ms, ms}, {199 * ms, ms}}, 200 * ms, true},
		// A queue on the way in makes the offset look larger; those round
		// trips are slow and must not count.
		{"slow ones dropped", []timeSample{
			{200 * ms, 2 * ms}, {201 * ms, 2 * ms}, {199 * ms, 3 * ms}, {200 * ms, 2 * ms},
			{450 * ms, 500 * ms}, {420 * ms, 450 * ms}, {380 * ms, 400 * ms}, {600 * ms, 800 * ms},
		}, 200 * ms, true},
		// Eight samples: the fastest half counts, and an even count
		// averages the middle two.
		{"fastest half", []timeSample{
			{10 * ms, 10 * ms}, {20 * ms, 11 * ms}, {30 * ms, 12 * ms}, {40 * ms, 13 * ms},
			{90 * ms, 14 * ms}, {90 * ms, 15 * ms}, {90 * ms, 16 * ms}, {90 * ms, 17 * ms},
		}, 25 * ms, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := estimateOffset(tc.samples)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("estimateOffset = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestTimeSyncCorrectsTheClock answers requests as a controller whose clock
// is 3 s ahead would, and checks the synced clock follows, and that answers
// nobody asked for, or that come twice, change nothing.
func TestTimeSyncCorrectsTheClock(t *testing.T) {
	base := &fakeClock{now: time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)}
	c := &syncedClock{base: base}
	s := newTimeSync(c)
	ahead := 3 * time.Second
	if _, ok := s.onResponse(protocol.TimeResponse{ID: 99, Sent: base.Now(), Received: base.Now().Add(time.Hour)}, time.Now()); ok {
		t.Fatal("an answer to no request was used")
	}
	for range syncMinSamples {
		req := s.request()
		resp := protocol.TimeResponse{ID: req.ID, Sent: req.Sent, Received: req.Sent.Add(ahead)}
		s.onResponse(resp, time.Now())
		if _, ok := s.onResponse(resp, time.Now()); c.Synced() != ok {
			t.Fatal("a repeated answer changed the sync state")
		}
	}
	if !c.Synced() {
		t.Fatal("not synced after enough answers")
	}
	if d := c.Now().Sub(base.Now()) - ahead; d < -10*time.Millisecond || d > 10*time.Millisecond {
		t.Fatalf("synced clock is %v off the controller's", d)
	}
	select {
	case <-s.changed:
	default:
		t.Fatal("the first estimate did not wake the loop")
	}
}
