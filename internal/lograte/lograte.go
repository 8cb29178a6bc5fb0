package lograte

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options say how much of one kind of record passes.
type Options struct {
	// Burst is how many records of one kind pass per Interval (5 when 0).
	Burst int
	// Interval is the window of Burst (1 minute when 0).
	Interval time.Duration
	// Keys are the attributes that make two records of one kind, beside
	// level, message and the logger's own attributes; nil: every attribute.
	Keys []string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// maxKinds bounds the kinds counted at once; records of further kinds pass
// uncounted (a flood of distinct lines is not what this is for).
const maxKinds = 1000

// Handler passes records to another Handler within Options' rates.
type Handler struct {
	inner  slog.Handler
	prefix string // the logger's attributes and groups, part of every key
	group  string // the open group, for the keys of the record's attributes
	st     *state
}

// state is shared by a Handler and those made from it.
type state struct {
	opts Options

	mu     sync.Mutex
	kinds  map[string]*kind
	closed bool
}

// kind counts the records of one kind within the current window.
type kind struct {
	start   time.Time
	n       int
	dropped int
	first   slog.Record  // the first dropped record, for the summary
	inner   slog.Handler // the handler it was to go to
	timer   *time.Timer
}

var _ slog.Handler = (*Handler)(nil)

// New wraps inner.
func New(inner slog.Handler, opts Options) *Handler {
	if opts.Burst <= 0 {
		opts.Burst = 5
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{inner: inner, st: &state{opts: opts, kinds: map[string]*kind{}}}
}

// Enabled is the wrapped handler's.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// WithAttrs returns a Handler sharing h's counts.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		writeAttr(&b, h.group, a)
	}
	return &Handler{inner: h.inner.WithAttrs(as), prefix: b.String(), group: h.group, st: h.st}
}

// WithGroup returns a Handler sharing h's counts.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{inner: h.inner.WithGroup(name), prefix: h.prefix, group: h.group + name + ".", st: h.st}
}

// Handle passes r on, or counts it when its kind is over the rate.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	key := h.key(r)
	now := h.st.opts.Now()
	s := h.st
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return h.inner.Handle(ctx, r)
	}
	k := s.kinds[key]
	var summary func()
	if k != nil && now.Sub(k.start) >= s.opts.Interval {
		summary = s.endLocked(key, k) // its timer has not run yet
		k = nil
	}
	if k == nil {
		if len(s.kinds) >= maxKinds {
			s.mu.Unlock()
			if summary != nil {
				summary()
			}
			return h.inner.Handle(ctx, r)
		}
		k = &kind{start: now}
		s.kinds[key] = k
	}
	k.n++
	if k.n <= s.opts.Burst {
		s.mu.Unlock()
		if summary != nil {
			summary()
		}
		return h.inner.Handle(ctx, r)
	}
	k.dropped++
	if k.dropped == 1 {
		k.first, k.inner = r.Clone(), h.inner
		k.timer = time.AfterFunc(k.start.Add(s.opts.Interval).Sub(now), func() { s.expire(key, k) })
	}
	s.mu.Unlock()
	if summary != nil {
		summary()
	}
	return nil
}

// expire ends k's window on its timer.
func (s *state) expire(key string, k *kind) {
	s.mu.Lock()
	var summary func()
	if s.kinds[key] == k {
		summary = s.endLocked(key, k)
	}
	s.mu.Unlock()
	if summary != nil {
		summary()
	}
}

// endLocked forgets k and returns what writes its summary (nil when it
// dropped nothing); call it with s.mu held and the result without.
func (s *state) endLocked(key string, k *kind) func() {
	delete(s.kinds, key)
	if k.timer != nil {
		k.timer.Stop()
	}
	if k.dropped == 0 {
		return nil
	}
	r := slog.NewRecord(s.opts.Now(), k.first.Level, fmt.Sprintf("%s (repeated %d times)", k.first.Message, k.dropped), k.first.PC)
	k.first.Attrs(func(a slog.Attr) bool {
		r.AddAttrs(a)
		return true
	})
	r.AddAttrs(slog.Int("repeated", k.dropped), slog.Duration("within", s.opts.Interval))
	inner := k.inner
	return func() { _ = inner.Handle(context.Background(), r) }
}

// Flush writes the summaries of every kind with dropped records now, and
// starts their windows again.
func (h *Handler) Flush() {
	s := h.st
	s.mu.Lock()
	var summaries []func()
	for key, k := range s.kinds {
		if f := s.endLocked(key, k); f != nil {
			summaries = append(summaries, f)
		}
	}
	s.mu.Unlock()
	for _, f := range summaries {
		f()
	}
}

// Close flushes and passes every record after it through.
func (h *Handler) Close() {
	h.Flush()
	h.st.mu.Lock()
	h.st.closed = true
	h.st.mu.Unlock()
}

// key is r's kind.
func (h *Handler) key(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(0)
	b.WriteString(r.Message)
	b.WriteByte(0)
	b.WriteString(h.prefix)
	keys := h.st.opts.Keys
	r.Attrs(func(a slog.Attr) bool {
		if keys == nil || slices.Contains(keys, a.Key) {
			writeAttr(&b, h.group, a)
		}
		return true
	})
	return b.String()
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	b.WriteString(group)
	b.WriteString(a.Key)
	b.WriteByte('=')
	b.WriteString(a.Value.Resolve().String())
	b.WriteByte(0)
}
