package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

func (s *Server) tokenInfo(t store.Token) TokenInfo {
	status := TokenActive
	switch {
	case !t.RevokedAt.IsZero():
		status = TokenRevoked
	case !t.ExpiresAt.IsZero() && !s.opts.Now().Before(t.ExpiresAt):
		status = TokenExpired
	}
	return TokenInfo{Name: t.Name, Role: t.Role, Status: status, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.store.Tokens(r.Context())
	if err != nil {
		return err
	}
	out := make([]TokenInfo, 0, len(list))
	for _, t := range list {
		out = append(out, s.tokenInfo(t))
	}
	return writeJSON(w, http.StatusOK, out)
}

// addToken makes a token and answers its secret, the only time it is shown;
// only its hash is stored.
func (s *Server) addToken(w http.ResponseWriter, r *http.Request) error {
	var req AddTokenRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if err := protocol.ValidName(req.Name); err != nil {
		return fail(http.StatusBadRequest, messages.BadName, "token name: "+err.Error())
	}
	if req.Name == auth.AdminTokenName {
		return fail(http.StatusBadRequest, messages.ReservedToken, req.Name)
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		return fail(http.StatusBadRequest, messages.BadRole, req.Role)
	}
	now := s.opts.Now().UTC().Truncate(time.Millisecond) // as stored
	t := store.Token{Name: req.Name, Role: string(role), CreatedAt: now}
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return fail(http.StatusBadRequest, messages.BadExpiry, req.Expires)
		}
		t.ExpiresAt = now.Add(d)
	}
	secret := auth.NewToken()
	t, err = s.store.AddToken(r.Context(), t, auth.Hash(secret))
	if errors.Is(err, store.ErrExists) {
		return fail(http.StatusConflict, messages.TokenExists, req.Name, req.Name)
	}
	if err != nil {
		return err
	}
	s.log.Info("token added", "token", t.Name, "role", t.Role, "by", actor(r.Context(), ""))
	return writeJSON(w, http.StatusCreated, AddTokenResponse{Token: s.tokenInfo(t), Secret: secret})
}

// revokeToken revokes the live token with the name; it stops working at
// once and stays listed.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if name == auth.AdminTokenName {
		return fail(http.StatusBadRequest, messages.ReservedToken, name)
	}
	t, err := s.store.RevokeToken(r.Context(), name, s.opts.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusNotFound, messages.UnknownToken, name)
	}
	if err != nil {
		return err
	}
	s.log.Info("token revoked", "token", t.Name, "by", actor(r.Context(), ""))
	return writeJSON(w, http.StatusOK, s.tokenInfo(t))
}
