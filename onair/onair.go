package onair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// Broadcaster is what sessions need of the controller's MQTT side.
type Broadcaster interface {
	live.Publisher
	Signers() []*protocol.Signer
	Replan()
}

// Options configure a Manager.
type Options struct {
	Live     live.Options
	Site     string
	Location *time.Location
	// Dir is where recordings are kept (<data>/recordings).
	Dir string
	// FeedWait is how long a live session waits for its sound before it is
	// given up (nothing went on air).
	FeedWait time.Duration
	// Scheduler reads relay schedules' cron rules in the site's zone; nil
	// runs no relay schedules.
	Scheduler *scheduler.Scheduler
}

// Manager runs the live sessions of one controller.
type Manager struct {
	opts  Options
	store *store.Store
	bc    Broadcaster
	log   *slog.Logger

	mu      sync.Mutex
	running map[string]*session // by rule id; a relay schedule's occurrences by item id
	// finished are the occurrences of relay schedules run since the start.
	finished map[string]bool
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ api.OnAir = (*Manager)(nil)

// New returns a Manager and starts the pruning of old recordings; Close
// stops it.
func New(opts Options, st *store.Store, bc Broadcaster, log *slog.Logger) (*Manager, error) {
	if err := opts.Live.Validate(); err != nil {
		return nil, err
	}
	if opts.FeedWait <= 0 {
		opts.FeedWait = 30 * time.Second
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("recordings folder: %w", err)
	}
	m := &Manager{opts: opts, store: st, bc: bc, log: log, running: map[string]*session{}, finished: map[string]bool{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Go(m.pruneLoop)
	m.wg.Go(m.scheduleLoop)
	return m, nil
}

// Close stops every session (each ends as stopped, and its end is
// recorded) and waits for them.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close live sessions: %w", ctx.Err())
	}
}

// Channels is how many channels a relay's sound has (api.OnAir).
func (m *Manager) Channels() int { return m.opts.Live.Channels }

// Delay is the play-out delay (api.OnAir).
func (m *Manager) Delay() time.Duration { return m.opts.Live.Delay }

// MaxLength is the longest a session may last.
func (m *Manager) MaxLength() time.Duration { return m.opts.Live.MaxSession }

// RecordingPath is where session id's recording is kept (api.OnAir).
func (m *Manager) RecordingPath(id string) string {
	return filepath.Join(m.opts.Dir, id+".opus")
}

// session is one session the Manager runs.
type session struct {
	rule   store.Rule
	kind   string
	source string
	by     string

	item string // the session's id once on air (guarded by Manager.mu)

	ctx    context.Context
	cancel context.CancelCauseFunc
	live   *live.Session
	fed    bool          // a live session's sound has come (Feed called)
	onAir  chan struct{} // closed when the first packet is stamped and the books are kept
	done   chan struct{} // closed when the session has ended and its end is recorded
	record store.Session // the record: set on air, final once done
	err    error         // why it never went on air
}

// errStoppedBy is the cause of a session stopped by staff.
type errStoppedBy struct{ by string }

func (e errStoppedBy) Error() string { return "stopped by " + e.by }

// Start puts a session on air: a relay once its stream gives sound, a live
// session at once, waiting for Feed.
func (m *Manager) Start(ctx context.Context, rule store.Rule, kind, source, by string) (store.Session, error) {
	s := &session{rule: rule, kind: kind, source: source, by: by, onAir: make(chan struct{}), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancelCause(m.ctx)
	ls, err := live.New(live.Config{
		ID: rule.ID, Site: m.opts.Site, Signers: m.bc.Signers(), Publisher: m.bc, Options: m.opts.Live,
		// Named after the rule until the session's id is known; renamed at the end.
		Recording: filepath.Join(m.opts.Dir, rule.ID+".rec"),
		Location:  m.opts.Location, Logger: m.log.With("rule", rule.ID),
		OnStart: func(start time.Time, channels int) { m.onAir(s, start, channels) },
	})
	if err != nil {
		return store.Session{}, err
	}
	s.live = ls
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return store.Session{}, errors.New("the controller is shutting down")
	}
	m.running[rule.ID] = s
	m.mu.Unlock()

	switch kind {
	case store.SessionRelay:
		m.wg.Go(func() {
			ctx, stop := m.forLength(s)
			defer stop()
			sum, err := ls.Relay(ctx, source)
			m.finish(s, sum, err)
		})
		select {
		case <-s.onAir:
			return s.record, nil
		case <-s.done:
			return store.Session{}, relayError(s.err, source)
		case <-ctx.Done():
			s.cancel(ctx.Err())
			<-s.done
			return store.Session{}, ctx.Err()
		}
	default:
		// Nothing is on air until the sound comes: the record says so.
		m.wg.Go(func() { m.awaitFeed(s) })
		return store.Session{ID: rule.ID, Rule: rule.ID, Kind: kind, Source: source, StartedBy: by,
			Targets: rule.Targets, Priority: rule.Priority}, nil
	}
}

// awaitFeed gives a live session up when its sound does not come in time.
func (m *Manager) awaitFeed(s *session) {
	t := time.NewTimer(m.opts.FeedWait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
	m.mu.Lock()
	fed := s.fed
	if !fed {
		s.fed = true // a late Feed finds it over
	}
	m.mu.Unlock()
	if !fed {
		m.finish(s, live.Summary{}, &api.SessionError{Key: messages.LiveNoSound, Args: []any{m.opts.FeedWait}, Status: http.StatusRequestTimeout})
	}
}

// Feed plays a live session's Ogg Opus sound from r until r ends, the
// session is stopped or reaches its length.
func (m *Manager) Feed(ctx context.Context, id string, r io.Reader) (store.Session, error) {
	m.mu.Lock()
	s := m.running[id]
	switch {
	case s == nil:
		m.mu.Unlock()
		if _, err := m.store.SessionsOfRule(ctx, id); err == nil {
			return store.Session{}, fmt.Errorf("%s: %w", id, api.ErrSessionOver)
		}
		return store.Session{}, fmt.Errorf("%s: %w", id, api.ErrNoSuchSession)
	case s.kind != store.SessionLive || s.fed:
		m.mu.Unlock()
		return store.Session{}, fmt.Errorf("%s: %w", id, api.ErrSessionOver)
	}
	s.fed = true
	m.mu.Unlock()
	// The request's end (the speaker's connection dropped) ends the
	// session too, as does Stop or Close.
	runCtx, stopRun := m.forLength(s)
	defer stopRun()
	stop := context.AfterFunc(ctx, stopRun)
	defer stop()
	sum, err := s.live.Run(runCtx, r)
	if err != nil && errors.Is(err, live.ErrNotAStream) {
		err = &api.SessionError{Key: messages.LiveBadAudio, Args: []any{strings.TrimPrefix(err.Error(), live.ErrNotAStream.Error()+": ")}, Status: http.StatusBadRequest}
	}
	m.finish(s, sum, err)
	if s.err != nil {
		return store.Session{}, s.err
	}
	return s.record, nil
}

// forLength is the context a session runs under: it ends at Stop or Close,
// and once the session has had its length (the rule's validity, counted from
// now: the sound starts an announcement and a delay later, and a few
// seconds more or less matter less than cutting the last words).
func (m *Manager) forLength(s *session) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.rule.Validity+m.opts.Live.Announce)
}

