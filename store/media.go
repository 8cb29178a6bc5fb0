package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Media is an uploaded audio file, stored on disk by its SHA-256, and the
// rendition boxes download (Play).
type Media struct {
	SHA256    string        `json:"id"`
	Name      string        `json:"name"`
	Codec     string        `json:"codec"`
	Size      int64         `json:"size"`
	Duration  time.Duration `json:"-"`
	CreatedAt time.Time     `json:"created_at"`
	// Loudness and TruePeak are the original's (LUFS, dBTP); nil before the
	// controller measured it (media from before loudness normalisation).
	Loudness *float64 `json:"loudness_lufs,omitempty"`
	TruePeak *float64 `json:"true_peak_dbtp,omitempty"`
	// Play is what boxes download; empty SHA256 until it is made.
	Play MediaFile `json:"play"`
}

// MediaFile is one file of the media store.
type MediaFile struct {
	SHA256   string   `json:"id,omitempty"`
	Size     int64    `json:"size,omitempty"`
	Codec    string   `json:"codec,omitempty"`
	Loudness *float64 `json:"loudness_lufs,omitempty"`
}

// Delivered is the file boxes are told to play: the rendition, or the
// original while there is none.
func (m Media) Delivered() (sha string, size int64) {
	if m.Play.SHA256 != "" {
		return m.Play.SHA256, m.Play.Size
	}
	return m.SHA256, m.Size
}

const mediaColumns = `sha256, name, codec, size, duration_ms, created_at, loudness_lufs, true_peak_dbtp, play_sha256, play_size, play_codec, play_lufs`

func scanMedia(row interface{ Scan(...any) error }) (Media, error) {
	var m Media
	var dur, created int64
	err := row.Scan(&m.SHA256, &m.Name, &m.Codec, &m.Size, &dur, &created, &m.Loudness, &m.TruePeak,
		&m.Play.SHA256, &m.Play.Size, &m.Play.Codec, &m.Play.Loudness)
	m.Duration, m.CreatedAt = time.Duration(dur)*time.Millisecond, fromMS(created)
	return m, err
}

// AddMedia records m; adding the same bytes twice keeps the first record and
// reports created=false.
func (s *Store) AddMedia(ctx context.Context, m Media) (created bool, err error) {
	res, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO media(`+mediaColumns+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`,
		m.SHA256, m.Name, m.Codec, m.Size, m.Duration.Milliseconds(), ms(m.CreatedAt), m.Loudness, m.TruePeak,
		m.Play.SHA256, m.Play.Size, m.Play.Codec, m.Play.Loudness)
	if err != nil {
		return false, fmt.Errorf("add media %s: %w", m.SHA256, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// SetMediaPlay records the rendition of media made after its upload (the
// conversion of media from before renditions), and the original's loudness.
func (s *Store) SetMediaPlay(ctx context.Context, sha string, loudness, truePeak *float64, play MediaFile) error {
	res, err := s.db.ExecContext(ctx, `UPDATE media SET loudness_lufs = ?, true_peak_dbtp = ?, play_sha256 = ?, play_size = ?, play_codec = ?, play_lufs = ? WHERE sha256 = ?`,
		loudness, truePeak, play.SHA256, play.Size, play.Codec, play.Loudness, sha)
	if err != nil {
		return fmt.Errorf("record the rendition of media %s: %w", sha, err)
	}
	return mustAffect(res, "media "+sha)
}

// MediaByID returns one media record, or ErrNotFound.
func (s *Store) MediaByID(ctx context.Context, sha string) (Media, error) {
	m, err := scanMedia(s.read.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE sha256 = ?`, sha))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("media %s: %w", sha, ErrNotFound)
	}
	return m, err
}

// MediaFileKnown reports whether sha is a file of some media: an original
// or a rendition (what GET /v1/media/<sha256> serves).
func (s *Store) MediaFileKnown(ctx context.Context, sha string) (bool, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM media WHERE sha256 = ?1) + (SELECT COUNT(*) FROM media WHERE play_sha256 = ?1)`, sha).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up media file %s: %w", sha, err)
	}
	return n > 0, nil
}

// MediaList lists all media, newest first.
func (s *Store) MediaList(ctx context.Context) ([]Media, error) {
	return s.mediaWhere(ctx, `1`)
}

// MediaWithoutPlay lists the media that has no rendition yet, newest first.
func (s *Store) MediaWithoutPlay(ctx context.Context) ([]Media, error) {
	return s.mediaWhere(ctx, `play_sha256 = ''`)
}

func (s *Store) mediaWhere(ctx context.Context, where string) ([]Media, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE `+where+` ORDER BY created_at DESC, sha256`)
	if err != nil {
		return nil, fmt.Errorf("list media: %w", err)
	}
	defer rows.Close()
	out := []Media{}
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RemoveMedia deletes a media record and returns it. ErrInUse while a
// schedule or an announcement that is not cancelled uses it.
func (s *Store) RemoveMedia(ctx context.Context, sha string) (Media, error) {
	var removed Media
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rules WHERE media = ? AND cancelled_at = 0`, sha).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return &MediaInUseError{SHA256: sha, Rules: n}
		}
		m, err := scanMedia(tx.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE sha256 = ?`, sha))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("media %s: %w", sha, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE media = ?`, sha); err != nil {
			return err
		}
		// A session's recording may be removed by hand: the record stays.
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET recording = NULL WHERE recording = ?`, sha); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM media WHERE sha256 = ?`, sha); err != nil {
			return fmt.Errorf("remove media %s: %w", sha, err)
		}
		removed = m
		return nil
	})
	return removed, err
}
