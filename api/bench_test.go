package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/loa-commune/loa/api"
)

// BenchmarkStartEmergency is `loa emergency --all` at 1,000 boxes as the API
// serves it: POST /v1/emergencies, the rule and its pending report rows
// stored, the answer written and read back as the CLI reads it. The
// broadcaster is a fake, so the replan is not counted (see the controller's
// BenchmarkEmergency1000Boxes for the whole path). resp-bytes is the size of
// the answer.
//
// Every round adds an emergency and its 1,000 rows, so compare runs with the
// same -benchtime=Nx.
func BenchmarkStartEmergency(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	const boxes = 1000
	e.addBoxes(b, boxes)
	body := `{"targets":{"all":true},"tone":"siren"}`
	var size int
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/v1/emergencies", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			b.Fatalf("POST /v1/emergencies: %s %s, %v", resp.Status, raw, err)
		}
		var a api.Announcement
		if err := json.Unmarshal(raw, &a); err != nil || len(a.Devices) != boxes {
			b.Fatalf("answer with %d boxes, %v", len(a.Devices), err)
		}
		size = len(raw)
	}
	b.ReportMetric(float64(size), "resp-bytes")
}
