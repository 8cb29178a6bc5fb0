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
// and checks that every box got every emergency and answered it.
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
	res, err := Run(ctx, c, Options{Boxes: 20, Groups: 3, Rounds: 3, Emergency: true, Site: "lt",
		Broker: "tcp://" + ctrl.BrokerAddr(), Timeout: 30 * time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if res.Missing != 0 || len(res.Latencies) != 60 || res.P50 <= 0 || res.Max < res.P99 {
		t.Fatalf("result: %+v", res)
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
}
