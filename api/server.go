package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/loa-commune/loa/enrol"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loa-commune/loa/auth"
	capxml "github.com/loa-commune/loa/cap"
	"github.com/loa-commune/loa/media"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// Broadcaster is what the API needs from the controller's MQTT side.
type Broadcaster interface {
	Replan()
	PublishConfigs(ctx context.Context, ids ...string) error
	ForgetDevice(id string) error
	// RepublishAll signs and publishes every config and plan again (the
	// signing keys changed).
	RepublishAll(ctx context.Context) error
	Scheduler() *scheduler.Scheduler
	// Metrics are the broadcaster's counters (see GET /v1/metrics).
	Metrics() map[string]int64
}

// Options configure the API.
type Options struct {
	Site       string
	AdminToken string
	// BrokerURL and ServerURL are how boxes reach the controller; they go
	// into the agent configs that `loa device add` writes.
	BrokerURL string
	ServerURL string
	// CAPEM is the certificate authority (PEM) boxes trust to reach the
	// controller over TLS; agent configs carry it as ca_pem. Empty: none.
	CAPEM string
	// ClientCertRequired: the broker lets in only boxes with a client
	// certificate; agent configs say how to give one.
	ClientCertRequired bool
	// Keys are the controller's signing keys: their public halves go into
	// agent configs, and admins rotate them. Nil in tests of other parts.
	Keys          KeyManager
	DefaultVolume int
	// Validity is how long after its start an item may still start.
	Validity time.Duration
	// StaleAfter is how long a box may stay silent before it is shown
	// offline even if its last message said online (a dead box whose will
	// message was lost, e.g. across a broker restart). 0 disables it.
	StaleAfter time.Duration
	// EmergencyValidity is how long after its start an emergency is still
	// delivered, e.g. to a box that comes back online.
	EmergencyValidity time.Duration
	// Speech renders text to speech; nil refuses --text.
	Speech Speaker
	// ExerciseNotice is spoken before every exercise ("this is a drill").
	ExerciseNotice string
	// AllClearText is spoken where an emergency was cancelled; empty: none.
	AllClearText string
	// CAP maps CAP alerts to emergencies.
	CAP capxml.Config
	Now func() time.Time

	// Limits bound each client's request rate (ratelimit.go).
	Limits Limits

	// OnAir runs live sessions; nil refuses them.
	OnAir OnAir

	// Rollouts moves agent builds out to the boxes, and BuildsDir keeps
	// the builds (<data>/builds); nil or empty refuse them.
	Rollouts  Rollouts
	BuildsDir string

	// Collectors are the controller's parts' metrics (the broadcaster's,
	// live sessions') for GET /metrics, beside the process's (metrics.go).
	Collectors []prometheus.Collector
}

// Server serves the HTTP API.
type Server struct {
	opts  Options
	store *store.Store
	media *media.Store
	bc    Broadcaster
	log   *slog.Logger
	mux   *http.ServeMux

	limits    *rateLimits // ratelimit.go
	enrolGate enrolGate   // enrol.go
}

