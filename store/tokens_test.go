package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if list, err := s.Tokens(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Tokens on a new database = %+v, %v; want none", list, err)
	}
	add := func(name, role string, at time.Time, expires time.Time) Token {
		t.Helper()
		tok, err := s.AddToken(ctx, Token{Name: name, Role: role, CreatedAt: at, ExpiresAt: expires}, "hash-"+name+"-"+at.Format("150405"))
		if err != nil {
			t.Fatalf("AddToken(%s): %v", name, err)
		}
		return tok
	}
	duty := add("duty-officer", "operator", t0, time.Time{})
	feed := add("cap-feed", "trigger", t0.Add(time.Minute), t0.Add(30*24*time.Hour))
	if duty.ID == 0 || feed.ID == duty.ID {
		t.Fatalf("ids %d and %d", duty.ID, feed.ID)
	}

	got, err := s.TokenByHash(ctx, "hash-cap-feed-230100")
	if err != nil || got.Name != "cap-feed" || got.Role != "trigger" || !got.CreatedAt.Equal(t0.Add(time.Minute)) ||
		!got.ExpiresAt.Equal(t0.Add(30*24*time.Hour)) || !got.LastUsedAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, "hash-nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TokenByHash of an unknown hash: %v, want ErrNotFound", err)
	}

	refused := []struct {
		name       string
		tok        Token
		hash       string
		wantExists bool
	}{
		{"a live token has the name", Token{Name: "duty-officer", Role: "viewer", CreatedAt: t0}, "hash-other", true},
		{"an unknown role", Token{Name: "root", Role: "root", CreatedAt: t0}, "hash-root", false},
		{"a secret already in use", Token{Name: "copy", Role: "viewer", CreatedAt: t0}, "hash-duty-officer-230000", false},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.AddToken(ctx, tc.tok, tc.hash)
			if err == nil || errors.Is(err, ErrExists) != tc.wantExists {
				t.Fatalf("AddToken = %v; want an error (ErrExists: %v)", err, tc.wantExists)
			}
		})
	}

	used := t0.Add(time.Hour)
	if err := s.TouchToken(ctx, duty.ID, used); err != nil {
		t.Fatal(err)
	}
	revokedAt := t0.Add(2 * time.Hour)
	r, err := s.RevokeToken(ctx, "duty-officer", revokedAt)
	if err != nil || r.ID != duty.ID || !r.RevokedAt.Equal(revokedAt) || !r.LastUsedAt.Equal(used) {
		t.Fatalf("RevokeToken = %+v, %v", r, err)
	}
	if got, err := s.TokenByHash(ctx, "hash-duty-officer-230000"); err != nil || !got.RevokedAt.Equal(revokedAt) {
		t.Fatalf("a revoked token looks like %+v, %v; want it found with its revocation time", got, err)
	}
	for _, name := range []string{"duty-officer", "nobody"} {
		if _, err := s.RevokeToken(ctx, name, revokedAt); !errors.Is(err, ErrNotFound) {
			t.Fatalf("RevokeToken(%s) again: %v, want ErrNotFound", name, err)
		}
	}

	// The name of a revoked token may go to a new one; the old one stays listed.
	again := add("duty-officer", "viewer", t0.Add(3*time.Hour), time.Time{})
	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name, role string
		revoked    bool
	}
	var rows []row
	for _, tok := range list {
		rows = append(rows, row{tok.Name, tok.Role, !tok.RevokedAt.IsZero()})
	}
	want := []row{{"duty-officer", "operator", true}, {"cap-feed", "trigger", false}, {"duty-officer", "viewer", false}}
	if len(rows) != len(want) {
		t.Fatalf("Tokens = %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Fatalf("Tokens = %+v, want %+v", rows, want)
		}
	}
	if r, err := s.RevokeToken(ctx, "duty-officer", revokedAt); err != nil || r.ID != again.ID {
		t.Fatalf("RevokeToken revoked %+v, %v; want the new token %d", r, err, again.ID)
	}
}
