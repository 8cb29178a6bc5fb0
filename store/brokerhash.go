package store

import (
	"context"
	"fmt"
)

// SetBrokerHash stores the external broker's password hash of a device's
// token (see package brokerconf), replacing any earlier one. ErrNotFound if
// the device does not exist.
func (s *Store) SetBrokerHash(ctx context.Context, id, hash string) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO broker_hashes(device_id, hash) SELECT id, ? FROM devices WHERE id = ?
		ON CONFLICT(device_id) DO UPDATE SET hash = excluded.hash`, hash, id)
	if err != nil {
		return fmt.Errorf("store broker hash of %s: %w", id, err)
	}
	return mustAffect(res, "device "+id)
}

// BrokerHashes returns the broker hash of every device that has one, by id.
func (s *Store) BrokerHashes(ctx context.Context) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT device_id, hash FROM broker_hashes`)
	if err != nil {
		return nil, fmt.Errorf("read broker hashes: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, h string
		if err := rows.Scan(&id, &h); err != nil {
			return nil, err
		}
		out[id] = h
	}
	return out, rows.Err()
}
