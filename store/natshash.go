package store

import (
	"context"
	"fmt"
)

// SetNATSHash stores the bcrypt hash of a device's token for an external
// NATS cluster (see package brokerconf), replacing any earlier one.
// ErrNotFound if the device does not exist.
func (s *Store) SetNATSHash(ctx context.Context, id, hash string) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO nats_hashes(device_id, hash) SELECT id, ? FROM devices WHERE id = ?
		ON CONFLICT(device_id) DO UPDATE SET hash = excluded.hash`, hash, id)
	if err != nil {
		return fmt.Errorf("store NATS hash of %s: %w", id, err)
	}
	return mustAffect(res, "device "+id)
}

// NATSHashes returns the NATS hash of every device that has one, by id.
func (s *Store) NATSHashes(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT device_id, hash FROM nats_hashes`)
	if err != nil {
		return nil, fmt.Errorf("read NATS hashes: %w", err)
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
