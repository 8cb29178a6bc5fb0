package summarylog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"
)

// line is one logged record: its message and attributes.
type line struct {
	msg   string
	attrs map[string]any
}

// lines keeps what was logged.
type lines struct {
	mu  sync.Mutex
	got []line
	new chan struct{} // a value per record, if not nil
}

func (h *lines) Enabled(context.Context, slog.Level) bool { return true }
func (h *lines) Handle(_ context.Context, r slog.Record) error {
	l := line{msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.mu.Lock()
	h.got = append(h.got, l)
	h.mu.Unlock()
	if h.new != nil {
		h.new <- struct{}{}
	}
	return nil
}
func (h *lines) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lines) WithGroup(string) slog.Handler      { return h }

func (h *lines) all() []line {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]line(nil), h.got...)
}

const (
	first = "dropped a message"
	after = "dropped messages"
)

// newLog is a Log whose timer does not fire during the test: the test
// calls flush itself.
func newLog() (*Log, *lines) {
	h := &lines{}
	return New(slog.New(h), first, after, time.Hour), h
}

func TestFirstLineAtOnce(t *testing.T) {
	l, h := newLog()
	defer l.Stop()
	err := errors.New("too big")
	l.Add("box-1", "oversized", err)
	want := []line{{first, map[string]any{"reason": "oversized", "client": "box-1", "err": err, "then": "a summary every 1h0m0s"}}}
	if got := h.all(); !reflect.DeepEqual(got, want) {
		t.Fatalf("logged %+v, want %+v", got, want)
	}
	l.Add("box-1", "oversized", err)
	l.Add("box-2", "over_rate", nil)
	if n := len(h.all()); n != 1 {
		t.Fatalf("%d lines before the summary, want 1", n)
	}
}

func TestFirstLineWithoutClientOrError(t *testing.T) {
	l, h := newLog()
	defer l.Stop()
	l.SetEvery(time.Minute)
	l.Add("", "bad_connect", nil)
	want := []line{{first, map[string]any{"reason": "bad_connect", "then": "a summary every 1m0s"}}}
	if got := h.all(); !reflect.DeepEqual(got, want) {
		t.Fatalf("logged %+v, want %+v", got, want)
	}
}

func TestSummaryCounts(t *testing.T) {
	l, h := newLog()
	defer l.Stop()
	l.Add("box-9", "over_rate", nil) // the first line: not in the summary
	last := errors.New("last")
	for _, e := range []struct {
		client, reason string
		err            error
	}{
		{"box-2", "over_rate", nil},
		{"box-1", "over_rate", nil},
		{"box-1", "malformed", errors.New("first")},
		{"box-2", "over_rate", last},
		{"", "over_rate", nil}, // counted, but not by client
	} {
		l.Add(e.client, e.reason, e.err)
	}
	l.flush()
	got := h.all()
	want := line{after, map[string]any{"count": int64(5), "malformed": int64(1), "over_rate": int64(4),
		"clients": int64(2), "most": "box-1", "most_count": int64(2), "last_err": last}} // a tie goes to the first by name
	if len(got) != 2 || !reflect.DeepEqual(got[1], want) {
		t.Fatalf("logged %+v, want the first line then %+v", got, want)
	}
	// The counts start again.
	l.Add("box-3", "over_rate", nil)
	l.flush()
	got = h.all()
	want = line{after, map[string]any{"count": int64(1), "over_rate": int64(1), "clients": int64(1), "most": "box-3", "most_count": int64(1)}}
	if len(got) != 3 || !reflect.DeepEqual(got[2], want) {
		t.Fatalf("second summary: logged %+v, want %+v last", got, want)
	}
}

func TestSummaryWithoutClients(t *testing.T) {
	l, h := newLog()
	defer l.Stop()
	l.Add("", "bad_connect", nil)
	l.Add("", "bad_connect", nil)
	l.flush()
	want := line{after, map[string]any{"count": int64(1), "bad_connect": int64(1)}}
	if got := h.all(); len(got) != 2 || !reflect.DeepEqual(got[1], want) {
		t.Fatalf("logged %+v, want %+v last", got, want)
	}
}

