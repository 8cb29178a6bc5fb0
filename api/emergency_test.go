package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

func TestEmergencyToneOnlyAndCancel(t *testing.T) {
	speaker := &fakeSpeaker{}
	e := newEnvWith(t, api.Options{Speech: speaker, AllClearText: "Đã hết báo động."})
	e.addDevice(t, "loa-1", "thon-1")
	ctx := context.Background()

	a, err := e.client.StartEmergency(ctx, api.AnnounceRequest{Targets: store.Targets{Groups: []string{"thon-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Priority != "emergency" || a.Tone != "siren" || a.Media != "" || !strings.HasPrefix(a.ID, "e-") || len(a.Devices) != 1 || a.Deliveries != nil {
		t.Fatalf("tone-only emergency: %+v", a)
	}
	list, err := e.client.Emergencies(ctx)
	if err != nil || len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("active emergencies: %+v, %v", list, err)
	}
	res, err := e.client.CancelEmergency(ctx, "")
	if err != nil || len(res.Cancelled) != 1 || res.Cancelled[0] != a.ID || res.AllClear == "" {
		t.Fatalf("cancel all: %+v, %v", res, err)
	}
	if len(speaker.texts) != 1 || speaker.texts[0] != "Đã hết báo động." {
		t.Fatalf("spoken: %q", speaker.texts)
	}
	allClear, err := e.client.Announcement(ctx, res.AllClear)
	if err != nil || allClear.Priority != "priority" || allClear.Media == "" || len(allClear.Devices) != 1 ||
		len(allClear.Deliveries) != 1 || allClear.Deliveries[0].Device != "loa-1" || allClear.Deliveries[0].Status != store.StatusPending {
		t.Fatalf("all-clear: %+v, %v", allClear, err)
	}
	if _, err := e.client.CancelEmergency(ctx, ""); apiError(t, err, http.StatusNotFound) == nil {
		t.Fatal("second cancel succeeded")
	}
	audit, err := e.client.Audit(ctx, "", "")
	if err != nil || len(audit) != 2 || audit[0].Action != store.AuditEmergencyStart || audit[1].Action != store.AuditEmergencyCancel ||
		audit[0].Targets != "group:thon-1" || audit[1].Rule != a.ID {
		t.Fatalf("audit: %+v, %v", audit, err)
	}
}

func TestEmergencyRefuses(t *testing.T) {
	e := newEnv(t) // no speech engine
	e.addDevice(t, "loa-1", "thon-1")
	ctx := context.Background()
	thon1 := store.Targets{Groups: []string{"thon-1"}}
	for name, tc := range map[string]struct {
		req    api.AnnounceRequest
		status int
	}{
		"unknown tone":  {api.AnnounceRequest{Targets: thon1, Tone: "whistle"}, http.StatusBadRequest},
		"text, no tts":  {api.AnnounceRequest{Targets: thon1, Text: "Lũ quét"}, http.StatusBadRequest},
		"unknown group": {api.AnnounceRequest{Targets: store.Targets{Groups: []string{"thon-9"}}}, http.StatusNotFound},
		"no target":     {api.AnnounceRequest{}, http.StatusBadRequest},
		"a time":        {api.AnnounceRequest{Targets: thon1, At: "06:00"}, http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.client.StartEmergency(ctx, tc.req)
			apiError(t, err, tc.status)
		})
	}
	if _, err := e.client.Announce(ctx, api.AnnounceRequest{Targets: thon1, Tone: "siren", Media: e.addMedia(t, wav(8000, time.Second)).ID}); err == nil {
		t.Fatal("a normal announcement with an alert tone was accepted")
	}
	if list, _ := e.client.Emergencies(ctx); len(list) != 0 {
		t.Fatalf("refused emergencies were stored: %+v", list)
	}
	if audit, _ := e.client.Audit(ctx, "", ""); len(audit) != 0 {
		t.Fatalf("refused emergencies were audited: %+v", audit)
	}
}

func TestExerciseGetsSpokenNotice(t *testing.T) {
	speaker := &fakeSpeaker{}
	e := newEnvWith(t, api.Options{Speech: speaker, ExerciseNotice: "Đây là bản tin diễn tập."})
	e.addDevice(t, "loa-1", "thon-1")
	m := e.addMedia(t, wav(8000, 2*time.Second))
	a, err := e.client.StartEmergency(context.Background(), api.AnnounceRequest{Targets: store.Targets{All: true}, Media: m.ID, Exercise: true})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Exercise || a.Media == m.ID || len(speaker.texts) != 1 {
		t.Fatalf("exercise: %+v, spoken %q", a, speaker.texts)
	}
	list, _ := e.client.Media(context.Background())
	for _, x := range list {
		// notice (1 s) + 0.5 s gap + message (2 s)
		if x.ID == a.Media && (x.DurationMS < 3400 || x.DurationMS > 3700 || x.Codec != "pcm_s16le") {
			t.Fatalf("joined media %+v", x)
		}
	}
}

// TestEmergencyAnswerNamesBoxesReportListsThem: at 1,000 boxes the answer
// to POST /v1/emergencies names the boxes but carries no report row (each
// would say "pending"), and a GET right after it, as `loa emergency --wait`
// polls, lists every box pending; so does the report.
func TestEmergencyAnswerNamesBoxesReportListsThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const boxes = 1000
	e.addBoxes(t, boxes)
	raw := e.postCreated(t, "/v1/emergencies", `{"targets":{"all":true}}`)
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	var a api.Announcement
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["deliveries"]; ok || len(a.Devices) != boxes || len(raw) > 20*boxes {
		t.Fatalf("the answer has deliveries: %v, %d boxes, %d bytes; want none, %d boxes, a few bytes a box", ok, len(a.Devices), len(raw), boxes)
	}

	got, err := e.client.Announcement(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	item := scheduler.ItemID(a.ID, a.Start)
	if len(got.Deliveries) != boxes {
		t.Fatalf("GET right after POST lists %d deliveries, want %d", len(got.Deliveries), boxes)
	}
	for i, d := range got.Deliveries {
		if d.Device != a.Devices[i] || d.Status != store.StatusPending || d.Item != item || !d.ScheduledAt.Equal(a.Start) {
			t.Fatalf("delivery %d: %+v", i, d)
		}
	}
	rep, err := e.client.Report(ctx, "", "")
	if err != nil || len(rep) != boxes {
		t.Fatalf("loa report: %d rows, %v; want %d", len(rep), err, boxes)
	}
}