// NewServer wires the handlers.
func NewServer(opts Options, st *store.Store, ms *media.Store, bc Broadcaster, log *slog.Logger) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Validity <= 0 {
		opts.Validity = scheduler.DefaultValidity
	}
	if opts.EmergencyValidity <= 0 {
		opts.EmergencyValidity = time.Hour
	}
	s := &Server{opts: opts, store: st, media: ms, bc: bc, log: log, mux: http.NewServeMux(), limits: newRateLimits(opts.Limits, log)}
	// Every route and the least role it needs (see auth.Role: admin ⊇
	// operator ⊇ viewer; trigger only posts alerts, which operator and admin
	// may also do). docs/design.md lists the same table.
	const (
		viewer   = auth.RoleViewer
		operator = auth.RoleOperator
		admin    = auth.RoleAdmin
		trigger  = auth.RoleTrigger
	)
	s.handle("GET /v1/devices", viewer, s.listDevices)
	s.handle("POST /v1/devices", admin, s.addDevice)
	s.handle("DELETE /v1/devices/{id}", admin, s.removeDevice)
	s.handle("PUT /v1/devices/{id}/volume", admin, s.setVolume)
	s.handle("PUT /v1/devices/{id}/location", admin, s.setLocation)
	s.handle("POST /v1/devices/{id}/enrolments", admin, s.newEnrolment)
	s.handle("POST /v1/agent/builds", admin, s.addBuild)
	s.mux.HandleFunc("GET /v1/agent/builds/{sha}", s.wrap(s.getBuild)) // viewer or a box (HTTP Basic)
	s.handle("POST /v1/agent/rollouts", admin, s.startRollout)
	s.handle("GET /v1/agent/rollout", viewer, s.rolloutStatus)
	s.handle("POST /v1/agent/rollout/state", admin, s.setRolloutState)
	s.mux.HandleFunc("POST "+enrol.Path, s.wrap(s.enrolBox)) // a new box: the code is its credential
	s.handle("GET /v1/groups", viewer, s.listGroups)
	s.handle("POST /v1/groups/{group}/members", admin, s.addMembers)
	s.handle("POST /v1/groups/{group}/remove", admin, s.removeMembers)
	s.handle("GET /v1/media", viewer, s.listMedia)
	s.handle("POST /v1/media", operator, s.addMedia)
	s.handle("DELETE /v1/media/{id}", operator, s.removeMedia)
	s.mux.HandleFunc("GET /v1/media/{id}", s.wrap(s.getMedia)) // viewer or a box (HTTP Basic)
	s.handle("POST /v1/announcements", operator, s.announce)
	s.handle("GET /v1/announcements/{id}", viewer, s.getAnnouncement)
	s.handle("DELETE /v1/announcements/{id}", operator, s.cancelAnnouncement)
	s.handle("GET /v1/schedules", viewer, s.listSchedules)
	s.handle("POST /v1/schedules", operator, s.addSchedule)
	s.handle("DELETE /v1/schedules/{id}", operator, s.removeSchedule)
	s.handle("POST /v1/schedules/{id}/pause", operator, s.pauseSchedule(true))
	s.handle("POST /v1/schedules/{id}/resume", operator, s.pauseSchedule(false))
	s.handle("POST /v1/emergencies", operator, s.startEmergency)
	s.handle("GET /v1/emergencies", viewer, s.listEmergencies)
	s.handle("POST /v1/emergencies/cancel", operator, s.cancelEmergency)
	s.handle("POST /v1/sessions", operator, s.startSession)
	s.handle("PUT /v1/sessions/{id}/audio", operator, s.feedSession)
	s.handle("DELETE /v1/sessions/{id}", operator, s.stopSession)
	s.handle("GET /v1/sessions", viewer, s.listSessions)
	s.handle("GET /v1/sessions/{id}", viewer, s.getSession)
	s.handle("GET /v1/sessions/{id}/recording", viewer, s.recording)
	s.handle("POST /v1/sessions/{id}/media", operator, s.recordingMedia)
	s.handle("GET /v1/audit", viewer, s.auditLog)
	s.handle("POST /v1/alerts/cap", trigger, s.capAlert)
	s.handle("GET /v1/status", viewer, s.status)
	s.handle("GET /v1/report", viewer, s.report)
	s.handle("GET /v1/site", anyRole, s.site)
	reg := newMetricsRegistry(opts.Collectors)
	s.handle("GET /v1/metrics", viewer, s.jsonMetrics(reg))
	s.handle("GET /metrics", viewer, prometheusMetrics(reg)) // Prometheus: authorization: credentials: <viewer token>
	s.handle("GET /v1/tokens", admin, s.listTokens)
	s.handle("POST /v1/tokens", admin, s.addToken)
	s.handle("DELETE /v1/tokens/{name}", admin, s.revokeToken)
	s.handle("GET /v1/keys", viewer, s.keys)
	s.handle("POST /v1/keys/rotate", admin, s.rotateKeys)
	s.handle("POST /v1/keys/finish", admin, s.finishKeys)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return s
}

// ServeHTTP serves the API to clients within their rate limits.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.admit(w, r) {
		s.mux.ServeHTTP(w, r)
	}
}

// httpError is an error with the status to answer.
type httpError struct {
	status int
	err    *messages.Error
}

func (e *httpError) Error() string { return e.err.Error() }

func fail(status int, key messages.Key, args ...any) error {
	return &httpError{status: status, err: messages.New(key, args...)}
}

func (s *Server) wrap(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			he = &httpError{status: http.StatusInternalServerError, err: messages.New(messages.Internal, err.Error())}
		}
		msg := he.err.Error()
		if lang := r.Header.Get("Accept-Language"); lang != "" {
			msg = he.err.In(lang) // the console asks in its user's language
		}
		writeJSON(w, he.status, ErrorResponse{Error: msg, Code: string(he.err.Key)})
	}
}

func (s *Server) isDevice(r *http.Request) bool {
	id, tok, ok := r.BasicAuth()
	if !ok || protocol.ValidName(id) != nil {
		return false
	}
	hash, err := s.store.DeviceTokenHash(r.Context(), id)
	return err == nil && auth.Check(tok, hash)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(http.StatusBadRequest, messages.BadRequest, err.Error())
	}
	return nil
}

// notFound maps store.ErrNotFound to a 404 with the given message.
func notFound(err error, key messages.Key, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusNotFound, key, args...)
	}
	return err
}

