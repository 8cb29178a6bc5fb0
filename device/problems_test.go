package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// cardSink is a sound card that may be missing (Ready fails) or fail while
// it plays (after failAfter bytes).
type cardSink struct {
	mu        sync.Mutex
	missing   error // Ready's answer
	failAfter int64 // > 0: Play fails after this many bytes
	failWith  error
	played    []string // items played to the end
	readies   atomic.Int64
}

var (
	_ audio.Sink    = (*cardSink)(nil)
	_ OutputChecker = (*cardSink)(nil)
)

func (s *cardSink) Format() audio.Format { return audio.DefaultFormat }
func (s *cardSink) Close() error         { return nil }

func (s *cardSink) Ready() error {
	s.readies.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missing
}

func (s *cardSink) set(missing error, failAfter int64, failWith error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missing, s.failAfter, s.failWith = missing, failAfter, failWith
}

func (s *cardSink) Play(ctx context.Context, name string, pcm io.Reader) error {
	s.mu.Lock()
	failAfter, failWith := s.failAfter, s.failWith
	s.mu.Unlock()
	if failAfter > 0 {
		if _, err := io.CopyN(io.Discard, pcm, failAfter); err != nil {
			return err
		}
		return failWith
	}
	if _, err := io.Copy(io.Discard, pcm); err != nil {
		return err
	}
	s.mu.Lock()
	s.played = append(s.played, name)
	s.mu.Unlock()
	return ctx.Err()
}

// reasonOf is the reason of item's event typ.
func (ctl *controller) reasonOf(item string, typ protocol.EventType) string {
	for _, ev := range ctl.allEvents() {
		if ev.Item == item && ev.Type == typ {
			return ev.Reason
		}
	}
	return ""
}

// problem returns the problem with code in st.
func problem(st protocol.State, code string) (protocol.Problem, bool) {
	for _, p := range st.Problems {
		if p.Code == code {
			return p, true
		}
	}
	return protocol.Problem{}, false
}

// waitProblem polls until the last state has (has=true) or lacks a problem
// with code, and returns that state.
func (ctl *controller) waitProblem(code string, has bool) protocol.State {
	ctl.t.Helper()
	var last protocol.State
	eventually(ctl.t, fmt.Sprintf("problem %s present=%v", code, has), func() bool {
		last, _ = ctl.lastState()
		_, ok := problem(last, code)
		return ok == has
	}, func() string { return fmt.Sprintf("last state %+v", last) })
	return last
}

func TestSoundCardThatCannotBeOpened(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 440, 200*time.Millisecond)
	ms.add(m)
	card := &cardSink{}
	card.set(errors.New(`ALSA error at snd_pcm_open: "default": No such file or directory`), 0, nil)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, sink: card, prepare: func(a *Agent) {
		a.cfg.Output = "alsa:nosuchcard"
		a.outputCheckEvery = 20 * time.Millisecond
	}})

	// Before anything is due the box says its sound card is missing.
	st := ctl.waitState(protocol.StateError)
	p, ok := problem(st, protocol.ProblemSoundCard)
	if !ok || p.Level != protocol.LevelError || p.Subject != "alsa:nosuchcard" || !strings.Contains(p.Detail, "snd_pcm_open") {
		t.Fatalf("state %+v: want the problem soundcard about alsa:nosuchcard", st)
	}
	if !strings.Contains(st.Error, "soundcard: ") {
		t.Fatalf("error %q: older controllers read this line", st.Error)
	}

	// Every item due meanwhile fails with the reason, none is "played".
	a1 := item("a-1", t0.Add(time.Minute), 5*time.Minute, m)
	a2 := item("a-2", t0.Add(2*time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, a1, a2)
	ctl.waitEvent(a2.ID, protocol.EventReady)
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a1.ID, protocol.EventFailed)
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a2.ID, protocol.EventFailed)
	for _, id := range []string{a1.ID, a2.ID} {
		want := `sound card alsa:nosuchcard cannot be opened: ALSA error at snd_pcm_open: "default": No such file or directory`
		if r := ctl.reasonOf(id, protocol.EventFailed); r != want {
			t.Errorf("%s failed with %q, want %q", id, r, want)
		}
		for _, e := range ctl.eventsOf(id) {
			if e == protocol.EventPlayed {
				t.Errorf("%s reported played without a sound card: %v", id, ctl.eventsOf(id))
			}
		}
	}

	// The card comes back: the problem clears without a restart, and the
	// next item plays.
	card.set(nil, 0, nil)
	st = ctl.waitProblem(protocol.ProblemSoundCard, false)
	if st.State != protocol.StateIdle || st.Error != "" {
		t.Fatalf("state %+v after the card came back, want idle without error", st)
	}
	a3 := item("a-3", t0.Add(3*time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, a1, a2, a3)
	ctl.waitEvent(a3.ID, protocol.EventReady)
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a3.ID, protocol.EventPlayed)
}

