package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Pending is an item the controller expects some boxes to answer for.
type Pending struct {
	Item, Announcement string
	Scheduled          time.Time
	Devices            []string
}

// AddPendingMany records pending deliveries for many items in one
// transaction: a replan at a province's scale adds thousands of rows at
// once, and one transaction per item made it take seconds. Rows that exist
// are left as they are.
func (s *Store) AddPendingMany(ctx context.Context, items []Pending) error {
	if len(items) == 0 {
		return nil
	}
	now := ms(time.Now())
	return s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO deliveries(item, device_id, announcement, status, scheduled_at, updated_at)
			VALUES(?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range items {
			for _, d := range p.Devices {
				if _, err := stmt.ExecContext(ctx, p.Item, d, p.Announcement, StatusPending, ms(p.Scheduled), now); err != nil {
					return fmt.Errorf("record pending %s for %s: %w", p.Item, d, err)
				}
			}
		}
		return nil
	})
}
