package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// OnAir runs live sessions: a live speech fed through the API, or a radio
// stream the controller relays (package onair).
type OnAir interface {
	// Start puts a session of rule (validated: id, targets, priority,
	// validity = its longest length) on air: a relay once its stream flows
	// (an error if it never does), a live session at once, waiting for
	// Feed. It stores the rule and the session's record.
	Start(ctx context.Context, rule store.Rule, kind, source, by string) (store.Session, error)
	// Feed plays a live session's Ogg Opus sound from r until r ends, the
	// session is stopped or reaches its length; it returns the session.
	Feed(ctx context.Context, id string, r io.Reader) (store.Session, error)
	// Stop ends a session on air and returns it.
	Stop(ctx context.Context, id, by string) (store.Session, error)
	// MaxLength is the longest a session may last.
	MaxLength() time.Duration
	// RecordingPath is where the recording of session id is (while kept).
	RecordingPath(id string) string
	// Delay is how long after the controller receives a live session's
	// sound the boxes play it.
	Delay() time.Duration
	// Channels is how many channels a relay's sound has.
	Channels() int
}

// Errors an OnAir returns that the API tells apart.
var (
	ErrNoSuchSession = errors.New("no such live session")
	ErrSessionOver   = errors.New("the session has ended")
)

// SessionError is an OnAir failure the user can act on: a stream that
// cannot be relayed, sound that is not Ogg Opus.
type SessionError struct {
	Key    messages.Key
	Args   []any
	Status int
}

func (e *SessionError) Error() string { return messages.T(e.Key, e.Args...) }

// SessionRequest asks for a live session (POST /v1/sessions).
type SessionRequest struct {
	Kind     string        `json:"kind"` // live or relay
	Targets  store.Targets `json:"targets"`
	Priority string        `json:"priority,omitempty"` // live: priority, relay: normal by default
	ForSec   int           `json:"for_sec,omitempty"`  // 0: the longest allowed
	URL      string        `json:"url,omitempty"`      // relay: the stream
	Source   string        `json:"source,omitempty"`   // live: what the speaker uses (a microphone, a file)
	Name     string        `json:"name,omitempty"`
}

// SessionInfo is a session, the boxes it targets and, for one session,
// each box's answer.
type SessionInfo struct {
	store.Session
	Until   time.Time `json:"until"` // the latest it ends
	Devices []string  `json:"devices"`
	// RecordingBytes is the size of its recording while it is kept.
	RecordingBytes int64 `json:"recording_bytes,omitempty"`
	// SpeakAt is when the speaker's sound starts to be played (the boxes
	// play it Delay later); zero until the session is on air.
	SpeakAt time.Time        `json:"speak_at,omitzero"`
	Rows    []store.Delivery `json:"rows,omitempty"`
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request) error {
	if s.opts.OnAir == nil {
		return fail(http.StatusNotImplemented, messages.BadRequest, "this controller runs no live sessions")
	}
	var req SessionRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	now := s.opts.Now()
	rule := store.Rule{Kind: store.KindOnce, Name: req.Name, Targets: req.Targets, Repeat: 1,
		Status: protocol.StatusLive, Source: "cli", CreatedAt: now.UTC()}
	source := strings.TrimSpace(req.Source)
	switch req.Kind {
	case "live":
		rule.ID, rule.Priority = newID("l-"), protocol.High
		if source == "" {
			source = "microphone"
		}
		rule.Text = "live: " + source
	case "relay":
		rule.ID, rule.Priority, source = newID("r-"), protocol.Normal, strings.TrimSpace(req.URL)
		if !strings.HasPrefix(source, "http://") && !strings.HasPrefix(source, "https://") {
			return fail(http.StatusBadRequest, messages.RelayBadURL, source)
		}
		rule.Text = "relay: " + source
	default:
		return fail(http.StatusBadRequest, messages.BadRequest, `kind must be "live" or "relay"`)
	}
	if req.Priority != "" {
		p, err := protocol.ParsePriority(req.Priority)
		if err != nil {
			return fail(http.StatusBadRequest, messages.BadPriority, err.Error())
		}
		rule.Priority = p
	}
	longest := s.opts.OnAir.MaxLength()
	rule.Validity = longest
	if req.ForSec != 0 {
		d := time.Duration(req.ForSec) * time.Second
		if d <= 0 || d > longest {
			return fail(http.StatusBadRequest, messages.BadLength, longest, d.String())
		}
		rule.Validity = d
	}
	if err := s.checkTargets(r.Context(), req.Targets); err != nil {
		return err
	}
	x, err := s.opts.OnAir.Start(r.Context(), rule, req.Kind, source, actor(r.Context(), "cli"))
	if err != nil {
		return sessionError(err, rule.ID)
	}
	info, err := s.sessionInfo(r.Context(), x, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, info)
}