func TestOutputFailsMidPlay(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 440, time.Second)
	ms.add(m)
	card := &cardSink{}
	card.set(nil, 96000, errors.New("write to sound card: snd_pcm_writei: Input/output error"))
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, sink: card})
	a1 := item("a-1", t0.Add(time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, a1)
	ctl.waitEvent(a1.ID, protocol.EventReady)
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a1.ID, protocol.EventFailed)
	if r := ctl.reasonOf(a1.ID, protocol.EventFailed); !strings.Contains(r, "snd_pcm_writei: Input/output error") {
		t.Fatalf("failed with %q, want the sink's error", r)
	}
	st := ctl.waitState(protocol.StateError)
	if p, ok := problem(st, protocol.ProblemOutput); !ok || !strings.Contains(p.Detail, "Input/output error") {
		t.Fatalf("state %+v: want the problem output", st)
	}

	// A play that works clears it.
	card.set(nil, 0, nil)
	a2 := item("a-2", t0.Add(2*time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, a1, a2)
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a2.ID, protocol.EventPlayed)
	if st := ctl.waitProblem(protocol.ProblemOutput, false); st.State != protocol.StateIdle {
		t.Fatalf("state %+v after a good play", st)
	}
}

func TestFullMemoryCardKeepsPlayingWhatItHas(t *testing.T) {
	ctl, ms, broker := setup(t)
	cached := makeMedia(t, 440, 300*time.Millisecond)
	fresh := makeMedia(t, 660, 300*time.Millisecond)
	ms.add(cached)
	ms.add(fresh)
	var free atomic.Int64
	free.Store(1 << 40)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: func(a *Agent) {
		a.freeSpace = func(string) (int64, error) { return free.Load(), nil }
	}})
	old := item("a-old", t0.Add(10*time.Minute), 5*time.Minute, cached)
	ctl.plan("all", t0, old)
	ctl.waitEvent(old.ID, protocol.EventReady)

	// The card fills up: new media cannot be fetched, and the box says so
	// in plain words.
	free.Store(2<<20 + 1000)
	nu := item("a-new", t0.Add(time.Minute), 2*time.Minute, fresh)
	ctl.plan("all", t0, old, nu)
	st := ctl.waitProblem(protocol.ProblemDiskFull, true)
	p, _ := problem(st, protocol.ProblemDiskFull)
	if p.Value != 2 || p.Limit != 5 || p.Detail != "the memory card is full: 2 MB free, needs 5 MB" || p.Subject != b.cache {
		t.Fatalf("problem %+v", p)
	}
	b.clock.Advance(4 * time.Minute) // a-new's window closes
	ctl.waitEvent(nu.ID, protocol.EventMissed)
	if r := ctl.reasonOf(nu.ID, protocol.EventMissed); !strings.Contains(r, "the memory card is full: 2 MB free, needs 5 MB") {
		t.Fatalf("missed with %q", r)
	}

	// What is in the cache still plays, whole.
	b.clock.Set(old.Start)
	ctl.waitEvent(old.ID, protocol.EventPlayed)
	b.playedWhole(old.ID, cached, 60)

	// Room again: the problem clears with the next fetch.
	free.Store(1 << 40)
	later := item("a-later", t0.Add(20*time.Minute), 5*time.Minute, fresh)
	ctl.plan("all", t0, later)
	ctl.waitEvent(later.ID, protocol.EventReady)
	ctl.waitProblem(protocol.ProblemDiskFull, false)
}

