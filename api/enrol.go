package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/brokerconf"
	"github.com/loa-commune/loa/enrol"
	"github.com/loa-commune/loa/internal/ratelimit"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// Enrolment codes: how long one is valid by default and at most, and how
// long a spent or expired one is remembered for its error message.
const (
	DefaultEnrolValidity = 24 * time.Hour
	MaxEnrolValidity     = 30 * 24 * time.Hour
	enrolMemory          = MaxEnrolValidity + 7*24*time.Hour
)

// enrolAttempts bounds enrolment requests from everyone together: with 72
// bits of secret no one guesses a code, and this keeps the audit log and
// the CPU from paying for the trying. A technician enrols a box a minute.
var enrolAttempts = Rate{PerSec: 1.0 / 3, Burst: 20}

// EnrolRequest asks for a new enrolment code for a box.
type EnrolRequest struct {
	ValidSec int64 `json:"valid_sec,omitempty"` // 0: DefaultEnrolValidity
}

// EnrolResponse is a new code, shown once.
type EnrolResponse struct {
	Device    string    `json:"device"`
	Code      string    `json:"code"`
	Server    string    `json:"server"` // the URL the box enrols with
	ExpiresAt time.Time `json:"expires_at"`
	Command   string    `json:"command"` // what to type on the box
}

// enrolGate is the shared bucket of enrolment attempts.
type enrolGate struct {
	mu     sync.Mutex
	bucket ratelimit.Bucket
}

// newEnrolment answers POST /v1/devices/{id}/enrolments: a one-time code
// for the box, to type on it with `loa-agent enroll`.
func (s *Server) newEnrolment(w http.ResponseWriter, r *http.Request) error {
	var req EnrolRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	valid := time.Duration(req.ValidSec) * time.Second
	if req.ValidSec == 0 {
		valid = DefaultEnrolValidity
	}
	if valid < time.Minute || valid > MaxEnrolValidity {
		return fail(http.StatusBadRequest, messages.EnrolValidity, MaxEnrolValidity, valid.String())
	}
	signer := s.currentSigner()
	if signer == nil {
		return errors.New("this controller has no signing key: enrolment needs one")
	}
	id := r.PathValue("id")
	code := enrol.NewCode(signer.Public())
	now := s.opts.Now().UTC()
	e, err := s.store.AddEnrolment(r.Context(), store.Enrolment{Device: id, MACKey: code.MACKey(),
		CreatedBy: actor(r.Context(), "admin"), CreatedAt: now, ExpiresAt: now.Add(valid)})
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusNotFound, messages.UnknownDevice, id, id)
	}
	if err != nil {
		return err
	}
	s.audit(r.Context(), e.CreatedBy, store.AuditEnrolCreate, "", store.Targets{Devices: []string{id}},
		fmt.Sprintf("code %d valid until %s", e.ID, e.ExpiresAt.Format(time.RFC3339)))
	text := code.String()
	return writeJSON(w, http.StatusCreated, EnrolResponse{Device: id, Code: text, Server: s.opts.ServerURL,
		ExpiresAt: e.ExpiresAt, Command: "loa-agent enroll " + s.opts.ServerURL + " " + text})
}

// currentSigner is the key enrolment answers are signed with.
func (s *Server) currentSigner() *protocol.Signer {
	if s.opts.Keys == nil {
		return nil
	}
	return s.opts.Keys.Current()
}

// enrolBox answers POST /v1/enrol, which a box calls with no credentials:
// it matches the request to a recent code, spends it, gives the box a new
// token and answers with its configuration, sealed and signed (package
// enrol). Every refusal is audited.
func (s *Server) enrolBox(w http.ResponseWriter, r *http.Request) error {
	from := clientAddr(r.RemoteAddr)
	now := s.opts.Now().UTC()
	s.enrolGate.mu.Lock()
	wait := s.enrolGate.bucket.Take(now, enrolAttempts.PerSec, enrolAttempts.Burst)
	s.enrolGate.mu.Unlock()
	if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		return fail(http.StatusTooManyRequests, messages.EnrolTooMany, secs)
	}
	var req enrol.Request
	if err := readJSON(r, &req); err != nil {
		return err
	}
	refuse := func(status int, device string, key messages.Key, args ...any) error {
		err := fail(status, key, args...)
		s.audit(r.Context(), "enrolment from "+from, store.AuditEnrolRefuse, "", store.Targets{Devices: nonEmpty(device)}, err.Error())
		return err
	}
	codes, err := s.store.RecentEnrolments(r.Context(), now.Add(-enrolMemory))
	if err != nil {
		return err
	}
	var match *store.Enrolment
	for i := range codes {
		if req.Matches(codes[i].MACKey) {
			match = &codes[i]
			break
		}
	}
	switch {
	case match == nil:
		return refuse(http.StatusForbidden, "", messages.EnrolWrongCode)
	case !match.UsedAt.IsZero():
		return refuse(http.StatusForbidden, match.Device, messages.EnrolUsed, s.siteTime(match.UsedAt), match.UsedFrom, match.Device)
	case !now.Before(match.ExpiresAt):
		return refuse(http.StatusForbidden, match.Device, messages.EnrolExpired, s.siteTime(match.ExpiresAt), match.Device)
	}
	token := auth.NewToken()
	brokerHash, err := brokerconf.MosquittoHash(token)
	if err != nil {
		return err
	}
	if err := s.store.UseEnrolment(r.Context(), match.ID, now, from, auth.Hash(token), brokerHash); err != nil {
		if errors.Is(err, store.ErrInUse) { // another request spent it a moment ago
			return refuse(http.StatusForbidden, match.Device, messages.EnrolUsed, s.siteTime(now), "another request", match.Device)
		}
		return err
	}
	resp, err := enrol.Seal(req, match.MACKey, []byte(s.agentConfig(match.Device, token)), s.currentSigner())
	if err != nil {
		return err
	}
	s.audit(r.Context(), "enrolment from "+from, store.AuditEnrolUse, "", store.Targets{Devices: []string{match.Device}},
		fmt.Sprintf("code %d made by %s", match.ID, match.CreatedBy))
	s.changed(r, match.Device)
	return writeJSON(w, http.StatusOK, resp)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Enrol asks for an enrolment code for box id (valid 0: the default).
func (c *Client) Enrol(ctx context.Context, id string, valid time.Duration) (EnrolResponse, error) {
	var out EnrolResponse
	return out, c.doJSON(ctx, http.MethodPost, "/v1/devices/"+id+"/enrolments", EnrolRequest{ValidSec: int64(valid / time.Second)}, &out)
}
