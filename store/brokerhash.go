package store

import (
	"context"
	"fmt"
)

// An external broker checks each box's token against its own kind of hash
// (see package brokerconf): mosquitto's in broker_hashes, NATS's bcrypt in
// nats_hashes. Both tables have the same shape.

// SetBrokerHash stores the mosquitto password hash of a device's token,
// replacing any earlier one. ErrNotFound if the device does not exist.
func (s *Store) SetBrokerHash(ctx context.Context, id, hash string) error {
	return s.setHash(ctx, "broker_hashes", "broker", id, hash)
}

// BrokerHashes returns the mosquitto hash of every device that has one, by id.
func (s *Store) BrokerHashes(ctx context.Context) (map[string]string, error) {
	return s.hashes(ctx, "broker_hashes", "broker")
}

// SetNATSHash stores the bcrypt hash of a device's token for an external
// NATS cluster, replacing any earlier one. ErrNotFound if the device does
// not exist.
func (s *Store) SetNATSHash(ctx context.Context, id, hash string) error {
	return s.setHash(ctx, "nats_hashes", "NATS", id, hash)
}

// NATSHashes returns the NATS hash of every device that has one, by id.
func (s *Store) NATSHashes(ctx context.Context) (map[string]string, error) {
	return s.hashes(ctx, "nats_hashes", "NATS")
}

// setHash and hashes serve both tables; table is one of the two names
// above, never user input.
func (s *Store) setHash(ctx context.Context, table, kind, id, hash string) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO `+table+`(device_id, hash) SELECT id, ? FROM devices WHERE id = ?
		ON CONFLICT(device_id) DO UPDATE SET hash = excluded.hash`, hash, id)
	if err != nil {
		return fmt.Errorf("store %s hash of %s: %w", kind, id, err)
	}
	return mustAffect(res, "device "+id)
}

func (s *Store) hashes(ctx context.Context, table, kind string) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT device_id, hash FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("read %s hashes: %w", kind, err)
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
