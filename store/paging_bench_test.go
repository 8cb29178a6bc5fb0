package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// Issue 6: a commune of 10,000 boxes in 500 groups of 20, and 10 items sent
// to every box (100,000 report rows). Figures go to docs/benchmarks.md.
const (
	benchBoxes  = 10000
	benchGroups = 500
	benchItems  = 10
)

func benchBox(i int) string   { return fmt.Sprintf("box-%05d", i) }
func benchGroup(i int) string { return fmt.Sprintf("thon-%03d", i%benchGroups) }

// benchCommune fills a store in one transaction: boxes 90% idle, 5%
// playing, 1% in error, 4% never heard from; deliveries 90% played, 5%
// missed, 1% failed, 4% pending.
func benchCommune(b testing.TB, withDeliveries bool) *Store {
	b.Helper()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "loa.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	now := t0
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for i := range benchBoxes {
			id := benchBox(i)
			if _, err := tx.ExecContext(ctx, `INSERT INTO devices(id, name, token_hash, volume, created_at) VALUES(?,?,?,?,?)`, id, "Loa "+id, "h", 80, ms(now)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO group_members(group_name, device_id) VALUES(?,?)`, benchGroup(i), id); err != nil {
				return err
			}
			state, playing := "idle", ""
			switch i % 100 {
			case 0, 1, 2, 3:
				continue // never heard from
			case 4:
				state = "error"
			case 5, 6, 7, 8, 9:
				state, playing = "playing", "s-1-1"
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO device_state(device_id, online, state, playing, volume, last_seen) VALUES(?,1,?,?,80,?)`,
				id, state, playing, ms(now)); err != nil {
				return err
			}
		}
		if !withDeliveries {
			return nil
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO deliveries(item, device_id, announcement, status, scheduled_at, updated_at) VALUES(?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for it := range benchItems {
			rule := fmt.Sprintf("s-%d", it)
			at := t0.Add(time.Duration(it) * time.Hour)
			for i := range benchBoxes {
				status := "played"
				switch (i + it) % 100 {
				case 0, 1, 2, 3:
					status = "pending"
				case 4:
					status = "failed"
				case 5, 6, 7, 8, 9:
					status = "missed"
				}
				if _, err := ins.ExecContext(ctx, item(rule, at), benchBox(i), rule, status, ms(at), ms(now)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// As a controller that has run a while: the WAL folded into the file.
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkStatusPage(b *testing.B) {
	s := benchCommune(b, false)
	ctx := context.Background()
	stale := t0.Add(-time.Minute)
	for _, bc := range []struct {
		name string
		q    StatusQuery
	}{
		{"first50", StatusQuery{Limit: 50}},
		{"middle50", StatusQuery{Limit: 50, After: benchBox(5000)}},
		{"last50", StatusQuery{Limit: 50, After: benchBox(benchBoxes - 30)}},
		{"full500", StatusQuery{Limit: 500, After: benchBox(2000)}},
		{"group", StatusQuery{Limit: 50, Group: benchGroup(250)}},
		{"state-error", StatusQuery{Limit: 50, State: "error", After: benchBox(5000)}},
		{"state-online", StatusQuery{Limit: 50, State: "online", After: benchBox(5000)}},
		{"group-state-offline", StatusQuery{Limit: 50, Group: benchGroup(0), State: "offline"}},
		{"prefix", StatusQuery{Limit: 50, IDPrefix: "box-071"}},
	} {
		bc.q.StaleBefore = stale
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				p, err := s.StatusPage(ctx, bc.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Devices) == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
}

func BenchmarkReportPage(b *testing.B) {
	s := benchCommune(b, true)
	ctx := context.Background()
	first, err := s.ReportPage(ctx, ReportQuery{Limit: 50})
	if err != nil {
		b.Fatal(err)
	}
	mid := reportCursor{ms(t0.Add(5 * time.Hour)), item("s-5", t0.Add(5*time.Hour)), benchBox(5000)}.String()
	for _, bc := range []struct {
		name string
		q    ReportQuery
	}{
		{"first50", ReportQuery{Limit: 50}},
		{"second50", ReportQuery{Limit: 50, After: first.Next}},
		{"middle50", ReportQuery{Limit: 50, After: mid}},
		{"full500", ReportQuery{Limit: 500, After: mid}},
		{"since-until", ReportQuery{Limit: 50, Since: t0.Add(3 * time.Hour), Until: t0.Add(5 * time.Hour)}},
		{"status-failed", ReportQuery{Limit: 50, Status: "failed", After: mid}},
		{"group", ReportQuery{Limit: 50, Group: benchGroup(250)}},
		{"group-status", ReportQuery{Limit: 50, Group: benchGroup(250), Status: "played"}},
		{"announcement", ReportQuery{Limit: 50, Announcement: "s-7"}},
		{"device", ReportQuery{Limit: 50, Device: benchBox(5000)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				p, err := s.ReportPage(ctx, bc.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Rows) == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
}
