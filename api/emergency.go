package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// Speaker renders text to an audio file (text to speech).
type Speaker interface {
	Render(ctx context.Context, text string) ([]byte, error)
}

// prepareMedia gives the rule its media: spoken text when it has no media,
// and for an exercise the spoken exercise notice before it.
func (s *Server) prepareMedia(ctx context.Context, r *store.Rule) error {
	if r.StreamChannels > 0 {
		return nil // a session plays its stream; its text only names it
	}
	if r.Media == "" && r.Text != "" {
		id, err := s.speak(ctx, r.Text)
		if err != nil {
			return err
		}
		r.Media = id
	}
	if r.Status != protocol.StatusTest || s.opts.ExerciseNotice == "" {
		return nil
	}
	notice, err := s.speech(ctx, s.opts.ExerciseNotice)
	if err != nil {
		return err
	}
	parts := []io.ReadSeeker{bytes.NewReader(notice)}
	if r.Media != "" {
		// ffmpeg decodes the message; Join then needs only WAV.
		msg, err := s.media.DecodeWAV(ctx, r.Media, audio.SpeechFormat.SampleRate, audio.SpeechFormat.Channels)
		if err != nil {
			return mediaError(err)
		}
		parts = append(parts, bytes.NewReader(msg))
	}
	var joined bytes.Buffer
	if _, err := audio.Join(&joined, audio.SpeechFormat, 500*time.Millisecond, parts...); err != nil {
		return fmt.Errorf("prepare the exercise notice: %w", err)
	}
	id, _, err := s.storeMedia(ctx, &joined, "exercise: "+messages.Short(r.Text))
	if err != nil {
		return err
	}
	r.Media = id
	return nil
}

// speech renders text, mapping failures to a message for staff.
func (s *Server) speech(ctx context.Context, text string) ([]byte, error) {
	if s.opts.Speech == nil {
		return nil, fail(http.StatusBadRequest, messages.NoSpeech)
	}
	b, err := s.opts.Speech.Render(ctx, text)
	if err != nil {
		return nil, fail(http.StatusUnprocessableEntity, messages.SpeechFailed, err.Error())
	}
	return b, nil
}

// speak renders text and stores it as media, returning its id.
func (s *Server) speak(ctx context.Context, text string) (string, error) {
	b, err := s.speech(ctx, text)
	if err != nil {
		return "", err
	}
	id, _, err := s.storeMedia(ctx, bytes.NewReader(b), "tts: "+messages.Short(text))
	return id, err
}

// startEmergency starts an emergency now: the CLI's `loa emergency`.
func (s *Server) startEmergency(w http.ResponseWriter, r *http.Request) error {
	var req AnnounceRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.At != "" || req.Cron != "" {
		return fail(http.StatusBadRequest, messages.BadRequest, "an emergency starts now: leave out --at and --cron")
	}
	rule, err := s.emergencyRule(r.Context(), req, "cli")
	if err != nil {
		return err
	}
	return s.addRule(w, r, rule)
}

// StartEmergency starts an emergency on behalf of source (cap:<key>,
// sensor:<rule>): the same path as `loa emergency`.
func (s *Server) StartEmergency(ctx context.Context, req AnnounceRequest, source string) (Announcement, error) {
	rule, err := s.emergencyRule(ctx, req, source)
	if err != nil {
		return Announcement{}, err
	}
	return s.storeRule(ctx, rule)
}

// emergencyRule validates an emergency request from source (cli, cap:…,
// sensor:…) into a rule: emergency priority, an alert tone (siren unless
// said otherwise), and the longer emergency validity, so a box that comes
// back while it is still active plays it.
func (s *Server) emergencyRule(ctx context.Context, req AnnounceRequest, source string) (store.Rule, error) {
	req.Priority = protocol.Emergency.String()
	if req.Tone == "" {
		req.Tone = protocol.ToneSiren
	}
	rule, err := s.rule(ctx, req, store.KindOnce)
	if err != nil {
		return rule, err
	}
	rule.ID = newID("e-")
	rule.Source = source
	rule.Validity = s.opts.EmergencyValidity
	return rule, nil
}

