package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// anyRole marks calls every valid token may make, trigger included.
const anyRole auth.Role = ""

// lastUsedEvery is how stale a token's "last used" may get before a request
// writes it again: reads need not each cost a database write.
const lastUsedEvery = time.Minute

// principal is who made a request: the token's name and role.
type principal struct {
	name string
	role auth.Role
}

type principalKey struct{}

// actor is the audit log's name for who made the request in ctx: the
// token's name, or fallback when no token made it (CAP, sensors, the
// controller itself).
func actor(ctx context.Context, fallback string) string {
	if p, ok := ctx.Value(principalKey{}).(principal); ok {
		return p.name
	}
	return fallback
}

// handle registers h for pattern, open to tokens whose role allows need.
func (s *Server) handle(pattern string, need auth.Role, h func(http.ResponseWriter, *http.Request) error) {
	s.mux.HandleFunc(pattern, s.wrap(s.guard(need, h)))
}

// guard checks the token and its role, and writes every mutating request a
// known token makes (allowed or not, expired or revoked too) to the audit
// log with the token's name.
func (s *Server) guard(need auth.Role, h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r)
		if err != nil {
			if p.name != "" { // a known token that no longer works
				s.auditRequest(r, p, err, nil)
			}
			return err
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if need != anyRole && !p.role.Allows(need) {
			err = fail(http.StatusForbidden, messages.Forbidden, p.name, p.role, need, need)
			s.auditRequest(r, p, err, nil)
			return err
		}
		if !mutating(r.Method) {
			return h(w, r)
		}
		rec := &statusRecorder{ResponseWriter: w}
		err = h(rec, r)
		s.auditRequest(r, p, err, rec)
		return err
	}
}

// authenticate finds the request's bearer token: the bootstrap admin token
// or a stored one that is neither revoked nor expired. For a revoked or
// expired token it returns the token's name and role with the error, for
// the audit log.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return principal{}, fail(http.StatusUnauthorized, messages.Unauthorized)
	}
	if auth.Equal(tok, s.opts.AdminToken) {
		return principal{name: auth.AdminTokenName, role: auth.RoleAdmin}, nil
	}
	// The secret is 32 random bytes, so looking its hash up by index
	// tells a guesser nothing useful.
	t, err := s.store.TokenByHash(r.Context(), auth.Hash(tok))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return principal{}, fail(http.StatusUnauthorized, messages.Unauthorized)
	case err != nil:
		return principal{}, err
	}
	now := s.opts.Now()
	if !t.RevokedAt.IsZero() {
		return principal{name: t.Name, role: auth.Role(t.Role)}, fail(http.StatusUnauthorized, messages.TokenRevoked, t.Name)
	}
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return principal{name: t.Name, role: auth.Role(t.Role)}, fail(http.StatusUnauthorized, messages.TokenExpired, t.Name, s.siteTime(t.ExpiresAt))
	}
	role, err := auth.ParseRole(t.Role)
	if err != nil {
		return principal{}, fmt.Errorf("token %s: %w", t.Name, err)
	}
	if now.Sub(t.LastUsedAt) >= lastUsedEvery {
		if err := s.store.TouchToken(r.Context(), t.ID, now.UTC()); err != nil {
			s.log.Warn("token last use not recorded", "token", t.Name, "err", err)
		}
	}
	return principal{name: t.Name, role: role}, nil
}

// siteTime shows t as the commune reads its clocks.
func (s *Server) siteTime(t time.Time) string {
	return t.In(s.bc.Scheduler().Location()).Format("2006-01-02 15:04 MST")
}

func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// auditRequest writes one mutating request to the audit log: who (the
// token's name), method, path and the status it was answered with. It is
// written even if the client has gone; a failure is logged, never fatal.
func (s *Server) auditRequest(r *http.Request, p principal, err error, rec *statusRecorder) {
	if !mutating(r.Method) {
		return
	}
	status := http.StatusOK
	var he *httpError
	switch {
	case errors.As(err, &he):
		status = he.status
	case err != nil:
		status = http.StatusInternalServerError
	case rec != nil && rec.status != 0:
		status = rec.status
	}
	ctx := context.WithoutCancel(r.Context())
	e := store.AuditEntry{At: s.opts.Now().UTC(), Actor: p.name, Action: store.AuditRequest,
		Details: fmt.Sprintf("%s %s %d role=%s", r.Method, r.URL.Path, status, p.role)}
	if err := s.store.AddAudit(ctx, e); err != nil {
		s.log.Error("audit log", "err", err)
	}
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// staffActor names who started a rule whose source is "cli" (staff through
// the API): the token's name. Other sources (cap:…, sensor:…) name
// themselves.
func staffActor(ctx context.Context, source string) string {
	if source != "cli" {
		return source
	}
	return actor(ctx, source)
}
