package broadcaster_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/store"
)

// scaleSite fills a store like a province-sized controller: boxes spread
// over groups, and cron schedules spread over the groups.
func scaleSite(tb testing.TB, boxes, groups, schedules int) (*store.Store, store.Media, time.Time) {
	tb.Helper()
	ctx := context.Background()
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	st, err := store.Open(ctx, filepath.Join(tb.TempDir(), "loa.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	for i := range boxes {
		d := store.Device{ID: fmt.Sprintf("box-%05d", i), Groups: []string{fmt.Sprintf("g-%03d", i%groups)}, Volume: 70, CreatedAt: now}
		if err := st.AddDevice(ctx, d, "x"); err != nil {
			tb.Fatal(err)
		}
	}
	m := store.Media{SHA256: strings.Repeat("cd", 32), Name: "bulletin", Codec: "mp3", Size: 1 << 20, Duration: time.Minute, CreatedAt: now}
	if _, err := st.AddMedia(ctx, m); err != nil {
		tb.Fatal(err)
	}
	for i := range schedules {
		r := store.Rule{ID: fmt.Sprintf("s-%05d", i), Kind: store.KindCron, Cron: fmt.Sprintf("%d %d * * *", i%60, 5+i%14),
			Targets: store.Targets{Groups: []string{fmt.Sprintf("g-%03d", i%groups)}}, Media: m.SHA256, Priority: 1, Repeat: 1,
			Validity: 10 * time.Minute, Status: "live", Source: "cli", CreatedAt: now.Add(-time.Hour)}
		if err := st.AddRule(ctx, r); err != nil {
			tb.Fatal(err)
		}
	}
	return st, m, now
}

// BenchmarkReplanAtScale measures, at 10,000 boxes in 500 groups with
// 2,000 schedules: the first publication of every config and plan (Open),
// the recomputation and publication after one schedule changes (only that
// group's plan changes), and a republication of everything (as after a key
// rotation).
func BenchmarkReplanAtScale(b *testing.B) {
	st, m, now := scaleSite(b, 10000, 500, 2000)
	ctx := context.Background()
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	svc := broadcaster.New(broadcaster.Options{
		Site: site, Location: loc, Horizon: 48 * time.Hour, MQTTListen: "127.0.0.1:0",
		MediaURL: "http://127.0.0.1:8080", HeartbeatSec: 60, EmergencyVolume: 100,
		Now: func() time.Time { return now },
	}, st, slog.New(slog.NewTextHandler(testLogOut(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	t0 := time.Now()
	if err := svc.Open(ctx); err != nil {
		b.Fatal(err)
	}
	openMS := time.Since(t0).Milliseconds()
	defer svc.Close(ctx)
	atOpen := svc.Metrics()["plans_published"]

	var changeNS, changed, recomputed, targets int64
	i := 0
	for b.Loop() {
		r := store.Rule{ID: fmt.Sprintf("new-%05d", i), Kind: store.KindCron, Cron: "30 17 * * *",
			Targets: store.Targets{Groups: []string{fmt.Sprintf("g-%03d", i%500)}}, Media: m.SHA256, Priority: 1, Repeat: 1,
			Validity: 10 * time.Minute, Status: "live", Source: "cli", CreatedAt: now.Add(-time.Minute)}
		if err := st.AddRule(ctx, r); err != nil {
			b.Fatal(err)
		}
		i++
		replanned := svc.Metrics()["replans"]
		svc.Replan()
		for svc.Metrics()["replans"] == replanned {
			time.Sleep(time.Millisecond)
		}
		m := svc.Metrics()
		changeNS += m["last_replan_ns"]
		changed += m["last_replan_published"]
		recomputed += m["last_replan_recomputed"]
		targets = m["last_replan_targets"]
	}
	b.ReportMetric(float64(changeNS)/float64(b.N)/1e6, "change-replan-ms")
	b.ReportMetric(float64(changed)/float64(b.N), "plans-republished/change")
	b.ReportMetric(float64(recomputed)/float64(b.N), "targets-recomputed/change")
	b.ReportMetric(float64(targets), "targets")

	b.ReportMetric(float64(openMS), "open-ms")
	b.ReportMetric(float64(atOpen), "plans-at-open")

	// Everything again, as after a key rotation: every config, then every
	// plan from the planning loop.
	t0 = time.Now()
	replanned := svc.Metrics()["replans"]
	if err := svc.RepublishAll(ctx); err != nil {
		b.Fatal(err)
	}
	for svc.Metrics()["replans"] == replanned {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "republish-all-ms")
}

// TestReplanIsIncremental: a new schedule for one group recomputes and
// republishes that group's plan only, and the boxes of that group get it.
func TestReplanIsIncremental(t *testing.T) {
	st, m, now := scaleSite(t, 200, 10, 40)
	ctx := context.Background()
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	svc := broadcaster.New(broadcaster.Options{
		Site: site, Location: loc, Horizon: 48 * time.Hour, MQTTListen: "127.0.0.1:0",
		MediaURL: "http://127.0.0.1:8080", HeartbeatSec: 60, Now: func() time.Time { return now },
	}, st, slog.New(slog.NewTextHandler(testLogOut(), nil)))
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	open := svc.Metrics()
	if open["last_replan_targets"] != 1+10+200 || open["plans_published"] != 1+10+200 {
		t.Fatalf("at open: %d targets, %d plans published; want 211 each", open["last_replan_targets"], open["plans_published"])
	}

	replan := func() map[string]int64 {
		t.Helper()
		before := svc.Metrics()["replans"]
		svc.Replan()
		deadline := time.Now().Add(10 * time.Second)
		for svc.Metrics()["replans"] == before {
			if time.Now().After(deadline) {
				t.Fatal("no replan within 10 s")
			}
			time.Sleep(time.Millisecond)
		}
		return svc.Metrics()
	}
	if got := replan(); got["last_replan_recomputed"] != 0 || got["last_replan_published"] != 0 {
		t.Fatalf("nothing changed, yet %d targets were recomputed and %d published", got["last_replan_recomputed"], got["last_replan_published"])
	}
	r := store.Rule{ID: "new-evening", Kind: store.KindCron, Cron: "30 17 * * *", Targets: store.Targets{Groups: []string{"g-003"}},
		Media: m.SHA256, Priority: 1, Repeat: 1, Validity: 10 * time.Minute, Status: "live", Source: "cli", CreatedAt: now.Add(-time.Minute)}
	if err := st.AddRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	got := replan()
	if got["last_replan_recomputed"] != 1 || got["last_replan_published"] != 1 || got["plans_published"] != open["plans_published"]+1 {
		t.Fatalf("after one new schedule: %d targets recomputed, %d published (%d in all); want 1, 1", got["last_replan_recomputed"], got["last_replan_published"], got["plans_published"])
	}
	// The report waits for the group's 20 boxes, twice (today and
	// tomorrow), and for no one else.
	rep, err := st.Report(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	boxes := map[string]bool{}
	n := 0
	for _, d := range rep {
		if d.Announcement == "new-evening" {
			n++
			boxes[d.Device] = true
		}
	}
	if n != 40 || len(boxes) != 20 {
		t.Fatalf("pending rows for the new schedule: %d over %d boxes; want 40 over 20", n, len(boxes))
	}
}