func TestQuietIntervalEndsTheTimer(t *testing.T) {
	l, h := newLog()
	defer l.Stop()
	l.Add("box-1", "over_rate", nil)
	l.flush() // nothing since the first line
	if n := len(h.all()); n != 1 {
		t.Fatalf("%d lines after a quiet interval, want only the first", n)
	}
	l.mu.Lock()
	running := l.timer != nil
	l.mu.Unlock()
	if running {
		t.Fatal("the timer still runs after a quiet interval")
	}
	// The next event is logged at once again.
	l.Add("box-2", "over_rate", nil)
	got := h.all()
	if len(got) != 2 || got[1].msg != first || got[1].attrs["client"] != "box-2" {
		t.Fatalf("logged %+v, want a second first line for box-2", got)
	}
}

func TestClientsAreBounded(t *testing.T) {
	l, h := newLog()
	defer l.Stop()
	l.Add("first", "over_rate", nil)
	for i := range maxClients + 500 {
		l.Add(fmt.Sprintf("addr-%04d", i), "over_rate", nil)
	}
	l.Add("addr-0000", "over_rate", nil) // counted: already known
	l.Add("zz-late", "over_rate", nil)   // not by client: too many
	l.flush()
	got := h.all()
	if len(got) != 2 {
		t.Fatalf("logged %+v, want the first line and a summary", got)
	}
	s := got[1].attrs
	if s["count"] != int64(maxClients+502) || s["clients"] != int64(maxClients) || s["most"] != "addr-0000" || s["most_count"] != int64(2) {
		t.Fatalf("summary %+v, want count %d, %d clients, addr-0000 most with 2", s, maxClients+502, maxClients)
	}
}

func TestStop(t *testing.T) {
	l, h := newLog()
	l.Add("box-1", "over_rate", nil)
	l.Add("box-1", "over_rate", nil)
	l.Add("box-2", "oversized", nil)
	l.Stop()
	got := h.all()
	want := line{after, map[string]any{"count": int64(2), "over_rate": int64(1), "oversized": int64(1), "clients": int64(2), "most": "box-1", "most_count": int64(1)}}
	if len(got) != 2 || !reflect.DeepEqual(got[1], want) {
		t.Fatalf("logged %+v, want the first line then %+v", got, want)
	}
	l.mu.Lock()
	stillSet := l.timer.Stop() // false: Stop stopped it already
	l.mu.Unlock()
	if stillSet {
		t.Fatal("Stop left the timer running")
	}
	l.Add("box-3", "over_rate", nil)
	l.flush() // a timer that fired as Stop ran
	l.Stop()
	if n := len(h.all()); n != 2 {
		t.Fatalf("%d lines after Stop, want nothing more", n-2)
	}
}

func TestStopWithNothingLeft(t *testing.T) {
	l, h := newLog()
	l.Stop()
	l.Add("box-1", "over_rate", nil)
	if got := h.all(); len(got) != 0 {
		t.Fatalf("logged %+v after Stop", got)
	}
}

// TestTimer runs the real timer: a summary an interval after the first
// line, then nothing once an interval passes quietly.
func TestTimer(t *testing.T) {
	h := &lines{new: make(chan struct{}, 10)}
	every := 20 * time.Millisecond
	l := New(slog.New(h), first, after, every)
	defer l.Stop()
	next := func() line {
		t.Helper()
		select {
		case <-h.new:
		case <-time.After(10 * time.Second):
			t.Fatal("no line within 10s")
		}
		got := h.all()
		return got[len(got)-1]
	}
	start := time.Now()
	l.Add("box-1", "over_rate", nil)
	l.Add("box-1", "over_rate", nil)
	l.Add("box-2", "over_rate", nil)
	if got := next(); got.msg != first {
		t.Fatalf("first line %+v", got)
	}
	got := next()
	if got.msg != after || got.attrs["count"] != int64(2) {
		t.Fatalf("summary %+v, want a count of 2", got)
	}
	if d := time.Since(start); d < every {
		t.Fatalf("summary after %v, before the interval of %v", d, every)
	}
	// A quiet interval ends the timer and logs nothing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		running := l.timer != nil
		l.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timer still runs after 10s without events")
		}
		time.Sleep(every)
	}
	if n := len(h.all()); n != 2 {
		t.Fatalf("%d lines, want 2: nothing for the quiet interval", n)
	}
}
