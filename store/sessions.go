package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Session kinds.
const (
	SessionLive  = "live"  // a live speech: the office microphone, a file, a mixer
	SessionRelay = "relay" // a relayed radio programme (Icecast, HLS)
)

// Session is the record of one live session that went on air.
type Session struct {
	ID        string            `json:"id"` // its item id, the stream's session id
	Rule      string            `json:"rule"`
	Kind      string            `json:"kind"`
	Source    string            `json:"source"`
	StartedBy string            `json:"started_by"`
	Targets   Targets           `json:"targets"`
	Priority  protocol.Priority `json:"priority"`
	StartedAt time.Time         `json:"started_at"`
	EndedAt   time.Time         `json:"ended_at,omitzero"`
	EndReason string            `json:"end_reason,omitempty"`
	Packets   int64             `json:"packets"`
	Bytes     int64             `json:"bytes"`
	Gaps      int64             `json:"gaps"`
	Recording string            `json:"recording,omitempty"` // media id of its recording, while kept
}

const sessionColumns = `id, rule, kind, source, started_by, targets, priority, started_at, ended_at, end_reason, packets, bytes, gaps, recording`

// AddSession records a session going on air.
func (s *Store) AddSession(ctx context.Context, x Session) error {
	targets, err := json.Marshal(x.Targets)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO sessions(`+sessionColumns+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		x.ID, x.Rule, x.Kind, x.Source, x.StartedBy, string(targets), int(x.Priority), ms(x.StartedAt), ms(x.EndedAt),
		x.EndReason, x.Packets, x.Bytes, x.Gaps, nullable(x.Recording))
	if err != nil {
		return fmt.Errorf("add session %s: %w", x.ID, err)
	}
	return nil
}

// SessionEnd is how a session ended.
type SessionEnd struct {
	At      time.Time // when its sound ended on the boxes
	Reason  string
	Packets int64
	Bytes   int64
	Gaps    int64
}

// EndSession records the end of session id and sets its rule's stream end,
// so the next plans tell the boxes where the sound stops.
func (s *Store) EndSession(ctx context.Context, id string, e SessionEnd) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var rule string
		if err := tx.QueryRowContext(ctx, `SELECT rule FROM sessions WHERE id = ?`, id).Scan(&rule); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("session %s: %w", id, ErrNotFound)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET ended_at = ?, end_reason = ?, packets = ?, bytes = ?, gaps = ? WHERE id = ?`,
			ms(e.At), e.Reason, e.Packets, e.Bytes, e.Gaps, id); err != nil {
			return fmt.Errorf("end session %s: %w", id, err)
		}
		// A one-off session's rule ends with it; a relay schedule goes on.
		_, err := tx.ExecContext(ctx, `UPDATE rules SET stream_ends = ? WHERE id = ? AND kind = ?`, ms(e.At), rule, KindOnce)
		return err
	})
}

// SetSessionRecording links a session to the media that holds its recording.
func (s *Store) SetSessionRecording(ctx context.Context, id, media string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET recording = ? WHERE id = ?`, nullable(media), id)
	if err != nil {
		return fmt.Errorf("session %s recording: %w", id, err)
	}
	return mustAffect(res, id)
}

// SessionByID returns one session, or ErrNotFound.
func (s *Store) SessionByID(ctx context.Context, id string) (Session, error) {
	x, err := scanSession(s.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return x, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	return x, err
}

// Sessions lists the sessions that started in [since, until) (zero bounds
// are open), newest first, at most limit (0: MaxPageSize).
func (s *Store) Sessions(ctx context.Context, since, until time.Time, limit int) ([]Session, error) {
	hi := int64(1<<62 - 1)
	if !until.IsZero() {
		hi = ms(until)
	}
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	return s.sessions(ctx, `WHERE started_at >= ? AND started_at < ? ORDER BY started_at DESC, id LIMIT ?`, ms(since), hi, limit)
}

// sessions reads the sessions tail (WHERE and ORDER) selects.
func (s *Store) sessions(ctx context.Context, tail string, args ...any) ([]Session, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	out := []Session{}
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

func scanSession(sc scanner) (Session, error) {
	var x Session
	var targets string
	var prio int
	var started, ended int64
	var rec sql.NullString
	if err := sc.Scan(&x.ID, &x.Rule, &x.Kind, &x.Source, &x.StartedBy, &targets, &prio, &started, &ended,
		&x.EndReason, &x.Packets, &x.Bytes, &x.Gaps, &rec); err != nil {
		return x, err
	}
	if err := json.Unmarshal([]byte(targets), &x.Targets); err != nil {
		return x, fmt.Errorf("session %s: bad targets: %w", x.ID, err)
	}
	x.Priority = protocol.Priority(prio)
	x.StartedAt, x.EndedAt, x.Recording = fromMS(started), fromMS(ended), rec.String
	return x, nil
}

// SessionsOfRule lists the sessions of one rule (a relay schedule has one
// per occurrence), oldest first.
func (s *Store) SessionsOfRule(ctx context.Context, rule string) ([]Session, error) {
	return s.sessions(ctx, `WHERE rule = ? ORDER BY started_at, id`, rule)
}
