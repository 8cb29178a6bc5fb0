package onair

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// Relay schedules: every occurrence of a cron rule with a relay URL is a
// session of its own, named after its item. Its item reaches the boxes in
// their plans long before it is due (the plans' horizon), so the boxes
// follow its stream in time and it needs no announcement: the controller
// starts the relay a little before the occurrence, and the boxes, cued at
// its start, play from there.
const (
	// relayEarly is how long before an occurrence (on top of the play-out
	// delay) the controller opens the stream: a station takes a moment to
	// answer and ffmpeg to make its first sound (what comes before the
	// occurrence is not played: live.Config.StartAt).
	relayEarly = 10 * time.Second
	// relayRetry is how long a scheduled relay whose station does not
	// answer waits before it tries again, while its occurrence lasts.
	relayRetry = 5 * time.Second
	// scheduleTick is how often the schedules are looked at.
	scheduleTick = time.Second
)

// scheduleLoop starts the occurrences of relay schedules as they come due.
func (m *Manager) scheduleLoop() {
	t := time.NewTicker(scheduleTick)
	defer t.Stop()
	for {
		m.startDue(time.Now())
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startDue starts every relay occurrence due by now (or under way: a
// controller started in the middle of one joins it) that is not running.
func (m *Manager) startDue(now time.Time) {
	if m.opts.Scheduler == nil {
		return
	}
	rules, err := m.store.Rules(m.ctx, store.KindCron, false)
	if err != nil {
		if m.ctx.Err() == nil {
			m.log.Error("live: read the relay schedules", "err", err)
		}
		return
	}
	for _, r := range rules {
		if r.RelayURL == "" || r.Paused {
			continue
		}
		sched, err := m.opts.Scheduler.ParseCron(r.Cron)
		if err != nil {
			continue
		}
		from := now.Add(-r.RelayFor)
		if from.Before(r.CreatedAt) {
			from = r.CreatedAt.Add(-time.Second)
		}
		at := sched.Next(from)
		if at.IsZero() || at.After(now.Add(m.opts.Live.Delay+relayEarly)) {
			continue
		}
		item := scheduler.ItemID(r.ID, at)
		m.mu.Lock()
		_, running := m.running[item]
		done := m.finished[item]
		m.mu.Unlock()
		if running || done {
			continue
		}
		m.startOccurrence(r, item, at)
	}
}

// startOccurrence runs one occurrence of relay schedule r, from its start
// at until at + RelayFor, trying again while the station does not answer.
func (m *Manager) startOccurrence(r store.Rule, item string, at time.Time) {
	s := &session{rule: r, kind: store.SessionRelay, source: r.RelayURL, by: "schedule " + r.ID, item: item, onAir: make(chan struct{}), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancelCause(m.ctx)
	s.record = store.Session{ID: item, Rule: r.ID, Kind: store.SessionRelay, Source: r.RelayURL, StartedBy: s.by,
		Targets: r.Targets, Priority: r.Priority, StartedAt: at}
	m.mu.Lock()
	m.running[item] = s
	m.mu.Unlock()
	m.wg.Go(func() {
		ctx, stop := context.WithDeadline(s.ctx, at.Add(r.RelayFor))
		defer stop()
		opts := m.opts.Live
		opts.Announce = 0 // the plans told the boxes long ago; the sound starts at the occurrence
		var sum live.Summary
		var err error
		for {
			var ls *live.Session
			ls, err = live.New(live.Config{ID: item, Site: m.opts.Site, Signers: m.bc.Signers(), Publisher: m.bc, Options: opts, StartAt: at,
				Recording: m.RecordingPath(item) + ".part", Location: m.opts.Location, Logger: m.log.With("rule", r.ID),
				OnStart: func(time.Time, int) { m.occurrenceOnAir(s) }})
			if err != nil {
				break
			}
			if sum, err = ls.Relay(ctx, r.RelayURL); err == nil || ctx.Err() != nil {
				break
			}
			m.log.Warn("live: a scheduled relay's station does not answer; trying again", "session", item, "err", err)
			t := time.NewTimer(relayRetry)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		m.finishOccurrence(s, sum, err)
	})
}

// occurrenceOnAir records an occurrence going on air: once, though a
// station that drops and comes back puts a new session on air each time.
// Only the occurrence's own goroutine calls it.
func (m *Manager) occurrenceOnAir(s *session) {
	select {
	case <-s.onAir:
		m.log.Info("live: scheduled relay back on air", "session", s.record.ID, "source", s.source)
		return
	default:
	}
	ctx := context.WithoutCancel(s.ctx)
	if err := m.store.AddSession(ctx, s.record); err != nil {
		m.log.Error("live: cannot store the session's record", "session", s.record.ID, "err", err)
	}
	m.log.Info("live: scheduled relay on air", "session", s.record.ID, "source", s.source, "targets", s.rule.Targets.String())
	close(s.onAir)
}

// finishOccurrence records how an occurrence ended, or that it never went
// on air (the boxes then report what they heard: nothing).
func (m *Manager) finishOccurrence(s *session, sum live.Summary, err error) {
	select {
	case <-s.onAir:
		m.finish(s, sum, err)
	default:
		ctx := context.WithoutCancel(s.ctx)
		reason := "the station could not be relayed"
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			reason = fmt.Sprintf("%s: %v", reason, err)
		}
		s.record.EndedAt, s.record.EndReason = time.Now(), reason
		if e := m.store.AddSession(ctx, s.record); e != nil {
			m.log.Error("live: cannot store the session's record", "session", s.record.ID, "err", e)
		}
		m.log.Warn("live: a scheduled relay never went on air", "session", s.record.ID, "reason", reason)
		m.mu.Lock()
		delete(m.running, s.record.ID)
		m.mu.Unlock()
		s.cancel(nil)
		close(s.done)
	}
	m.mu.Lock()
	m.finished[s.record.ID] = true
	m.mu.Unlock()
}
