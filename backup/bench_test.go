package backup_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/loa-commune/loa/backup"
	"github.com/loa-commune/loa/store"
)

// A province-sized controller for the figures in docs/benchmarks.md:
// 10,000 boxes in 500 villages, each with a month of a daily bulletin in
// its report (300,000 rows).
const (
	benchBoxes = 10000
	benchDays  = 30
)

// benchOffice fills a data folder's database with the boxes and their
// history, in one transaction, through SQL (the API would take minutes).
func benchOffice(b *testing.B) (*office, int64) {
	b.Helper()
	o := &office{data: b.TempDir()}
	path := filepath.Join(o.data, backup.DatabaseFile)
	st, err := store.Open(context.Background(), path) // the schema
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	o.st = st
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)
	for i := range benchBoxes {
		id := fmt.Sprintf("box-%05d", i)
		if _, err := tx.Exec(`INSERT INTO devices(id, name, token_hash, volume, created_at) VALUES(?,?,?,?,?)`, id, "Loa "+id, "h", 80, t0.UnixMilli()); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO group_members(group_name, device_id) VALUES(?,?)`, fmt.Sprintf("thon-%03d", i%500), id); err != nil {
			b.Fatal(err)
		}
	}
	ins, err := tx.Prepare(`INSERT INTO deliveries(item, device_id, announcement, status, scheduled_at, updated_at) VALUES(?,?,?,?,?,?)`)
	if err != nil {
		b.Fatal(err)
	}
	for d := range benchDays {
		at := t0.AddDate(0, 0, d)
		for i := range benchBoxes {
			if _, err := ins.Exec(fmt.Sprintf("s-bulletin-%d", at.Unix()), fmt.Sprintf("box-%05d", i), "s-bulletin", "played", at.UnixMilli(), at.UnixMilli()); err != nil {
				b.Fatal(err)
			}
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return o, benchDays * benchBoxes
}

// BenchmarkBackup10000Boxes: one backup of the province's controller.
func BenchmarkBackup10000Boxes(b *testing.B) {
	o, rows := benchOffice(b)
	ctx := context.Background()
	var m backup.Manifest
	for b.Loop() {
		var err error
		if m, err = backup.New(o.data, backup.Options{Dir: filepath.Join(b.TempDir(), "usb")}, o.st, quiet()).Once(ctx, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(m.Database.Size)/(1<<20), "MB-database")
	b.ReportMetric(float64(rows), "report-rows")
}

// BenchmarkRestore10000Boxes: restoring it onto a new PC (check every file,
// copy, open and check the database).
func BenchmarkRestore10000Boxes(b *testing.B) {
	o, _ := benchOffice(b)
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "usb")
	if _, err := backup.New(o.data, backup.Options{Dir: dir}, o.st, quiet()).Once(ctx, true); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sum, err := backup.Restore(ctx, dir, filepath.Join(b.TempDir(), "new-pc"), false)
		if err != nil || sum.Devices != benchBoxes {
			b.Fatalf("restore: %+v, %v", sum, err)
		}
	}
}
