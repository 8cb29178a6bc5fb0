package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// TestSessionLifecycle: a live session's rule and record, its end (which
// the rule's next plans carry), its recording and the recording's removal.
func TestSessionLifecycle(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	addDevice(t, s, "loa-1", "thon-1")
	start := t0.Add(time.Minute)
	rule := Rule{ID: "l-1", Kind: KindOnce, Start: start, Targets: Targets{Groups: []string{"thon-1"}},
		Priority: protocol.High, Repeat: 1, Validity: time.Hour, StreamChannels: 1, CreatedAt: t0}
	if err := s.AddRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	x := Session{ID: "l-1-1", Rule: "l-1", Kind: SessionLive, Source: "microphone", StartedBy: "admin",
		Targets: rule.Targets, Priority: protocol.High, StartedAt: start}
	if err := s.AddSession(ctx, x); err != nil {
		t.Fatal(err)
	}
	got, err := s.RuleByID(ctx, "l-1")
	if err != nil || got.StreamChannels != 1 || !got.StreamEnds.IsZero() {
		t.Fatalf("rule = %+v, %v; want a session on air", got, err)
	}
	end := start.Add(90 * time.Second)
	if err := s.EndSession(ctx, x.ID, SessionEnd{At: end, Reason: "the speaker stopped", Packets: 900, Bytes: 300_000, Gaps: 1}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.RuleByID(ctx, "l-1"); !got.StreamEnds.Equal(end) {
		t.Errorf("rule's stream end = %v, want %v", got.StreamEnds, end)
	}
	if err := s.EndSession(ctx, "l-404", SessionEnd{At: end}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ending an unknown session: %v, want ErrNotFound", err)
	}

	sha := strings.Repeat("c", 64)
	addMedia(t, s, sha)
	if err := s.SetSessionRecording(ctx, x.ID, sha); err != nil {
		t.Fatal(err)
	}
	list, err := s.Sessions(ctx, time.Time{}, time.Time{}, 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("sessions = %v, %v", list, err)
	}
	if y := list[0]; y.EndReason != "the speaker stopped" || y.Packets != 900 || y.Recording != sha || !y.EndedAt.Equal(end) || y.StartedBy != "admin" {
		t.Errorf("session = %+v", y)
	}
	if _, err := s.RemoveMedia(ctx, sha); err != nil {
		t.Fatal(err)
	}
	if y, _ := s.SessionByID(ctx, x.ID); y.Recording != "" || y.EndReason == "" {
		t.Errorf("after removing its recording the session is %+v; want kept without the recording", y)
	}
}