// TestSoundCardThatStoppedRestartsTheAgent: a card that failed after it
// opened cannot be opened again in the process, so the agent restarts
// itself, once, when it has run long enough; before that it only says so.
func TestSoundCardThatStoppedRestartsTheAgent(t *testing.T) {
	stopped := fmt.Errorf("it stopped working (%w)", errors.Join(errors.New("ALSA: no such device"), audio.ErrOutputStopped))
	for _, tc := range []struct {
		name     string
		uptime   time.Duration
		restarts int64
	}{{"after its uptime", 0, 1}, {"too soon after a start", time.Hour, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ctl, ms, broker := setup(t)
			card := &cardSink{}
			card.set(stopped, 0, nil)
			var restarts atomic.Int64
			startBox(t, boxOpts{broker: broker, server: ms.URL, sink: card, prepare: func(a *Agent) {
				a.outputCheckEvery = 10 * time.Millisecond
				a.outputRestartUptime = tc.uptime
				a.restart = func() { restarts.Add(1) }
			}})
			st := ctl.waitState(protocol.StateError)
			if p, ok := problem(st, protocol.ProblemSoundCard); !ok || !strings.Contains(p.Detail, "stopped working") {
				t.Fatalf("state %+v: want the problem soundcard, stopped working", st)
			}
			// Many checks later: one restart at most.
			eventually(t, "20 checks of the card", func() bool { return card.readies.Load() >= 20 },
				func() string { return fmt.Sprintf("%d checks", card.readies.Load()) })
			if got := restarts.Load(); got != tc.restarts {
				t.Fatalf("%d restarts, want %d", got, tc.restarts)
			}
		})
	}
}

// TestFullMemoryCardMakesRoom fills a small memory card with a recording
// no item needs any more: the next recording's fetch finds the card full,
// the box removes the old one, and the new one is fetched and played.
func TestFullMemoryCardMakesRoom(t *testing.T) {
	ctl, ms, broker := setup(t)
	old := makeMedia(t, 440, time.Second)
	fresh := makeMedia(t, 660, 300*time.Millisecond) // needs less room than old frees
	ms.add(old)
	ms.add(fresh)
	var card atomic.Int64 // the card's room for the cache; 0: plenty
	var cache string
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: func(a *Agent) {
		cache = a.cfg.Cache
		a.freeSpace = func(string) (int64, error) {
			if c := card.Load(); c > 0 {
				return c - duBytes(t, cache), nil
			}
			return 1 << 40, nil
		}
	}})
	a1 := item("a-old", t0.Add(time.Minute), 5*time.Minute, old)
	ctl.plan("all", t0, a1)
	ctl.waitEvent(a1.ID, protocol.EventReady)
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a1.ID, protocol.EventPlayed)

	// The card holds the old recording and the reserve kept free, no more.
	card.Store(duBytes(t, cache) + roomReserve)
	a2 := item("a-new", t0.Add(10*time.Minute), 5*time.Minute, fresh)
	ctl.plan("all", t0.Add(time.Minute), a2)
	ctl.waitEvent(a2.ID, protocol.EventReady)
	for _, f := range []string{filepath.Join(cache, "media", old.sha), filepath.Join(cache, "pcm", old.sha+pcmSuffix)} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still in the cache (%v)", f, err)
		}
	}
	ctl.waitProblem(protocol.ProblemDiskFull, false)
	b.clock.Set(a2.Start)
	ctl.waitEvent(a2.ID, protocol.EventPlayed)
	b.playedWhole(a2.ID, fresh, 60)
}

// duBytes is the size of the regular files under dir.
func duBytes(t testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	return n
}

func TestDiskProblemWords(t *testing.T) {
	a := &Agent{cfg: Config{Cache: "/var/lib/loa-agent"}, problems: map[string]protocol.Problem{},
		log: slog.New(slog.NewTextHandler(newTestWriter(t), nil)), clock: &syncedClock{base: newFakeClock(t0)},
		freeSpace: func(string) (int64, error) { return 12 << 20, nil }}
	tests := []struct {
		name, code, words string
		err               error
	}{
		{"no space", protocol.ProblemDiskFull, "the memory card is full: 12 MB free", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}},
		{"quota", protocol.ProblemDiskFull, "the memory card is full: 12 MB free", &fs.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}},
		{"checked before", protocol.ProblemDiskFull, "the memory card is full: 12 MB free, needs 30 MB", fmt.Errorf("fetch: %w", &diskFullError{free: 12<<20 + 5, need: 30<<20 - 7})},
		{"read-only", protocol.ProblemCacheWrite, "the memory card cannot be written (/var/lib/loa-agent)", &fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}},
		{"permission", protocol.ProblemCacheWrite, "the memory card cannot be written (/var/lib/loa-agent)", &fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}},
		{"network", "", "connection refused", errors.New("connection refused")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clear(a.problems)
			err := a.diskProblem(srcMedia, tc.err, t0)
			if !strings.Contains(err.Error(), tc.words) {
				t.Errorf("error %q, want it to say %q", err, tc.words)
			}
			p, ok := a.problems[srcMedia]
			if tc.code == "" {
				if ok {
					t.Errorf("problem %+v for a network error", p)
				}
				return
			}
			if !ok || p.Code != tc.code || p.Level != protocol.LevelError {
				t.Errorf("problem %+v, want %s", p, tc.code)
			}
			if a.diskProblem(srcMedia, nil, t0); len(a.problems) != 0 {
				t.Errorf("a good write left %+v", a.problems)
			}
		})
	}
}