// Stop ends a session on air.
func (m *Manager) Stop(ctx context.Context, id, by string) (store.Session, error) {
	m.mu.Lock()
	s := m.running[id]
	if s == nil { // named by its session id, or a relay schedule by its rule
		for _, x := range m.running {
			if x.item == id || x.rule.ID == id {
				s = x
			}
		}
	}
	m.mu.Unlock()
	if s == nil {
		list, err := m.store.SessionsOfRule(ctx, id)
		if err != nil || len(list) == 0 {
			return store.Session{}, fmt.Errorf("%s: %w", id, api.ErrNoSuchSession)
		}
		return store.Session{}, fmt.Errorf("%s: %w", id, api.ErrSessionOver)
	}
	s.cancel(errStoppedBy{by})
	select {
	case <-s.done:
	case <-ctx.Done():
		return store.Session{}, ctx.Err()
	}
	if s.err != nil {
		return store.Session{ID: id, Rule: id, Kind: s.kind, Source: s.source, StartedBy: s.by, Targets: s.rule.Targets,
			EndReason: errStoppedBy{by}.Error() + " before it went on air"}, nil
	}
	return s.record, nil
}

// onAir keeps the books when the first packet arrives, Announce before the
// sound starts: the rule (boxes learn of the session from their plans and
// subscribe to its stream) and the record.
func (m *Manager) onAir(s *session, start time.Time, channels int) {
	r := s.rule
	r.Start, r.StreamChannels = start.UTC(), channels
	// The item is named by the whole second, like every item; the boxes
	// place each frame by its own stamp.
	item := scheduler.ItemID(r.ID, r.Start.Truncate(time.Second))
	s.record = store.Session{ID: item, Rule: r.ID, Kind: s.kind, Source: s.source, StartedBy: s.by, Targets: r.Targets,
		Priority: r.Priority, StartedAt: r.Start}
	m.mu.Lock()
	s.item = item
	m.mu.Unlock()
	ctx := context.WithoutCancel(s.ctx)
	if err := m.store.AddRuleThen(ctx, r, m.bc.Replan); err != nil {
		m.log.Error("live: cannot store the session's rule; boxes will not play it", "rule", r.ID, "err", err)
	} else if err := m.store.AddSession(ctx, s.record); err != nil {
		m.log.Error("live: cannot store the session's record", "session", item, "err", err)
	}
	if err := m.store.AddAudit(ctx, store.AuditEntry{At: time.Now(), Actor: s.by, Action: "session_start", Rule: r.ID, Targets: r.Targets.String(),
		Details: fmt.Sprintf("%s %s (%s), priority %s", s.kind, item, s.source, r.Priority)}); err != nil {
		m.log.Error("live: audit", "err", err)
	}
	m.log.Info("live: on air", "session", item, "kind", s.kind, "source", s.source, "by", s.by, "targets", r.Targets.String(), "start", r.Start)
	close(s.onAir)
}

