package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

func TestProblemsAreStoredAndOutliveTheWill(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	if err := s.AddDevice(ctx, Device{ID: "a", Volume: 70, CreatedAt: now}, "h"); err != nil {
		t.Fatal(err)
	}
	problems := []protocol.Problem{
		{Code: protocol.ProblemSoundCard, Level: protocol.LevelError, Subject: "alsa:nosuchcard", Detail: "Unknown PCM nosuchcard", Since: now},
		{Code: protocol.ProblemHot, Level: protocol.LevelWarning, Value: 85, Limit: 80, Since: now},
	}
	record := func(st protocol.State, at time.Time) {
		t.Helper()
		if err := s.RecordState(ctx, "a", st, at); err != nil {
			t.Fatal(err)
		}
	}
	page := func() DeviceStatus {
		t.Helper()
		p, err := s.StatusPage(ctx, StatusQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		all, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Devices[0].Problems, all[0].Problems) {
			t.Fatalf("the page says %+v, the list %+v", p.Devices[0].Problems, all[0].Problems)
		}
		return p.Devices[0]
	}
	record(protocol.State{Online: true, State: protocol.StateError, Error: "soundcard: Unknown PCM nosuchcard", Problems: problems, At: now}, now)
	if got := page().Problems; len(got) != 2 || got[0].Subject != "alsa:nosuchcard" || got[1].Value != 85 || !got[0].Since.Equal(now) {
		t.Fatalf("problems %+v", got)
	}
	// The will says nothing of them: what was wrong when it went silent stays.
	record(protocol.State{Online: false, State: protocol.StateOffline}, now.Add(time.Minute))
	if d := page(); d.State != protocol.StateOffline || len(d.Problems) != 2 {
		t.Fatalf("after the will: %+v", d)
	}
	// Back, and well.
	record(protocol.State{Online: true, State: protocol.StateIdle, At: now}, now.Add(2*time.Minute))
	if d := page(); d.State != protocol.StateIdle || d.Problems != nil {
		t.Fatalf("after recovery: %+v", d)
	}
}
