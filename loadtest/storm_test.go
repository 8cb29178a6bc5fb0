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
	"github.com/loa-commune/loa/device"
)

// TestStormSpreadsReconnects restarts a real controller (and so its
// embedded broker) under 50 connected boxes: they come back spread over
// their reconnect window, not in one second, and none loses its plan or
// misses the emergency that follows.
func TestStormSpreadsReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a reconnect window")
	}
	ctx := context.Background()
	cfg := controller.Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT, cfg.AllClearText = "lt", filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", "127.0.0.1:0", ""
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctrl, err := controller.Open(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// mochi v2.7.9 can deadlock in Close while clients leave
	// (mochi-mqtt/server#488); the controller gives up on it at the
	// deadline, once the listener is closed.
	closeCtrl := func() error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return ctrl.Close(ctx)
	}
	defer func() { closeCtrl() }()
	// The restarted controller listens where the first one did.
	cfg.HTTP, cfg.MQTT = ctrl.HTTPAddr(), ctrl.BrokerAddr()
	restarts := 0
	restart := func(ctx context.Context) error {
		restarts++
		if err := closeCtrl(); err != nil {
			t.Logf("close the controller: %v", err)
		}
		c, err := controller.Open(ctx, cfg, quiet)
		if err != nil {
			return err
		}
		ctrl = c
		return nil
	}

	const boxes = 50
	spread := 8 * time.Second
	c := api.NewClient("http://"+ctrl.HTTPAddr(), ctrl.AdminToken())
	res, err := Storm(ctx, c, StormOptions{Boxes: boxes, Groups: 3, Site: "lt", Broker: "tcp://" + ctrl.BrokerAddr(),
		Reconnect: device.ReconnectPolicy{Spread: spread, Cap: spread}, Timeout: time.Minute, Restart: restart}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("storm: per second %v, peak %d, all back %v, p50 %v, attempts %d", res.PerSecond, res.PeakPerSecond, res.AllBack, res.P50, res.Attempts)
	if restarts != 1 {
		t.Fatalf("%d restarts", restarts)
	}
	if res.NotBack != 0 || len(res.Delays) != boxes || res.LostPlan != 0 || res.Missed != 0 {
		t.Fatalf("not back %d, delays %d, lost plan %d, missed %d: %+v", res.NotBack, len(res.Delays), res.LostPlan, res.Missed, res)
	}
	// Uniform over 8 s, one second holds about 6 of the 50; more than 20
	// would be a storm (with the old 0–2 s jitter it is about 25).
	if res.PeakPerSecond > boxes*2/5 {
		t.Fatalf("%d of %d boxes reconnected in one second: %v", res.PeakPerSecond, boxes, res.PerSecond)
	}
	if busy := countNonZero(res.PerSecond); busy < 4 {
		t.Fatalf("reconnects fell in only %d seconds: %v", busy, res.PerSecond)
	}
	if res.Attempts < boxes {
		t.Fatalf("%d reconnect attempts for %d boxes", res.Attempts, boxes)
	}
}

func countNonZero(xs []int) int {
	n := 0
	for _, x := range xs {
		if x > 0 {
			n++
		}
	}
	return n
}
