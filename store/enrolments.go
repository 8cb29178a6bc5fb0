package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Enrolment is a one-time code for a box to fetch its configuration.
type Enrolment struct {
	ID        int64     `json:"id"`
	Device    string    `json:"device"`
	MACKey    []byte    `json:"-"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
	UsedFrom  string    `json:"used_from,omitempty"`
}

// Audit actions of enrolment.
const (
	AuditEnrolCreate = "enrol.create"
	AuditEnrolUse    = "enrol.use"
	AuditEnrolRefuse = "enrol.refuse"
)

// AddEnrolment stores a new code for e.Device. ErrNotFound if there is no
// such device.
func (s *Store) AddEnrolment(ctx context.Context, e Enrolment) (Enrolment, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO enrolments(device_id, mac_key, created_by, created_at, expires_at)
		SELECT id, ?, ?, ?, ? FROM devices WHERE id = ?`, e.MACKey, e.CreatedBy, ms(e.CreatedAt), ms(e.ExpiresAt), e.Device)
	if err != nil {
		return e, fmt.Errorf("store enrolment of %s: %w", e.Device, err)
	}
	if err := mustAffect(res, "device "+e.Device); err != nil {
		return e, err
	}
	e.ID, err = res.LastInsertId()
	return e, err
}

// RecentEnrolments are the codes made since since, used or not: a request
// is matched against each (there are a few per box at most).
func (s *Store) RecentEnrolments(ctx context.Context, since time.Time) ([]Enrolment, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, device_id, mac_key, created_by, created_at, expires_at, used_at, used_from
		FROM enrolments WHERE created_at >= ? ORDER BY id`, ms(since))
	if err != nil {
		return nil, fmt.Errorf("read enrolments: %w", err)
	}
	defer rows.Close()
	var out []Enrolment
	for rows.Next() {
		var e Enrolment
		var created, expires, used int64
		if err := rows.Scan(&e.ID, &e.Device, &e.MACKey, &e.CreatedBy, &created, &expires, &used, &e.UsedFrom); err != nil {
			return nil, err
		}
		e.CreatedAt, e.ExpiresAt = fromMS(created), fromMS(expires)
		if used != 0 {
			e.UsedAt = fromMS(used)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// UseEnrolment spends the code id at at, from the address from, and gives
// its box the token whose hashes are given (the API's and the broker's):
// the box learns its token only now. ErrInUse if the code was spent
// meanwhile; an external NATS cluster's hash of the old token is dropped.
func (s *Store) UseEnrolment(ctx context.Context, id int64, at time.Time, from, tokenHash, brokerHash string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var device string
		err := tx.QueryRowContext(ctx, `UPDATE enrolments SET used_at = ?, used_from = ? WHERE id = ? AND used_at = 0 RETURNING device_id`,
			ms(at), from, id).Scan(&device)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("enrolment %d already used: %w", id, ErrInUse)
		}
		if err != nil {
			return fmt.Errorf("spend enrolment %d: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET token_hash = ? WHERE id = ?`, tokenHash, device); err != nil {
			return fmt.Errorf("new token for %s: %w", device, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO broker_hashes(device_id, hash) VALUES(?, ?)
			ON CONFLICT(device_id) DO UPDATE SET hash = excluded.hash`, device, brokerHash); err != nil {
			return fmt.Errorf("new broker hash for %s: %w", device, err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM nats_hashes WHERE device_id = ?`, device)
		return err
	})
}
