package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Media is an uploaded audio file, stored on disk by its SHA-256.
type Media struct {
	SHA256    string        `json:"id"`
	Name      string        `json:"name"`
	Codec     string        `json:"codec"`
	Size      int64         `json:"size"`
	Duration  time.Duration `json:"-"`
	CreatedAt time.Time     `json:"created_at"`
}

// AddMedia records m; adding the same bytes twice keeps the first record and
// reports created=false.
func (s *Store) AddMedia(ctx context.Context, m Media) (created bool, err error) {
	res, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO media(sha256, name, codec, size, duration_ms, created_at) VALUES(?,?,?,?,?,?)`,
		m.SHA256, m.Name, m.Codec, m.Size, m.Duration.Milliseconds(), ms(m.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("add media %s: %w", m.SHA256, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// MediaByID returns one media record, or ErrNotFound.
func (s *Store) MediaByID(ctx context.Context, sha string) (Media, error) {
	var m Media
	var dur, created int64
	err := s.read.QueryRowContext(ctx, `SELECT sha256, name, codec, size, duration_ms, created_at FROM media WHERE sha256 = ?`, sha).
		Scan(&m.SHA256, &m.Name, &m.Codec, &m.Size, &dur, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("media %s: %w", sha, ErrNotFound)
	}
	m.Duration, m.CreatedAt = time.Duration(dur)*time.Millisecond, fromMS(created)
	return m, err
}

// MediaList lists all media, newest first.
func (s *Store) MediaList(ctx context.Context) ([]Media, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT sha256, name, codec, size, duration_ms, created_at FROM media ORDER BY created_at DESC, sha256`)
	if err != nil {
		return nil, fmt.Errorf("list media: %w", err)
	}
	defer rows.Close()
	out := []Media{}
	for rows.Next() {
		var m Media
		var dur, created int64
		if err := rows.Scan(&m.SHA256, &m.Name, &m.Codec, &m.Size, &dur, &created); err != nil {
			return nil, err
		}
		m.Duration, m.CreatedAt = time.Duration(dur)*time.Millisecond, fromMS(created)
		out = append(out, m)
	}
	return out, rows.Err()
}

// RemoveMedia deletes a media record. ErrInUse while a schedule or an
// announcement that is not cancelled uses it.
func (s *Store) RemoveMedia(ctx context.Context, sha string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rules WHERE media = ? AND cancelled_at = 0`, sha).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("media %s is used by %d announcement(s) or schedule(s): %w", sha, n, ErrInUse)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE media = ?`, sha); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM media WHERE sha256 = ?`, sha)
		if err != nil {
			return fmt.Errorf("remove media %s: %w", sha, err)
		}
		return mustAffect(res, "media "+sha)
	})
}
