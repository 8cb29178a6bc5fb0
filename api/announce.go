package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// ParseTime reads a time as staff write it, in the site's zone: RFC 3339,
// "2006-01-02 15:04[:05]", "2006-01-02T15:04[:05]", or "15:04" (today).
func ParseTime(v string, loc *time.Location, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			n := now.In(loc)
			return time.Date(n.Year(), n.Month(), n.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read time %q", v)
}

func newID(prefix string) string {
	var b [5]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// rule validates a request into a rule (not stored yet).
func (s *Server) rule(ctx context.Context, req AnnounceRequest, kind string) (store.Rule, error) {
	now := s.opts.Now()
	r := store.Rule{Kind: kind, Name: req.Name, Targets: req.Targets, Media: req.Media, Repeat: req.Repeat,
		Gap: time.Duration(req.GapSec) * time.Second, Validity: s.opts.Validity, Text: strings.TrimSpace(req.Text),
		Tone: req.Tone, Status: protocol.StatusLive, Source: "cli", CreatedAt: now.UTC()}
	if req.Exercise {
		r.Status = protocol.StatusTest
	}
	if r.Repeat == 0 {
		r.Repeat = 1
	}
	if r.Repeat < 1 || r.Repeat > protocol.MaxRepeat {
		return r, fail(http.StatusBadRequest, messages.BadRepeat, protocol.MaxRepeat)
	}
	r.Priority = protocol.Normal
	if req.Priority != "" {
		p, err := protocol.ParsePriority(req.Priority)
		if err != nil {
			return r, fail(http.StatusBadRequest, messages.BadPriority, err.Error())
		}
		r.Priority = p
	}
	if !protocol.ValidTone(r.Tone) {
		return r, fail(http.StatusBadRequest, messages.BadTone, r.Tone)
	}
	switch {
	case req.Relay != "":
		if err := s.relayRule(&r, req, kind); err != nil {
			return r, err
		}
	case req.Media != "":
		if _, err := s.store.MediaByID(ctx, req.Media); err != nil {
			return r, notFound(err, messages.UnknownMedia, req.Media)
		}
	case r.Text == "" && r.Tone == "":
		return r, fail(http.StatusBadRequest, messages.NoMedia)
	}
	if err := s.checkTargets(ctx, req.Targets); err != nil {
		return r, err
	}
	loc := s.bc.Scheduler().Location()
	switch kind {
	case store.KindCron:
		if _, err := s.bc.Scheduler().ParseCron(req.Cron); err != nil {
			return r, fail(http.StatusBadRequest, messages.BadCron, err.Error())
		}
		r.Cron = strings.TrimSpace(req.Cron)
		r.ID = newID("s-")
	default:
		// "Now" starts on the next whole second at least syncLead away, so
		// every box has the plan before the start and starts together; an
		// emergency starts at once.
		r.Start = now.UTC().Truncate(time.Second)
		if r.Priority != protocol.Emergency {
			r.Start = now.UTC().Add(syncLead).Truncate(time.Second).Add(time.Second)
		}
		if req.At != "" {
			t, err := ParseTime(req.At, loc, now)
			if err != nil {
				return r, fail(http.StatusBadRequest, messages.BadTime, req.At)
			}
			if len(req.At) <= len("15:04:05") && t.Before(now.Add(-time.Minute)) {
				t = t.AddDate(0, 0, 1) // "06:00" means the next 06:00
			}
			if t.Before(now.Add(-time.Minute)) {
				return r, fail(http.StatusBadRequest, messages.TimeInPast, t.In(loc).Format("2006-01-02 15:04"))
			}
			r.Start = t.UTC().Truncate(time.Second)
		}
		r.ID = newID("a-")
	}
	return r, nil
}

// relayRule makes r a schedule that relays req.Relay for req.ForSec at
// every occurrence (the controller's OnAir runs each one).
func (s *Server) relayRule(r *store.Rule, req AnnounceRequest, kind string) error {
	url := strings.TrimSpace(req.Relay)
	switch {
	case s.opts.OnAir == nil:
		return fail(http.StatusNotImplemented, messages.BadRequest, "this controller runs no live sessions")
	case kind != store.KindCron:
		return fail(http.StatusBadRequest, messages.BadRequest, "to relay a stream now, use `loa relay URL`")
	case !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://"):
		return fail(http.StatusBadRequest, messages.RelayBadURL, url)
	case req.Media != "" || r.Text != "" || r.Tone != "" || r.Repeat != 1:
		return fail(http.StatusBadRequest, messages.BadRequest, "a relay plays the stream only: leave out --media, --file, --text and --repeat")
	}
	length := time.Duration(req.ForSec) * time.Second
	if longest := s.opts.OnAir.MaxLength(); length <= 0 || length > longest {
		return fail(http.StatusBadRequest, messages.BadLength, longest, length.String())
	}
	r.RelayURL, r.RelayFor, r.Validity = url, length, length
	r.StreamChannels = s.opts.OnAir.Channels()
	r.Text = "relay: " + url
	return nil
}

// syncLead is the least time between a "now" announcement and its start:
// enough for the plan to reach boxes on a slow link and for their sound
// cards to open, so that neighbouring speakers start the same sample
// together instead of as the plan reaches each (an echo). Emergencies do
// not wait.
const syncLead = time.Second

func (s *Server) checkTargets(ctx context.Context, t store.Targets) error {
	if !t.All && len(t.Groups) == 0 && len(t.Devices) == 0 {
		return fail(http.StatusBadRequest, messages.NoTarget)
	}
	if t.All && (len(t.Groups) > 0 || len(t.Devices) > 0) {
		return fail(http.StatusBadRequest, messages.BadRequest, "--all already means every box; leave out --group and --device")
	}
	for _, g := range t.Groups {
		if _, err := s.store.GroupMembers(ctx, g); err != nil {
			return notFound(err, messages.UnknownGroup, g, g)
		}
	}
	for _, d := range t.Devices {
		if _, err := s.store.Device(ctx, d); err != nil {
			return notFound(err, messages.UnknownDevice, d, d)
		}
	}
	return nil
}

// targetDevices resolves targets to box ids, sorted.
func (s *Server) targetDevices(ctx context.Context, t store.Targets) ([]string, error) {
	return s.store.TargetDevices(ctx, t)
}

func (s *Server) announce(w http.ResponseWriter, r *http.Request) error {
	return s.createRule(w, r, store.KindOnce)
}

func (s *Server) addSchedule(w http.ResponseWriter, r *http.Request) error {
	return s.createRule(w, r, store.KindCron)
}

// createRule stores an announcement or a schedule and asks for a replan.
// An announcement's one item gets its pending deliveries at once, so
// `--wait` and `loa report` know every box it waits for.
func (s *Server) createRule(w http.ResponseWriter, r *http.Request, kind string) error {
	var req AnnounceRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Tone != "" && req.Priority != protocol.Emergency.String() {
		return fail(http.StatusBadRequest, messages.BadRequest, "an alert tone is for emergencies: use `loa emergency`")
	}
	rule, err := s.rule(r.Context(), req, kind)
	if err != nil {
		return err
	}
	return s.addRule(w, r, rule)
}

// addRule renders what the rule says (text to speech, exercise prefix),
// stores it and asks for a replan.
func (s *Server) addRule(w http.ResponseWriter, r *http.Request, rule store.Rule) error {
	a, err := s.storeRule(r.Context(), rule)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, a)
}

// storeRule prepares the rule's media, stores it (auditing emergencies)
// and asks for a replan. The answer names the boxes targeted but carries no
// report rows: at that moment every one is pending (GET of the announcement
// lists them).
//
// A one-off rule's pending report rows are written once, by the store, after
// the rule and the request for a replan (boxes first), and before this
// returns: so a GET or `loa report` right after the answer shows every box
// pending, whether the replan has run yet or not, and the replan does not
// write them again (see store.AddRuleThen for the rest: a box answering first,
// a crash in between).
func (s *Server) storeRule(ctx context.Context, rule store.Rule) (Announcement, error) {
	if err := s.prepareMedia(ctx, &rule); err != nil {
		return Announcement{}, err
	}
	if err := s.store.AddRuleThen(ctx, rule, s.bc.Replan); err != nil {
		return Announcement{}, err
	}
	if rule.Priority == protocol.Emergency {
		s.audit(ctx, staffActor(ctx, rule.Source), store.AuditEmergencyStart, rule.ID, rule.Targets, auditDetails(rule))
	}
	return s.summary(ctx, rule)
}

// summary describes a rule and the boxes it targets, without its report
// rows.
func (s *Server) summary(ctx context.Context, rule store.Rule) (Announcement, error) {
	devices, err := s.targetDevices(ctx, rule.Targets)
	if err != nil {
		return Announcement{}, err
	}
	a := Announcement{ID: rule.ID, Kind: rule.Kind, Name: rule.Name, Cron: rule.Cron, Start: rule.Start,
		Targets: rule.Targets, Media: rule.Media, Priority: rule.Priority.String(), Repeat: rule.Repeat,
		Tone: rule.Tone, Text: rule.Text, Exercise: rule.Status == protocol.StatusTest, Source: rule.Source,
		Paused: rule.Paused, Cancelled: !rule.CancelledAt.IsZero(), Created: rule.CreatedAt.UTC(), Devices: devices}
	if rule.Kind == store.KindCron && !rule.Paused {
		if sched, err := s.bc.Scheduler().ParseCron(rule.Cron); err == nil {
			a.Next = sched.Next(s.opts.Now()).UTC()
		}
	}
	return a, nil
}

// announcement is the summary of a rule with its report rows.
func (s *Server) announcement(ctx context.Context, rule store.Rule) (Announcement, error) {
	a, err := s.summary(ctx, rule)
	if err != nil {
		return a, err
	}
	a.Deliveries, err = s.store.Deliveries(ctx, rule.ID)
	return a, err
}

func (s *Server) getAnnouncement(w http.ResponseWriter, r *http.Request) error {
	rule, err := s.store.RuleByID(r.Context(), r.PathValue("id"))
	if err != nil {
		return notFound(err, messages.UnknownRule, r.PathValue("id"))
	}
	a, err := s.announcement(r.Context(), rule)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

func (s *Server) cancelAnnouncement(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.store.CancelRule(r.Context(), id, s.opts.Now()); err != nil {
		return notFound(err, messages.UnknownRule, id)
	}
	s.bc.Replan()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	rules, err := s.store.Rules(r.Context(), store.KindCron, false)
	if err != nil {
		return err
	}
	out := []Announcement{}
	for _, rule := range rules {
		a, err := s.summary(r.Context(), rule)
		if err != nil {
			return err
		}
		out = append(out, a)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) removeSchedule(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	rule, err := s.store.RuleByID(r.Context(), id)
	if err != nil || rule.Kind != store.KindCron {
		return fail(http.StatusNotFound, messages.UnknownRule, id)
	}
	return s.cancelAnnouncement(w, r)
}

func (s *Server) pauseSchedule(paused bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		if err := s.store.SetPaused(r.Context(), id, paused); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fail(http.StatusNotFound, messages.UnknownRule, id)
			}
			return err
		}
		s.bc.Replan()
		rule, err := s.store.RuleByID(r.Context(), id)
		if err != nil {
			return err
		}
		a, err := s.summary(r.Context(), rule)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, a)
	}
}
