package api_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	capxml "github.com/loa-commune/loa/cap"
)

func capEnv(t *testing.T) *env {
	t.Helper()
	ict := time.FixedZone("ICT", 7*3600)
	now := time.Date(2026, 9, 14, 12, 0, 0, 0, ict)
	cfg := capxml.DefaultConfig()
	cfg.Areas = []capxml.AreaMapping{{Geocode: "VN-COMMUNE=14875", Groups: []string{"son-thuy"}}, {AreaDesc: "Bản Na Mèo", Groups: []string{"son-thuy"}}}
	e := newEnvWith(t, api.Options{Speech: &fakeSpeaker{}, CAP: cfg, ExerciseNotice: "Diễn tập.", Now: func() time.Time { return now }})
	e.addDevice(t, "loa-1", "son-thuy")
	return e
}

func postCAP(t *testing.T, e *env, name string) (api.CAPResponse, error) {
	t.Helper()
	f, err := os.Open("../cap/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return e.client.PostCAP(context.Background(), f)
}

// TestCAPAlertUpdateCancel follows one flash flood through Alert, Update
// and Cancel: one emergency at a time, replaced, then stopped.
func TestCAPAlertUpdateCancel(t *testing.T) {
	e := capEnv(t)
	ctx := context.Background()
	res, err := postCAP(t, e, "valid/flashflood-alert.xml")
	if err != nil {
		t.Fatal(err)
	}
	if res.Emergency == nil || res.Emergency.Tone != "flood" || res.Emergency.Source != "cap:nchmf.gov.vn,NCHMF-LQ-20260914-0630" ||
		len(res.Emergency.Devices) != 1 || res.Emergency.Media == "" {
		t.Fatalf("alert: %+v", res)
	}
	first := res.Emergency.ID
	if again, err := postCAP(t, e, "valid/flashflood-alert.xml"); err != nil || again.Emergency == nil || again.Emergency.ID != first {
		t.Fatalf("the same alert twice: %+v, %v", again, err)
	}
	res, err = postCAP(t, e, "valid/flashflood-update.xml")
	if err != nil || res.Emergency == nil || len(res.Cancelled) != 1 || res.Cancelled[0] != first {
		t.Fatalf("update: %+v, %v", res, err)
	}
	active, _ := e.client.Emergencies(ctx)
	if len(active) != 1 || active[0].ID != res.Emergency.ID {
		t.Fatalf("after the update: %+v", active)
	}
	res, err = postCAP(t, e, "valid/flashflood-cancel.xml")
	if err != nil || len(res.Cancelled) != 1 {
		t.Fatalf("cancel: %+v, %v", res, err)
	}
	if active, _ := e.client.Emergencies(ctx); len(active) != 0 {
		t.Fatalf("after the cancel: %+v", active)
	}
	audit, _ := e.client.Audit(ctx, "", "")
	caps := 0
	for _, a := range audit {
		if a.Action == "cap" {
			caps++
		}
	}
	if caps < 3 {
		t.Fatalf("audit has %d CAP entries: %+v", caps, audit)
	}
}

func TestCAPRefusesAndIgnores(t *testing.T) {
	e := capEnv(t)
	for _, tc := range []struct {
		file   string
		status int
		text   string
	}{
		{"invalid/not-xml.txt", http.StatusBadRequest, "not a valid CAP"},
		{"invalid/wrong-namespace.xml", http.StatusBadRequest, "namespace"},
		{"invalid/doctype.xml", http.StatusBadRequest, "DOCTYPE"},
		{"valid/landslide-expired.xml", http.StatusUnprocessableEntity, "expired"},
		{"valid/unmapped-area.xml", http.StatusUnprocessableEntity, "cap.areas"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := postCAP(t, e, tc.file)
			ae := apiError(t, err, tc.status)
			if !strings.Contains(ae.Message, tc.text) {
				t.Fatalf("message %q does not mention %q", ae.Message, tc.text)
			}
		})
	}
	if res, err := postCAP(t, e, "valid/heavy-rain-moderate.xml"); err != nil || res.Decision.Action != capxml.Ignore || res.Emergency != nil {
		t.Fatalf("below the thresholds: %+v, %v", res, err)
	}
	if active, _ := e.client.Emergencies(context.Background()); len(active) != 0 {
		t.Fatalf("refused alerts started emergencies: %+v", active)
	}
}
