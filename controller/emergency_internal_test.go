package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/store"
)

// openWithBoxes starts a controller on loopback whose database already holds
// n boxes (box-00000 on, in ten groups), and waits for its first replan.
func openWithBoxes(tb testing.TB, n int) (*Controller, *api.Client) {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "loa.db"))
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		d := store.Device{ID: fmt.Sprintf("box-%05d", i), Groups: []string{fmt.Sprintf("g-%02d", i%10)}, Volume: 70, CreatedAt: time.Now()}
		if err := st.AddDevice(ctx, d, "h"); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	cfg := Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT = "xa-an-binh", dir, "127.0.0.1:0", "127.0.0.1:0"
	c, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	waitReplan(tb, c, 0)
	return c, api.NewClient("http://"+c.HTTPAddr(), c.AdminToken())
}

// waitReplan waits until the broadcaster has finished more than after
// replans, and returns how many it has.
func waitReplan(tb testing.TB, c *Controller, after int64) int64 {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n := c.bc.Metrics()["replans"]; n > after {
			return n
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no replan after the %dth within 30 s", after)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestEmergencyReportRightAway: the report of an emergency shows every box
// it targets as pending as soon as POST /v1/emergencies has answered,
// whether the replan that publishes it has run yet or not, and the same
// rows after that replan.
func TestEmergencyReportRightAway(t *testing.T) {
	const boxes = 300
	c, client := openWithBoxes(t, boxes)
	ctx := context.Background()
	replans := c.bc.Metrics()["replans"]
	a, err := client.StartEmergency(ctx, api.AnnounceRequest{Targets: store.Targets{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Devices) != boxes || a.Deliveries != nil {
		t.Fatalf("the answer names %d boxes and carries %d report rows; want %d and none", len(a.Devices), len(a.Deliveries), boxes)
	}
	check := func(when string) {
		t.Helper()
		got, err := client.Announcement(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Deliveries) != boxes {
			t.Fatalf("%s: GET %s lists %d deliveries, want %d", when, a.ID, len(got.Deliveries), boxes)
		}
		for i, d := range got.Deliveries {
			if d.Status != store.StatusPending || d.Device != fmt.Sprintf("box-%05d", i) || d.Item != a.ID+"-"+fmt.Sprint(a.Start.Unix()) {
				t.Fatalf("%s: delivery %+v", when, d)
			}
		}
		rep, err := client.Report(ctx, "", "")
		if err != nil || len(rep) != boxes {
			t.Fatalf("%s: loa report has %d rows, %v; want %d", when, len(rep), err, boxes)
		}
	}
	check("right after POST")
	waitReplan(t, c, replans)
	check("after the replan")
}

// BenchmarkEmergency1000Boxes is `loa emergency --all` at 1,000 boxes
// through the whole controller: POST /v1/emergencies (the API and the store)
// and the replan it asks for (the plan published on the embedded broker, no
// box listening, and the report rows). cpu-ms/op is the process's CPU time
// (user and system) per emergency, the HTTP client included; allocs count
// every goroutine's; publish-ms is from the request to the plan's
// publication (`loa bench`'s "request → publish").
//
// Every round adds an emergency to plan/all and 1,000 report rows, so
// compare runs with the same -benchtime=Nx.
func BenchmarkEmergency1000Boxes(b *testing.B) {
	c, client := openWithBoxes(b, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	var publish time.Duration
	for b.Loop() {
		replans := c.bc.Metrics()["replans"]
		sent := time.Now()
		a, err := client.StartEmergency(ctx, api.AnnounceRequest{Targets: store.Targets{All: true}})
		if err != nil || len(a.Devices) != 1000 {
			b.Fatalf("emergency to %d boxes, %v", len(a.Devices), err)
		}
		waitReplan(b, c, replans)
		m := c.bc.Metrics()
		if m["last_replan_published"] == 0 {
			b.Fatal("the replan published nothing")
		}
		publish += time.UnixMicro(m["last_publish_unix_us"]).Sub(sent)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(publish)/float64(b.N)/1e6, "publish-ms")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