// cancelEmergency cancels one emergency or all active ones, and plays the
// all-clear on the same boxes when one is configured.
func (s *Server) cancelEmergency(w http.ResponseWriter, r *http.Request) error {
	var req CancelRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	res, err := s.CancelEmergencies(r.Context(), req.ID, actor(r.Context(), "cli"), "cancelled by staff")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// CancelEmergencies cancels emergency id (or every active one when id is
// empty) on behalf of actor, and starts the all-clear if configured.
func (s *Server) CancelEmergencies(ctx context.Context, id, actor, why string) (CancelResponse, error) {
	res, err := s.cancelWhere(ctx, func(r store.Rule) bool { return id == "" || r.ID == id }, actor, why)
	if err == nil && len(res.Cancelled) == 0 {
		if id != "" {
			return res, fail(http.StatusNotFound, messages.NoSuchEmergency, id)
		}
		return res, fail(http.StatusNotFound, messages.NoActiveEmergency)
	}
	return res, err
}

// CancelEmergenciesFrom cancels the active emergencies a source started
// (cap:<key>, sensor:<rule>); none is not an error.
func (s *Server) CancelEmergenciesFrom(ctx context.Context, source, actor, why string) (CancelResponse, error) {
	return s.cancelWhere(ctx, func(r store.Rule) bool { return r.Source == source }, actor, why)
}

func (s *Server) cancelWhere(ctx context.Context, match func(store.Rule) bool, actor, why string) (CancelResponse, error) {
	res := CancelResponse{Cancelled: []string{}}
	active, err := s.activeEmergencies(ctx)
	if err != nil {
		return res, err
	}
	var targets []store.Rule
	for _, e := range active {
		if match(e) {
			targets = append(targets, e)
		}
	}
	if len(targets) == 0 {
		return res, nil
	}
	now := s.opts.Now()
	all := store.Targets{}
	for _, e := range targets {
		if err := s.store.CancelRule(ctx, e.ID, now); err != nil {
			return res, err
		}
		s.audit(ctx, actor, store.AuditEmergencyCancel, e.ID, e.Targets, why)
		res.Cancelled = append(res.Cancelled, e.ID)
		all = mergeTargets(all, e.Targets)
	}
	// One replan publishes the cancellations and the all-clear: asked for
	// once the all-clear is stored and before its pending rows are written.
	replanned := false
	replan := func() { s.bc.Replan(); replanned = true }
	if s.opts.AllClearText != "" {
		req := AnnounceRequest{Targets: all, Text: s.opts.AllClearText, Priority: protocol.High.String()}
		rule, err := s.rule(ctx, req, store.KindOnce)
		if err == nil {
			err = s.prepareMedia(ctx, &rule)
		}
		if err == nil {
			err = s.store.AddRuleThen(ctx, rule, replan)
		}
		switch {
		case err != nil && !replanned: // not stored
			s.log.Error("all-clear could not be prepared; the emergency is cancelled anyway", "err", err)
		case err != nil: // stored and playing, without its report rows
			s.log.Error("all-clear: its pending report rows could not be written", "rule", rule.ID, "err", err)
			res.AllClear = rule.ID
		default:
			res.AllClear = rule.ID
		}
	}
	if !replanned {
		s.bc.Replan()
	}
	return res, nil
}

// activeEmergencies lists emergencies not cancelled whose validity has not
// ended: boxes still start them, including boxes that come back online.
func (s *Server) activeEmergencies(ctx context.Context) ([]store.Rule, error) {
	rules, err := s.store.Rules(ctx, store.KindOnce, false)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	var out []store.Rule
	for _, r := range rules {
		if r.Priority == protocol.Emergency && now.Before(r.Start.Add(r.Validity)) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *Server) listEmergencies(w http.ResponseWriter, r *http.Request) error {
	active, err := s.activeEmergencies(r.Context())
	if err != nil {
		return err
	}
	out := []Announcement{}
	for _, rule := range active {
		a, err := s.announcement(r.Context(), rule)
		if err != nil {
			return err
		}
		out = append(out, a)
	}
	return writeJSON(w, http.StatusOK, out)
}

func mergeTargets(a, b store.Targets) store.Targets {
	if a.All || b.All {
		return store.Targets{All: true}
	}
	add := func(list []string, more []string) []string {
		for _, m := range more {
			if !slices.Contains(list, m) {
				list = append(list, m)
			}
		}
		return list
	}
	return store.Targets{Groups: add(a.Groups, b.Groups), Devices: add(a.Devices, b.Devices)}
}

// audit writes to the audit log; a failure is logged, never fatal to the
// emergency itself.
func (s *Server) audit(ctx context.Context, actor, action, rule string, t store.Targets, details string) {
	e := store.AuditEntry{At: s.opts.Now().UTC(), Actor: actor, Action: action, Rule: rule, Targets: t.String(), Details: details}
	if err := s.store.AddAudit(ctx, e); err != nil {
		s.log.Error("audit log", "err", err)
	}
}

// auditLog lists the audit log. By default it leaves out the per-request
// entries (action "request"), so it reads as who started and cancelled
// emergencies and why; requests=include adds them, requests=only shows just
// them.
func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) error {
	since, until, err := s.span(r)
	if err != nil {
		return err
	}
	var keep func(store.AuditEntry) bool
	switch q := r.URL.Query().Get("requests"); q {
	case "", "exclude":
		keep = func(e store.AuditEntry) bool { return e.Action != store.AuditRequest }
	case "include":
		keep = func(store.AuditEntry) bool { return true }
	case "only":
		keep = func(e store.AuditEntry) bool { return e.Action == store.AuditRequest }
	default:
		return fail(http.StatusBadRequest, messages.BadRequest, "requests must be exclude, include or only, not "+strconv.Quote(q))
	}
	entries, err := s.store.Audit(r.Context(), since, until)
	if err != nil {
		return err
	}
	out := entries[:0]
	for _, e := range entries {
		if keep(e) {
			out = append(out, e)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func auditDetails(r store.Rule) string {
	d := fmt.Sprintf("tone=%s repeat=%d", r.Tone, r.Repeat)
	if r.Status == protocol.StatusTest {
		d += " exercise"
	}
	if r.Text != "" {
		d += " text=" + strconv.Quote(messages.Short(r.Text))
	}
	return d
}
