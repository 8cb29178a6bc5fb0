package lograte_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/lograte"
)

// out is a text log's output, written from several goroutines.
type out struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *out) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *out) lines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := strings.TrimSpace(o.b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (o *out) count(sub string) int {
	n := 0
	for _, l := range o.lines() {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLog(opts lograte.Options) (*slog.Logger, *lograte.Handler, *out, *clock) {
	o := &out{}
	c := &clock{t: time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = c.now
	}
	h := lograte.New(slog.NewTextHandler(o, &slog.HandlerOptions{ReplaceAttr: dropTime}), opts)
	return slog.New(h), h, o, c
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestRepeats(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger, c *clock)
		want []string
	}{
		{"under the burst", func(l *slog.Logger, _ *clock) {
			for range 2 {
				l.Warn("lost the broker", "err", "refused")
			}
		}, []string{
			`level=WARN msg="lost the broker" err=refused`,
			`level=WARN msg="lost the broker" err=refused`,
		}},
		{"over the burst, then the interval ends", func(l *slog.Logger, c *clock) {
			for range 10 {
				l.Warn("lost the broker", "err", "refused")
			}
			c.add(time.Hour)
			l.Warn("lost the broker", "err", "refused")
		}, []string{
			`level=WARN msg="lost the broker" err=refused`,
			`level=WARN msg="lost the broker" err=refused`,
			`level=WARN msg="lost the broker (repeated 8 times)" err=refused repeated=8 within=1h0m0s`,
			`level=WARN msg="lost the broker" err=refused`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, h, o, c := newLog(lograte.Options{Burst: 2, Interval: time.Hour})
			tc.log(l, c)
			h.Close()
			got := o.lines()
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestKindsApart: each kind keeps its own count, and gets its own summary.
func TestKindsApart(t *testing.T) {
	l, h, o, _ := newLog(lograte.Options{Burst: 2, Interval: time.Hour})
	for range 3 {
		l.Warn("a", "n", 1)
		l.Error("a", "n", 1)
		l.Warn("b", "n", 1)
		l.Warn("a", "n", 2)
		l.With("device", "loa-1").Warn("a", "n", 1)
		l.WithGroup("g").Warn("a", "n", 1)
	}
	h.Flush()
	if n := len(o.lines()); n != 6*3 {
		t.Fatalf("%d lines, want 2 and a summary for each of 6 kinds:\n%s", n, strings.Join(o.lines(), "\n"))
	}
	if n := o.count("(repeated 1 times)"); n != 6 {
		t.Fatalf("%d summaries, want 6", n)
	}
}

// TestKeys: with Keys, other attributes do not make a new kind.
func TestKeys(t *testing.T) {
	l, h, o, _ := newLog(lograte.Options{Burst: 1, Interval: time.Hour, Keys: []string{"device"}})
	for i := range 5 {
		l.Warn("time request", "device", "loa-1", "at", i)
	}
	l.Warn("time request", "device", "loa-2", "at", 9)
	h.Flush()
	want := []string{
		`level=WARN msg="time request" device=loa-1 at=0`,
		`level=WARN msg="time request" device=loa-2 at=9`,
		`level=WARN msg="time request (repeated 4 times)" device=loa-1 at=1 repeated=4 within=1h0m0s`,
	}
	if got := o.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSummaryOnTimer: the summary comes when the interval ends, without a
// further record.
func TestSummaryOnTimer(t *testing.T) {
	l, h, o, _ := newLog(lograte.Options{Burst: 1, Interval: 50 * time.Millisecond, Now: time.Now})
	defer h.Close()
	for range 4 {
		l.Info("disk full")
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.count("(repeated 3 times)") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no summary: %q", o.lines())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(o.lines()); n != 2 {
		t.Fatalf("%d lines, want the first and the summary: %q", n, o.lines())
	}
}

// TestConcurrent: many goroutines through the same and derived handlers;
// what passed plus what the summaries count is everything logged.
func TestConcurrent(t *testing.T) {
	l, h, o, _ := newLog(lograte.Options{Burst: 3, Interval: time.Hour})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ll := l.With("part", fmt.Sprint(g%2))
			for range 100 {
				ll.Warn("flood")
			}
		})
	}
	wg.Wait()
	h.Close()
	total := 0
	for _, line := range o.lines() {
		var n int
		if _, err := fmt.Sscanf(line[strings.Index(line, "repeated=")+len("repeated="):], "%d", &n); strings.Contains(line, "repeated=") && err == nil {
			total += n
		} else {
			total++
		}
	}
	if total != 800 || len(o.lines()) != 2*4 {
		t.Fatalf("%d records accounted for in %d lines, want 800 in 8", total, len(o.lines()))
	}
	// After Close every record passes.
	l.Warn("flood", "part", "x")
	if o.count("part=x") != 1 {
		t.Fatal("a record after Close was dropped")
	}
}
