package controller

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
	"github.com/loa-commune/loa/triggers"
)

// sensors turns sensor readings into emergencies through the trigger rules.
// Readings are judged on the MQTT goroutine (fast, no I/O); starting and
// cancelling emergencies (text to speech, SQLite) happens on its own
// goroutine, which Run owns.
type sensors struct {
	site   string
	engine *triggers.Engine
	api    *api.Server
	store  *store.Store
	log    *slog.Logger
	now    func() time.Time
	work   chan triggers.Decision

	mu      sync.Mutex
	dropped int
}

func newSensors(site string, rules []triggers.Rule, srv *api.Server, st *store.Store, log *slog.Logger) (*sensors, error) {
	engine, err := triggers.NewEngine(rules)
	if err != nil {
		return nil, err
	}
	return &sensors{site: site, engine: engine, api: srv, store: st, log: log, now: time.Now,
		work: make(chan triggers.Decision, 256)}, nil
}

// restore carries emergencies that sensor rules started across a restart,
// so high water right after a restart does not start a second one.
func (s *sensors) restore(ctx context.Context) error {
	rules, err := s.store.Rules(ctx, store.KindOnce, false)
	if err != nil {
		return err
	}
	var states []triggers.RuleState
	for _, r := range rules {
		name, ok := strings.CutPrefix(r.Source, "sensor:")
		if ok && r.Priority == protocol.Emergency && s.now().Before(r.Start.Add(r.Validity)) {
			states = append(states, triggers.RuleState{Rule: name, Phase: triggers.Active, StartedAt: r.Start})
		}
	}
	if err := s.engine.Restore(states); err != nil && !errors.Is(err, triggers.ErrUnknownRule) {
		return err
	}
	return nil
}

// handle judges one message from a sensor; it never blocks.
func (s *sensors) handle(source string, payload []byte) {
	r, err := triggers.DecodeReading(payload, s.site)
	if err != nil {
		s.log.Warn("ignored a bad sensor message", "source", source, "err", err)
		return
	}
	for _, d := range s.engine.Observe(source, r, s.now()) {
		s.enqueue(d)
	}
}

func (s *sensors) enqueue(d triggers.Decision) {
	select {
	case s.work <- d:
	default:
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
		s.log.Error("sensor decisions are backing up; one was dropped", "rule", d.Rule, "kind", d.Kind)
	}
}

// run carries out decisions and checks for silent sensors every minute,
// until ctx is done.
func (s *sensors) run(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-s.work:
			s.act(ctx, d)
		case <-tick.C:
			for _, d := range s.engine.Tick(s.now()) {
				s.act(ctx, d)
			}
		}
	}
}

// act starts or cancels the rule's emergency and writes every decision,
// notices included, to the audit log.
func (s *sensors) act(ctx context.Context, d triggers.Decision) {
	source := "sensor:" + d.Rule
	details, _ := json.Marshal(struct {
		Kind   triggers.Kind `json:"kind"`
		Field  string        `json:"field"`
		Value  float64       `json:"value"`
		Reason string        `json:"reason"`
	}{d.Kind, d.Field, d.Value, d.Reason})
	entry := store.AuditEntry{At: d.At.UTC(), Actor: source, Action: store.AuditTrigger, Details: string(details)}
	switch d.Kind {
	case triggers.Start:
		a := d.Action
		req := api.AnnounceRequest{Targets: store.Targets{All: a.All, Groups: a.Groups}, Media: a.Media, Text: a.Text,
			Tone: a.Tone, Repeat: a.Repeat, Exercise: a.Exercise}
		started, err := s.api.StartEmergency(ctx, req, source)
		if err != nil {
			s.log.Error("a sensor rule could not start its emergency", "rule", d.Rule, "err", err)
			entry.Details += " error=" + err.Error()
		}
		entry.Rule = started.ID
	case triggers.Cancel:
		res, err := s.api.CancelEmergenciesFrom(ctx, source, source, d.Reason)
		if err != nil {
			s.log.Error("a sensor rule could not cancel its emergency", "rule", d.Rule, "err", err)
		}
		entry.Rule = strings.Join(res.Cancelled, ",")
	}
	if err := s.store.AddAudit(ctx, entry); err != nil {
		s.log.Error("audit log", "err", err)
	}
	s.log.Info("sensor rule", "rule", d.Rule, "kind", d.Kind, "value", d.Value, "reason", d.Reason)
}
