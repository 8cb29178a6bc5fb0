package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// DeviceState is one heartbeat as the controller received it.
type DeviceState struct {
	Device   string
	State    protocol.State
	Received time.Time
}

// A box's will (offline) says nothing of its version, architecture, update
// or problems: what it said last is kept.
const upsertState = `INSERT INTO device_state(device_id, online, state, playing, volume, version, uptime_sec, cache_bytes, clock_offset_ms, error, problems, arch, update_status, time_source, last_seen)
	SELECT id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM devices WHERE id = ?
	ON CONFLICT(device_id) DO UPDATE SET online=excluded.online, state=excluded.state, playing=excluded.playing,
		volume=excluded.volume, uptime_sec=excluded.uptime_sec,
		cache_bytes=excluded.cache_bytes, clock_offset_ms=excluded.clock_offset_ms, error=excluded.error,
		version=CASE WHEN excluded.online THEN excluded.version ELSE device_state.version END,
		problems=CASE WHEN excluded.online THEN excluded.problems ELSE device_state.problems END,
		arch=CASE WHEN excluded.online THEN excluded.arch ELSE device_state.arch END,
		update_status=CASE WHEN excluded.online THEN excluded.update_status ELSE device_state.update_status END,
		time_source=CASE WHEN excluded.online THEN excluded.time_source ELSE device_state.time_source END,
		last_seen=excluded.last_seen`

// RecordState stores the last state a device reported.
func (s *Store) RecordState(ctx context.Context, id string, st protocol.State, seen time.Time) error {
	unknown, err := s.RecordStates(ctx, []DeviceState{{Device: id, State: st, Received: seen}})
	if err == nil && unknown > 0 {
		return fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	return err
}

// RecordStates stores many heartbeats in one transaction (thousands of
// boxes report every minute; one transaction each would be one disk sync
// each). States of unknown devices are counted and skipped.
func (s *Store) RecordStates(ctx context.Context, states []DeviceState) (unknown int, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, upsertState)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, ds := range states {
			st := ds.State
			problems, err := encodeProblems(st.Problems)
			if err != nil {
				return fmt.Errorf("record state of %s: %w", ds.Device, err)
			}
			update, err := encodeJSON(st.Update)
			if err != nil {
				return fmt.Errorf("record state of %s: %w", ds.Device, err)
			}
			res, err := stmt.ExecContext(ctx, st.Online, st.State, st.Playing, st.Volume, st.Version, st.UptimeSec,
				st.CacheBytes, st.ClockOffsetMS, st.Error, problems, st.Arch, update, st.TimeSource, ms(ds.Received), ds.Device)
			if err != nil {
				return fmt.Errorf("record state of %s: %w", ds.Device, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				unknown++
			}
		}
		return nil
	})
	return unknown, err
}

// encodeProblems is the problems column: JSON, or empty for none.
func encodeProblems(ps []protocol.Problem) (string, error) {
	if len(ps) == 0 {
		return "", nil
	}
	b, err := json.Marshal(ps)
	return string(b), err
}

// encodeJSON is a column of JSON, empty for nil.
func encodeJSON[T any](v *T) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// decodeUpdate reads the update_status column; nil if empty or unreadable.
func decodeUpdate(s string) *protocol.UpdateStatus {
	var u protocol.UpdateStatus
	if s == "" || json.Unmarshal([]byte(s), &u) != nil {
		return nil
	}
	return &u
}

// decodeProblems reads the problems column; what does not decode is shown
// as one problem saying so rather than hiding the box's state.
func decodeProblems(s string) []protocol.Problem {
	if s == "" {
		return nil
	}
	var ps []protocol.Problem
	if err := json.Unmarshal([]byte(s), &ps); err != nil {
		return []protocol.Problem{{Code: "unreadable", Level: protocol.LevelWarning, Detail: err.Error()}}
	}
	return ps
}
