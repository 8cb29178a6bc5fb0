package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AuditRequest is the audit action of one mutating API request; its actor
// is the token's name and its details say method, path and status.
const AuditRequest = "request"

// Token is a staff API token. Its secret is stored only as a hash.
type Token struct {
	ID         int64
	Name       string
	Role       string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time // zero: never used
	RevokedAt  time.Time // zero: not revoked
}

// AddToken stores t with the hash of its secret. ErrExists if a token that
// is not revoked already has the name.
func (s *Store) AddToken(ctx context.Context, t Token, hash string) (Token, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens WHERE name = ? AND revoked_at = 0`, t.Name).Scan(&n); err != nil {
			return fmt.Errorf("add token %s: %w", t.Name, err)
		}
		if n > 0 {
			return fmt.Errorf("token %s: %w", t.Name, ErrExists)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO tokens(name, role, hash, created_at, expires_at) VALUES(?,?,?,?,?)`,
			t.Name, t.Role, hash, ms(t.CreatedAt), ms(t.ExpiresAt))
		if err != nil {
			return fmt.Errorf("add token %s: %w", t.Name, err)
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	return t, err
}

const tokenColumns = `id, name, role, created_at, expires_at, last_used_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var created, expires, used, revoked int64
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &created, &expires, &used, &revoked); err != nil {
		return t, err
	}
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromMS(created), fromMS(expires), fromMS(used), fromMS(revoked)
	return t, nil
}

// Tokens lists every token, revoked ones included, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TokenByHash returns the token whose secret has this hash, revoked and
// expired ones included (the caller decides), or ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash string) (Token, error) {
	t, err := scanToken(s.read.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("look up token: %w", err)
	}
	return t, nil
}

// RevokeToken revokes the token called name that is not revoked yet, at
// the given time, and returns it. ErrNotFound if there is none.
func (s *Store) RevokeToken(ctx context.Context, name string, at time.Time) (Token, error) {
	var t Token
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE name = ? AND revoked_at = 0`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		t.RevokedAt = fromMS(ms(at))
		_, err = tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ?`, ms(at), t.ID)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return t, fmt.Errorf("revoke token %s: %w", name, err)
	}
	return t, err
}

// TouchToken records that token id was used at the given time.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, ms(at), id); err != nil {
		return fmt.Errorf("record token use: %w", err)
	}
	return nil
}