// feedSession plays the request body, a live session's Ogg Opus sound, as
// it arrives. The body has no overall deadline, only an idle one: a speaker
// may talk for an hour, but a connection that stops sending ends it.
func (s *Server) feedSession(w http.ResponseWriter, r *http.Request) error {
	if s.opts.OnAir == nil {
		return fail(http.StatusNotImplemented, messages.BadRequest, "this controller runs no live sessions")
	}
	id := s.sessionRule(r.Context(), r.PathValue("id"))
	body := &idleReader{r: r.Body, rc: http.NewResponseController(w), idle: liveIdle}
	body.extend()
	x, err := s.opts.OnAir.Feed(r.Context(), id, body)
	if err != nil {
		return sessionError(err, id)
	}
	info, err := s.sessionInfo(r.Context(), x, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// liveIdle is how long a live session's upload may send nothing before the
// controller gives up on it.
const liveIdle = 15 * time.Second

// idleReader pushes the connection's read deadline forward on every read.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleReader) extend() { _ = b.rc.SetReadDeadline(time.Now().Add(b.idle)) }

func (b *idleReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.extend()
	}
	return n, err
}

func (s *Server) stopSession(w http.ResponseWriter, r *http.Request) error {
	if s.opts.OnAir == nil {
		return fail(http.StatusNotImplemented, messages.BadRequest, "this controller runs no live sessions")
	}
	id := r.PathValue("id")
	x, err := s.opts.OnAir.Stop(r.Context(), id, actor(r.Context(), "cli"))
	if err != nil {
		return sessionError(err, id)
	}
	info, err := s.sessionInfo(r.Context(), x, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since, until time.Time
	loc := s.bc.Scheduler().Location()
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(p.name); v != "" {
			t, err := ParseTime(v, loc, s.opts.Now())
			if err != nil {
				return fail(http.StatusBadRequest, messages.BadTime, v)
			}
			*p.t = t
		}
	}
	list, err := s.store.Sessions(r.Context(), since, until, 0)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	x, err := s.session(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	info, err := s.sessionInfo(r.Context(), x, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// sessionRule is the rule of session id (OnAir knows running sessions by
// their rule); an id that names no session is taken as a rule's.
func (s *Server) sessionRule(ctx context.Context, id string) string {
	if x, err := s.store.SessionByID(ctx, id); err == nil {
		return x.Rule
	}
	return id
}

// session finds a session by its id or by its rule's.
func (s *Server) session(ctx context.Context, id string) (store.Session, error) {
	x, err := s.store.SessionByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		list, lerr := s.store.SessionsOfRule(ctx, id)
		if lerr != nil {
			return x, lerr
		}
		if len(list) > 0 {
			return list[len(list)-1], nil
		}
	}
	return x, notFound(err, messages.NoSuchSession, id)
}

// sessionInfo adds the boxes a session targets and, with rows, their
// answers.
func (s *Server) sessionInfo(ctx context.Context, x store.Session, rows bool) (SessionInfo, error) {
	info := SessionInfo{Session: x}
	if rule, err := s.store.RuleByID(ctx, x.Rule); err == nil {
		info.Until = x.StartedAt.Add(rule.Validity)
	}
	devs, err := s.targetDevices(ctx, x.Targets)
	if err != nil {
		return info, err
	}
	info.Devices = devs
	if s.opts.OnAir != nil {
		if fi, err := os.Stat(s.opts.OnAir.RecordingPath(x.ID)); err == nil {
			info.RecordingBytes = fi.Size()
		}
		if !x.StartedAt.IsZero() {
			info.SpeakAt = x.StartedAt.Add(-s.opts.OnAir.Delay())
		}
	}
	if rows {
		all, err := s.store.Deliveries(ctx, x.Rule)
		if err != nil {
			return info, err
		}
		for _, d := range all {
			if d.Item == x.ID {
				info.Rows = append(info.Rows, d)
			}
		}
	}
	return info, nil
}

// recording serves a session's recording (Ogg Opus, as the boxes played it).
func (s *Server) recording(w http.ResponseWriter, r *http.Request) error {
	x, f, err := s.recordingOf(r)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "audio/ogg")
	w.Header().Set("Content-Disposition", `attachment; filename="`+x.ID+`.opus"`)
	http.ServeContent(w, r, x.ID+".opus", fi.ModTime(), f)
	return nil
}

// recordingOf opens the recording of the session the request names.
func (s *Server) recordingOf(r *http.Request) (store.Session, *os.File, error) {
	x, err := s.session(r.Context(), r.PathValue("id"))
	if err != nil {
		return x, nil, err
	}
	if s.opts.OnAir == nil {
		return x, nil, fail(http.StatusNotFound, messages.NoRecording, x.ID)
	}
	f, err := os.Open(s.opts.OnAir.RecordingPath(x.ID))
	if err != nil {
		return x, nil, fail(http.StatusNotFound, messages.NoRecording, x.ID)
	}
	return x, f, nil
}

// recordingMedia adds a session's recording to the media library, through
// the same conversion as every upload, so it can be played again on boxes.
func (s *Server) recordingMedia(w http.ResponseWriter, r *http.Request) error {
	x, f, err := s.recordingOf(r)
	if err != nil {
		return err
	}
	defer f.Close()
	name := r.URL.Query().Get("name")
	if name == "" {
		name = x.Kind + " " + x.StartedAt.In(s.bc.Scheduler().Location()).Format("2006-01-02 15:04") + " (" + x.ID + ")"
	}
	return s.addMediaFrom(w, r, f, name, func(sha string) error { return s.store.SetSessionRecording(r.Context(), x.ID, sha) })
}

// sessionError maps what OnAir says to an answer.
func sessionError(err error, id string) error {
	var se *SessionError
	switch {
	case errors.As(err, &se):
		return &httpError{status: se.Status, err: messages.New(se.Key, se.Args...)}
	case errors.Is(err, ErrNoSuchSession), errors.Is(err, store.ErrNotFound):
		return fail(http.StatusNotFound, messages.NoSuchSession, id)
	case errors.Is(err, ErrSessionOver):
		return fail(http.StatusConflict, messages.SessionOver, id)
	}
	return err
}
