package store

import (
	"context"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// TestTimeSourceIsKeptWithTheState: the box's time source is stored with
// its state, shown by both status queries, and kept when the will comes.
func TestTimeSourceIsKeptWithTheState(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	if err := s.AddDevice(ctx, Device{ID: "a", Volume: 70, CreatedAt: now}, "h"); err != nil {
		t.Fatal(err)
	}
	check := func(want string) {
		t.Helper()
		p, err := s.StatusPage(ctx, StatusQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		all, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Devices[0].TimeSource != want || all[0].TimeSource != want {
			t.Fatalf("time source: page %q, list %q; want %q", p.Devices[0].TimeSource, all[0].TimeSource, want)
		}
	}
	check("")
	if err := s.RecordState(ctx, "a", protocol.State{Online: true, State: protocol.StateIdle, TimeSource: "rtc", At: now}, now); err != nil {
		t.Fatal(err)
	}
	check("rtc")
	if err := s.RecordState(ctx, "a", protocol.State{Online: false, State: protocol.StateOffline}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("rtc")
	if err := s.RecordState(ctx, "a", protocol.State{Online: true, State: protocol.StateWaitingForTime, TimeSource: "saved", At: now}, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("saved")
}