// finish records how a session ended (or why it never went on air).
func (m *Manager) finish(s *session, sum live.Summary, err error) {
	defer func() {
		m.mu.Lock()
		if m.running[s.rule.ID] == s {
			delete(m.running, s.rule.ID)
		}
		if m.running[s.record.ID] == s {
			delete(m.running, s.record.ID)
		}
		m.mu.Unlock()
		s.cancel(nil)
		close(s.done)
	}()
	select {
	case <-s.onAir:
	default:
		if err == nil {
			err = errors.New("the session ended before it went on air")
		}
		s.err = err
		m.log.Info("live: the session never went on air", "rule", s.rule.ID, "kind", s.kind, "source", s.source, "err", err)
		return
	}
	reason := sum.Reason
	if cause := context.Cause(s.ctx); sum.Ended == live.EndStopped && cause != nil {
		var by errStoppedBy
		switch {
		case errors.As(cause, &by):
			reason = by.Error()
		case m.ctx.Err() != nil:
			reason = "the controller stopped"
		case errors.Is(cause, context.Canceled):
			reason = "the speaker's connection ended"
		}
	}
	if err != nil && reason == "" {
		reason = err.Error()
	}
	ctx := context.WithoutCancel(s.ctx)
	end := store.SessionEnd{At: sum.End, Reason: reason, Packets: sum.Packets, Bytes: sum.Bytes, Gaps: int64(sum.Gaps)}
	if end.At.IsZero() {
		end.At = time.Now()
	}
	if e := m.store.EndSession(ctx, s.record.ID, end); e != nil {
		m.log.Error("live: cannot record the session's end", "session", s.record.ID, "err", e)
	}
	m.bc.Replan() // the plans now say where the sound ends
	s.record.EndedAt, s.record.EndReason = end.At, reason
	s.record.Packets, s.record.Bytes, s.record.Gaps = end.Packets, end.Bytes, end.Gaps
	if sum.Recording != "" {
		if e := os.Rename(sum.Recording, m.RecordingPath(s.record.ID)); e != nil {
			m.log.Error("live: cannot keep the recording", "session", s.record.ID, "err", e)
		}
	} else if sum.RecordingError != nil {
		m.log.Warn("live: the session was not recorded", "session", s.record.ID, "err", sum.RecordingError)
	}
	if e := m.store.AddAudit(ctx, store.AuditEntry{At: time.Now(), Actor: s.by, Action: "session_end", Rule: s.rule.ID, Targets: s.rule.Targets.String(),
		Details: fmt.Sprintf("%s %s: %s", s.kind, s.record.ID, reason)}); e != nil {
		m.log.Error("live: audit", "err", e)
	}
	m.log.Info("live: ended", "session", s.record.ID, "reason", reason, "packets", sum.Packets, "bytes", sum.Bytes, "gaps", sum.Gaps)
}

// relayError says why a relay never went on air.
func relayError(err error, url string) error {
	detail := func(sentinel error) string { return strings.TrimPrefix(err.Error(), sentinel.Error()+": ") }
	switch {
	case err == nil:
		return errors.New("the relay ended before it went on air")
	case errors.Is(err, live.ErrBadURL):
		return &api.SessionError{Key: messages.RelayBadURL, Args: []any{url}, Status: http.StatusBadRequest}
	case errors.Is(err, live.ErrSourceUnreachable):
		return &api.SessionError{Key: messages.RelayUnreachable, Args: []any{url, detail(live.ErrSourceUnreachable)}, Status: http.StatusBadGateway}
	case errors.Is(err, live.ErrNotAStream):
		return &api.SessionError{Key: messages.RelayNotAStream, Args: []any{url, detail(live.ErrNotAStream)}, Status: http.StatusUnprocessableEntity}
	case errors.Is(err, ingest.ErrNoFFmpeg):
		return &api.SessionError{Key: messages.NoFFmpeg, Args: []any{err.Error()}, Status: http.StatusServiceUnavailable}
	}
	return err
}

// pruneLoop removes recordings older than RecordingsKeepDays, at start and
// every hour.
func (m *Manager) pruneLoop() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		m.prune(time.Now())
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// prune removes the recordings last written before now minus the keeping
// time.
func (m *Manager) prune(now time.Time) {
	cutoff := now.AddDate(0, 0, -m.opts.Live.RecordingsKeepDays)
	entries, err := os.ReadDir(m.opts.Dir)
	if err != nil {
		m.log.Warn("live: cannot read the recordings folder", "err", err)
		return
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".opus") {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(m.opts.Dir, e.Name())); err != nil {
			m.log.Warn("live: cannot remove an old recording", "file", e.Name(), "err", err)
			continue
		}
		m.log.Info("live: removed a recording past its keeping time", "file", e.Name(), "days", m.opts.Live.RecordingsKeepDays)
	}
}
