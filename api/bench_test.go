package api_test

import (
	"encoding/json"
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
	const boxes = 1000
	e.addBoxes(b, boxes)
	body := `{"targets":{"all":true},"tone":"siren"}`
	var size int
	b.ReportAllocs()
	for b.Loop() {
		raw := e.postCreated(b, "/v1/emergencies", body)
		var a api.Announcement
		if err := json.Unmarshal(raw, &a); err != nil || len(a.Devices) != boxes {
			b.Fatalf("answer with %d boxes, %v", len(a.Devices), err)
		}
		size = len(raw)
	}
	b.ReportMetric(float64(size), "resp-bytes")
}