func mediaInfo(m store.Media) MediaInfo {
	info := MediaInfo{ID: m.SHA256, Name: m.Name, Codec: m.Codec, Size: m.Size, DurationMS: m.Duration.Milliseconds(), CreatedAt: m.CreatedAt,
		LoudnessLUFS: m.Loudness, TruePeakDBTP: m.TruePeak}
	if m.Play.SHA256 != "" {
		info.Play = &PlayFile{ID: m.Play.SHA256, Codec: m.Play.Codec, Size: m.Play.Size, LoudnessLUFS: m.Play.Loudness}
	}
	return info
}

func (s *Server) listMedia(w http.ResponseWriter, r *http.Request) error {
	list, err := s.store.MediaList(r.Context())
	if err != nil {
		return err
	}
	out := make([]MediaInfo, 0, len(list))
	for _, m := range list {
		out = append(out, mediaInfo(m))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) addMedia(w http.ResponseWriter, r *http.Request) error {
	return s.addMediaFrom(w, r, r.Body, r.URL.Query().Get("name"), nil)
}

// addMediaFrom stores body as media called name, calls then (if set) with
// its id, and answers with what was stored.
func (s *Server) addMediaFrom(w http.ResponseWriter, r *http.Request, body io.Reader, name string, then func(sha string) error) error {
	sha, created, err := s.storeMedia(r.Context(), body, name)
	if err != nil {
		return err
	}
	if then != nil {
		if err := then(sha); err != nil {
			return err
		}
	}
	stored, err := s.store.MediaByID(r.Context(), sha)
	if err != nil {
		return err
	}
	info := mediaInfo(stored)
	info.Existed = !created
	return writeJSON(w, http.StatusCreated, info)
}

// boxOrViewer lets a box (HTTP Basic) or a viewer token through.
func (s *Server) boxOrViewer(w http.ResponseWriter, r *http.Request) error {
	if s.isDevice(r) {
		return nil
	}
	p, err := s.authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="loa"`)
		return err
	}
	if !p.role.Allows(auth.RoleViewer) {
		return fail(http.StatusForbidden, messages.Forbidden, p.name, p.role, auth.RoleViewer, auth.RoleViewer)
	}
	return nil
}

func (s *Server) getMedia(w http.ResponseWriter, r *http.Request) error {
	if err := s.boxOrViewer(w, r); err != nil {
		return err
	}
	id := r.PathValue("id")
	if protocol.ValidSHA256(id) != nil {
		return fail(http.StatusNotFound, messages.UnknownMedia, id)
	}
	if known, err := s.store.MediaFileKnown(r.Context(), id); err != nil || !known {
		return cmp.Or(err, fail(http.StatusNotFound, messages.UnknownMedia, id))
	}
	f, err := s.media.Open(id)
	if err != nil {
		return fmt.Errorf("open media %s: %w", id, err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+id+`"`)
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, f) // handles Range
	return nil
}

func (s *Server) removeMedia(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	m, err := s.store.RemoveMedia(r.Context(), id)
	var inUse *store.MediaInUseError
	switch {
	case errors.As(err, &inUse):
		return fail(http.StatusConflict, messages.MediaInUse, id, inUse.Rules)
	case err != nil:
		return notFound(err, messages.UnknownMedia, id)
	}
	for _, sha := range []string{m.SHA256, m.Play.SHA256} {
		// Two uploads of the same sound (a WAV and its FLAC) share one
		// rendition.
		if known, err := s.store.MediaFileKnown(r.Context(), sha); sha == "" || err != nil || known {
			continue
		}
		if err := s.media.Remove(sha); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// span reads the since and until query parameters (site zone).
func (s *Server) span(r *http.Request) (since, until time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		v := r.URL.Query().Get(name)
		if v == "" {
			return time.Time{}, nil
		}
		t, err := ParseTime(v, s.bc.Scheduler().Location(), s.opts.Now())
		if err != nil {
			return t, fail(http.StatusBadRequest, messages.BadTime, v)
		}
		return t, nil
	}
	if since, err = parse("since"); err != nil {
		return
	}
	until, err = parse("until")
	return
}

// SiteInfo says which site this controller runs and in which zone its
// times are meant.
type SiteInfo struct {
	Site     string `json:"site"`
	Timezone string `json:"timezone"`
	// Token and Role are the caller's: who the controller takes it for.
	Token string `json:"token"`
	Role  string `json:"role"`
}

func (s *Server) site(w http.ResponseWriter, r *http.Request) error {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return writeJSON(w, http.StatusOK, SiteInfo{Site: s.opts.Site, Timezone: s.bc.Scheduler().Location().String(),
		Token: p.name, Role: string(p.role)})
}
