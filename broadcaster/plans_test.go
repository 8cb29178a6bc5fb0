package broadcaster_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// TestReplanLeavesOneOffRowsToTheStore: an emergency's pending report rows
// are written once, by store.AddRule after the rule (1,000 at 1,000 boxes);
// the replan that publishes it writes none of them again, while it still
// records the rows of a schedule's items. Only the first replan after a
// start writes a one-off rule's rows, for a controller that died between
// the rule and its rows.
func TestReplanLeavesOneOffRowsToTheStore(t *testing.T) {
	ctx := context.Background()
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "loa.db")
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	const boxes = 1000
	for i := range boxes {
		d := store.Device{ID: fmt.Sprintf("box-%05d", i), Groups: []string{fmt.Sprintf("g-%02d", i%10)}, Volume: 70, CreatedAt: now}
		if err := st.AddDevice(ctx, d, "h"); err != nil {
			t.Fatal(err)
		}
	}
	m := store.Media{SHA256: strings.Repeat("cd", 32), Name: "bulletin", Codec: "mp3", Size: 1 << 20, Duration: time.Minute, CreatedAt: now}
	if _, err := st.AddMedia(ctx, m); err != nil {
		t.Fatal(err)
	}
	// Take a rule's rows away behind the store's back: whatever the replan
	// writes for it then shows.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dropRows := func(rule string) {
		t.Helper()
		res, err := db.ExecContext(ctx, `DELETE FROM deliveries WHERE announcement = ?`, rule)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != boxes {
			t.Fatalf("AddRule recorded %d pending rows for %s, want %d", n, rule, boxes)
		}
	}
	rows := func(rule string) int {
		t.Helper()
		d, err := st.Deliveries(ctx, rule)
		if err != nil {
			t.Fatal(err)
		}
		return len(d)
	}
	emergency := func(id string) store.Rule {
		return store.Rule{ID: id, Kind: store.KindOnce, Start: now.UTC(), Targets: store.Targets{All: true}, Priority: protocol.Emergency,
			Repeat: 3, Validity: time.Hour, Tone: protocol.ToneSiren, CreatedAt: now}
	}
	// The controller died between this emergency and its rows.
	if err := st.AddRule(ctx, emergency("e-0")); err != nil {
		t.Fatal(err)
	}
	dropRows("e-0")

	svc := broadcaster.New(broadcaster.Options{
		Site: site, Location: loc, Horizon: 48 * time.Hour, MQTTListen: "127.0.0.1:0",
		MediaURL: "http://127.0.0.1:8080", HeartbeatSec: 60, EmergencyVolume: 100,
		Now: func() time.Time { return now },
	}, st, slog.New(slog.NewTextHandler(testLogOut(), nil)))
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	eventually(t, "the first replan", func() bool { return svc.Metrics()["replans"] > 0 })
	if n := rows("e-0"); n != boxes {
		t.Fatalf("the first replan after the start recorded %d pending rows of the emergency, want %d", n, boxes)
	}

	for _, r := range []store.Rule{
		emergency("e-1"),
		// 17:30 today and tomorrow, on the 100 boxes of g-03.
		{ID: "s-1", Kind: store.KindCron, Cron: "30 17 * * *", Targets: store.Targets{Groups: []string{"g-03"}}, Media: m.SHA256,
			Priority: protocol.Normal, Repeat: 1, Validity: 10 * time.Minute, CreatedAt: now.Add(-time.Minute)},
	} {
		if err := st.AddRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	dropRows("e-1")

	replans := svc.Metrics()["replans"]
	svc.Replan()
	eventually(t, "the replan", func() bool { return svc.Metrics()["replans"] > replans })
	if got := svc.Metrics()["last_replan_published"]; got != 2 {
		t.Fatalf("the replan published %d plans, want 2 (all, group/g-03)", got)
	}
	if n := rows("s-1"); n != 2*boxes/10 {
		t.Fatalf("the replan recorded %d pending rows for the schedule, want %d", n, 2*boxes/10)
	}
	if n := rows("e-1"); n != 0 {
		t.Fatalf("the replan wrote %d pending rows of the emergency again", n)
	}
}
