package loadtest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
)

// TestRunSmall runs the harness at a small scale against a real controller
// and checks that every box got every emergency and answered it, that each
// figure was measured, and that a run cleans up after itself.
func TestRunSmall(t *testing.T) {
	ctx := context.Background()
	cfg := controller.Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT, cfg.AllClearText = "lt", filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", "127.0.0.1:0", ""
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctrl, err := controller.Open(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close(ctx)
	c := api.NewClient("http://"+ctrl.HTTPAddr(), ctrl.AdminToken())
	broker := []string{"tcp://" + ctrl.BrokerAddr()}
	res, err := Run(ctx, c, Options{Boxes: 20, Groups: 3, Rounds: 3, Site: "lt", Brokers: broker, Timeout: 30 * time.Second,
		Schedules: 6, Heartbeats: 2, Changes: true, Floor: &FloorOptions{}, Keep: true, ConnectRate: 100}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// Paced at 100 a second, the 20th box starts connecting 190 ms after
	// the first: connecting cannot take less.
	if res.ConnectTime < 190*time.Millisecond {
		t.Errorf("20 boxes at 100 a second connected in %v", res.ConnectTime)
	}
	if f := res.FanOut; f.Missing != 0 || f.N != 60 || f.P50 <= 0 || f.Max < f.P99 {
		t.Fatalf("fan-out: %+v", f)
	}
	if p := res.ControllerPath; p.N != 3 || p.P50 <= 0 || p.P50 > res.FanOut.Max {
		t.Fatalf("request → publish: %+v", p)
	}
	if res.Floor == nil || res.Floor.N != 60 || res.Floor.Missing != 0 || res.Floor.P50 <= 0 || res.FloorRatio[1] <= 0 {
		t.Fatalf("floor: %+v, ratio %v", res.Floor, res.FloorRatio)
	}
	// 20 boxes over 3 groups: the first group has 7. A schedule for it
	// changes its plan only; one for every group changes the 3 groups'.
	if g := res.OneGroup; g == nil || g.Boxes != 7 || g.Recomputed != 1 || g.Published != 1 || g.AllHave <= 0 {
		t.Fatalf("change to one group: %+v", g)
	}
	if g := res.AllGroups; g == nil || g.Boxes != 20 || g.Recomputed != 3 || g.Published != 3 {
		t.Fatalf("change to all groups: %+v", g)
	}
	if res.BrokerConnections != 21 { // the boxes and the controller
		t.Errorf("broker connections %d, want 21", res.BrokerConnections)
	}
	if res.Heartbeats != 40 || res.HeartbeatsPerSec <= 0 {
		t.Errorf("heartbeats: %d at %.0f/s", res.Heartbeats, res.HeartbeatsPerSec)
	}
	if res.Controller.RSSBytes <= 0 || res.Controller.CPUPercent <= 0 || res.BytesInPerBox <= 0 || res.BytesOutPerBox <= 0 || res.Publish <= 0 {
		t.Errorf("controller %+v, bytes in/out per box %.0f/%.0f, publish %s", res.Controller, res.BytesInPerBox, res.BytesOutPerBox, res.Publish)
	}
	// The boxes' answers reach the report.
	var played int
	deadline := time.Now().Add(10 * time.Second)
	for played < 60 && time.Now().Before(deadline) {
		rows, err := c.Report(ctx, "", "")
		if err != nil {
			t.Fatal(err)
		}
		played = 0
		for _, r := range rows {
			if r.Status == "played" {
				played++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if played != 60 {
		t.Fatalf("%d played rows in the report, want 60", played)
	}

	// Without Keep, the boxes and schedules of a run are removed after it.
	// A floor that cannot be measured (no broker there) leaves the
	// rounds' figures and says why.
	res, err = Run(ctx, c, Options{Boxes: 5, Rounds: 1, Site: "lt", Brokers: broker, Schedules: 2, Timeout: 30 * time.Second,
		Floor: &FloorOptions{Brokers: []string{"tcp://127.0.0.1:1"}}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if res.FanOut.N != 5 || res.Floor != nil || res.FloorError == "" || res.FloorRatio != [2]float64{} {
		t.Fatalf("run whose floor failed: fan-out %+v, floor %+v, error %q, ratio %v", res.FanOut, res.Floor, res.FloorError, res.FloorRatio)
	}
	devices, err := c.Devices(ctx)
	if err != nil || len(devices) != 20 {
		t.Fatalf("%d devices after a run without Keep (%v); want the first run's 20", len(devices), err)
	}
	schedules, err := c.Schedules(ctx)
	if err != nil || len(schedules) != 6+2 {
		t.Fatalf("%d schedules after a run without Keep (%v); want the first run's 8", len(schedules), err)
	}
}