func TestStateFileOnReadOnlyCard(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 440, 200*time.Millisecond)
	ms.add(m)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	a1 := item("a-1", t0.Add(time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, a1)
	ctl.waitEvent(a1.ID, protocol.EventReady)
	// Root may write anywhere, so make state.json's place a folder: its
	// rename fails as on a card that went read-only.
	state := filepath.Join(b.cache, stateFileName)
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	a2 := item("a-2", t0.Add(2*time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, a1, a2)
	st := ctl.waitProblem(protocol.ProblemCacheWrite, true)
	if p, _ := problem(st, protocol.ProblemCacheWrite); p.Subject != b.cache || p.Detail == "" {
		t.Fatalf("problem %+v", p)
	}
	// The box keeps playing from memory, and nothing is lost: the answers
	// still arrive.
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a1.ID, protocol.EventPlayed)
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Minute)
	ctl.waitEvent(a2.ID, protocol.EventPlayed)
	ctl.waitProblem(protocol.ProblemCacheWrite, false)
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("state.json not written again: %v", err)
	}
}

func TestHotProcessor(t *testing.T) {
	ctl, ms, broker := setup(t)
	dir := t.TempDir()
	zone := filepath.Join(dir, "thermal_zone0", "temp")
	if err := os.MkdirAll(filepath.Dir(zone), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(milli string) {
		if err := os.WriteFile(zone, []byte(milli+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("85000")
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: func(a *Agent) {
		a.thermalPath = filepath.Join(dir, "thermal_zone*", "temp")
		a.healthEvery = 10 * time.Millisecond
	}})
	st := ctl.waitProblem(protocol.ProblemHot, true)
	p, _ := problem(st, protocol.ProblemHot)
	if p.Level != protocol.LevelWarning || p.Value != 85 || p.Limit != DefaultHotC {
		t.Fatalf("problem %+v, want a warning at 85 °C over 80", p)
	}
	if st.State != protocol.StateIdle || st.Error != "" {
		t.Fatalf("state %+v: a warm box still works", st)
	}
	// The loop reads the sensor when it wakes (its timers are the fake
	// clock's): move it on while polling. 77 °C is within the hysteresis.
	write("77000")
	for range 5 {
		b.clock.Advance(time.Second)
		time.Sleep(20 * time.Millisecond) // longer than healthEvery, so the tick reads the file
	}
	if st, _ := ctl.lastState(); len(st.Problems) != 1 || st.Problems[0].Value != 77 {
		t.Fatalf("problems %+v at 77 °C, want still hot (clears under 75 °C)", st.Problems)
	}
	write("70000")
	eventually(t, "hot to clear", func() bool {
		b.clock.Advance(time.Second)
		st, _ := ctl.lastState()
		_, hot := problem(st, protocol.ProblemHot)
		return !hot
	}, nil)
}

func TestClockJump(t *testing.T) {
	ctl, ms, broker := setup(t)
	mono := newFakeClock(t0) // the monotonic clock, which never jumps
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: func(a *Agent) { a.mono = mono.Now }})
	ctl.waitState(protocol.StateIdle)
	// Time passes normally: no jump.
	mono.Advance(time.Minute)
	b.clock.Advance(time.Minute)
	ctl.config(t0, protocol.DeviceConfig{Groups: []string{}, Volume: 61})
	eventually(t, "the new volume", func() bool { st, _ := ctl.lastState(); return st.Volume == 61 }, nil)
	if st, _ := ctl.lastState(); len(st.Problems) != 0 {
		t.Fatalf("problems %+v after a minute on both clocks", st.Problems)
	}
	// The wall clock jumps an hour ahead.
	b.clock.Advance(time.Hour)
	st := ctl.waitProblem(protocol.ProblemClockJump, true)
	p, _ := problem(st, protocol.ProblemClockJump)
	if p.Value != 3600 || p.Level != protocol.LevelWarning || p.Detail != "the box's clock jumped forward by 1h0m0s" || !p.Since.Equal(t0.Add(61*time.Minute)) {
		t.Fatalf("problem %+v", p)
	}
	// Shown for a while, then gone.
	mono.Advance(clockJumpShown + time.Minute)
	b.clock.Advance(clockJumpShown + time.Minute)
	ctl.waitProblem(protocol.ProblemClockJump, false)
}
