package store

import (
	"context"
	"fmt"
	"time"
)

// Audit actions.
const (
	AuditEmergencyStart  = "emergency.start"
	AuditEmergencyCancel = "emergency.cancel"
	AuditTrigger         = "trigger"
	AuditCAP             = "cap"
	// AuditRejected: a box refused a message as not from the controller
	// (forged, replayed or for another box): someone is attacking.
	AuditRejected = "box.rejected"
)

// AuditEntry is one line of the audit log: who did what to which rule, when.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Rule    string    `json:"rule"`
	Targets string    `json:"targets"`
	Details string    `json:"details"`
}

// AddAudit appends an entry.
func (s *Store) AddAudit(ctx context.Context, e AuditEntry) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO audit(at, actor, action, rule, targets, details) VALUES(?,?,?,?,?,?)`,
		ms(e.At), e.Actor, e.Action, e.Rule, e.Targets, e.Details)
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// Audit lists entries in [since, until) (zero bounds are open), oldest first.
func (s *Store) Audit(ctx context.Context, since, until time.Time) ([]AuditEntry, error) {
	hi := int64(1<<62 - 1)
	if !until.IsZero() {
		hi = ms(until)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, at, actor, action, rule, targets, details FROM audit WHERE at >= ? AND at < ? ORDER BY at, id`, ms(since), hi)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Rule, &e.Targets, &e.Details); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
