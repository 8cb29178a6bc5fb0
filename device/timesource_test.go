package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/timesource"
)

// No test reads this machine's RTC, modem or NTP state: a box under test
// has only the saved time in its cache unless the test gives it more.
func init() {
	newClockSources = func(cfg Config) *clockSources { return &clockSources{saved: savedTimeIn(cfg.Cache)} }
}

// fakeBoot is the kernel's boot id and boot clock as a test sets them.
type fakeBoot struct {
	mu sync.Mutex
	id string
	up time.Duration
}

func (f *fakeBoot) read() (string, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.id, f.up, nil
}

func (f *fakeBoot) reboot(id string) {
	f.mu.Lock()
	f.id, f.up = id, 30*time.Second
	f.mu.Unlock()
}

// fakeRTCDevice makes a file standing for /dev/rtc0 and the kernel's
// since_epoch for it, reading at.
func fakeRTCDevice(t *testing.T, at time.Time) *timesource.RTCClock {
	t.Helper()
	dir := t.TempDir()
	dev, sys := filepath.Join(dir, "rtc0"), filepath.Join(dir, "sys")
	if err := os.MkdirAll(filepath.Join(sys, "rtc0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "rtc0", "since_epoch"), fmt.Appendf(nil, "%d\n", at.Unix()), 0o644); err != nil {
		t.Fatal(err)
	}
	return &timesource.RTCClock{Device: dev, Sysfs: sys}
}

// fakeModem puts an mmcli that reports the network time at in PATH.
func fakeModem(t *testing.T, at time.Time) *timesource.Modem {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\necho 'modem.time.current : %s'\necho 'modem.timezone.current : 420'\n", at.In(time.FixedZone("", 7*3600)).Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(dir, "mmcli"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":/usr/bin:/bin")
	return &timesource.Modem{}
}

// fakeGPS is a file of NMEA sentences as a receiver with a fix sends them at.
func fakeGPS(t *testing.T, at time.Time) *timesource.GPSReceiver {
	t.Helper()
	body := fmt.Sprintf("GPRMC,%s.00,A,2105.1234,N,10551.5678,E,0.01,,%s,,,A", at.UTC().Format("150405"), at.UTC().Format("020106"))
	var x byte
	for i := 0; i < len(body); i++ {
		x ^= body[i]
	}
	p := filepath.Join(t.TempDir(), "ttyUSB0")
	lines := "$GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99*30\r\n" + fmt.Sprintf("$%s*%02X\r\n", body, x)
	if err := os.WriteFile(p, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	return &timesource.GPSReceiver{Device: p}
}

// TestRebootWithoutNetwork: a box gets a plan with a timed item (6:05) and
// is switched off. It boots again with no network at all, its clock in 1970
// (a Pi without an RTC), or at a plausible but old time (fake-hwclock), and
// with one time source or none. With an RTC, the modem's network time or a
// GPS it plays the item on time; with only the time it saved (a lower bound
// after a reboot) or nothing, it does not play it, stays waiting for the
// time and says why.
func TestRebootWithoutNetwork(t *testing.T) {
	start := t0.Add(5 * time.Minute)
	tests := []struct {
		name    string
		boot    time.Time // the box's clock after the reboot
		sources func(t *testing.T, cache string, boot *fakeBoot) *clockSources
		source  string // reported
		plays   bool
	}{
		{"rtc", time.Unix(12, 0), func(t *testing.T, cache string, _ *fakeBoot) *clockSources {
			return &clockSources{exact: []timesource.Reader{fakeRTCDevice(t, t0)}, saved: savedTimeIn(cache)}
		}, timesource.RTC, true},
		{"nitz", time.Unix(12, 0), func(t *testing.T, cache string, _ *fakeBoot) *clockSources {
			return &clockSources{exact: []timesource.Reader{&timesource.RTCClock{Device: filepath.Join(cache, "no-rtc")}, fakeModem(t, t0)}, saved: savedTimeIn(cache)}
		}, timesource.NITZ, true},
		{"gps", time.Unix(12, 0), func(t *testing.T, cache string, _ *fakeBoot) *clockSources {
			return &clockSources{exact: []timesource.Reader{&timesource.RTCClock{Device: filepath.Join(cache, "no-rtc")}, fakeGPS(t, t0)}, saved: savedTimeIn(cache)}
		}, timesource.GPS, true},
		{"rtc before nitz", time.Unix(12, 0), func(t *testing.T, cache string, _ *fakeBoot) *clockSources {
			return &clockSources{exact: []timesource.Reader{fakeRTCDevice(t, t0), fakeModem(t, t0.Add(-time.Hour))}, saved: savedTimeIn(cache)}
		}, timesource.RTC, true},
		{"an rtc that lost its battery", time.Unix(12, 0), func(t *testing.T, cache string, _ *fakeBoot) *clockSources {
			return &clockSources{exact: []timesource.Reader{fakeRTCDevice(t, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), fakeGPS(t, t0)}, saved: savedTimeIn(cache)}
		}, timesource.GPS, true},
		{"saved time only", t0.Add(-3 * 24 * time.Hour), func(t *testing.T, cache string, boot *fakeBoot) *clockSources {
			saved := &timesource.SavedTime{Path: filepath.Join(cache, timesource.SavedFileName), Boot: boot.read}
			if err := saved.Save(t0.Add(-time.Hour), timesource.Controller); err != nil {
				t.Fatal(err)
			}
			boot.reboot("boot-2")
			return &clockSources{saved: saved}
		}, timesource.Saved, false},
		{"nothing", time.Unix(12, 0), func(t *testing.T, cache string, _ *fakeBoot) *clockSources {
			return &clockSources{exact: []timesource.Reader{&timesource.RTCClock{Device: filepath.Join(cache, "no-rtc")}}, saved: savedTimeIn(cache)}
		}, timesource.None, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctl, ms, broker := setup(t)
			m := makeMedia(t, 523, 300*time.Millisecond)
			ms.add(m)
			it := item("bulletin", start, 10*time.Minute, m)
			ctl.plan("all", t0, it)
			b := startBox(t, boxOpts{broker: broker, server: ms.URL})
			ctl.waitEvent(it.ID, protocol.EventReady)
			b.stop()

			boot := &fakeBoot{id: "boot-1", up: time.Hour}
			srcs := tc.sources(t, b.cache, boot)
			clock := newFakeClock(tc.boot)
			b = startBox(t, boxOpts{broker: "tcp://" + freePort(t), server: ms.URL, cache: b.cache, clock: clock,
				prepare: func(a *Agent) { a.tsrc = srcs }})
			eventually(t, "time source "+tc.source, func() bool { return b.agent.timeSourceName() == tc.source },
				func() string { return b.agent.timeSourceName() })
			if !tc.plays {
				// An hour and ten minutes on, the box's clock is past the
				// start (or still in 1970): it does not know, and waits.
				clock.Advance(70 * time.Minute)
				notPlayed(t, b, it.ID, 300*time.Millisecond)
				return
			}
			// Just before the start nothing plays; at the start it does.
			clock.Advance(start.Add(-2 * time.Minute).Sub(b.agent.clock.Now()))
			notPlayed(t, b, it.ID, 100*time.Millisecond)
			clock.Advance(start.Add(time.Second).Sub(b.agent.clock.Now()))
			eventually(t, "the bulletin played", func() bool { _, ok := b.wav(it.ID); return ok }, nil)
		})
	}
}

// notPlayed checks for a while that item did not play.
func notPlayed(t *testing.T, b *box, item string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, ok := b.wav(item); ok {
			t.Fatalf("%s played", item)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNoTimeStillSoundsEmergencies: a box rebooted with a time it cannot
// trust (only the saved time, a lower bound; or 1970 and nothing) reaches
// the broker, but the controller does not answer its time requests. It
// reports waiting-for-time with the problem time-unknown and its time
// source, plays no timed item, and sounds an emergency the controller sends
// now; an emergency drill for later waits.
func TestNoTimeStillSoundsEmergencies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		boot   time.Time
		saved  bool
		source string
	}{
		{"saved time only", t0.Add(-3 * 24 * time.Hour), true, timesource.Saved},
		{"nothing, in 1970", time.Unix(12, 0), false, timesource.None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctl, ms, broker := setup(t)
			m := makeMedia(t, 523, 300*time.Millisecond)
			ms.add(m)
			timed := item("bulletin", t0.Add(5*time.Minute), 10*time.Minute, m)
			ctl.plan("all", t0, timed)
			b := startBox(t, boxOpts{broker: broker, server: ms.URL})
			ctl.waitEvent(timed.ID, protocol.EventReady)
			b.stop()

			boot := &fakeBoot{id: "boot-1", up: time.Hour}
			saved := &timesource.SavedTime{Path: filepath.Join(b.cache, timesource.SavedFileName), Boot: boot.read}
			if tc.saved {
				if err := saved.Save(t0.Add(-time.Hour), timesource.Controller); err != nil {
					t.Fatal(err)
				}
			}
			boot.reboot("boot-2")
			clock := newFakeClock(tc.boot)
			b = startBox(t, boxOpts{broker: broker, server: ms.URL, cache: b.cache, clock: clock,
				prepare: func(a *Agent) { a.tsrc = &clockSources{saved: saved} }})
			st := ctl.waitState(protocol.StateWaitingForTime)
			if st.TimeSource != tc.source {
				t.Fatalf("time source %q, want %q", st.TimeSource, tc.source)
			}
			i := slices.IndexFunc(st.Problems, func(p protocol.Problem) bool { return p.Code == protocol.ProblemTimeUnknown })
			if i < 0 || st.Problems[i].Detail == "" {
				t.Fatalf("problems %+v, want %s saying why", st.Problems, protocol.ProblemTimeUnknown)
			}
			t.Logf("the box says: %s", st.Problems[i].Detail)

			// The controller (whose clock says 6:07) sends an emergency now,
			// and a drill for 7:00.
			now := t0.Add(7 * time.Minute)
			emerg := item("flood", now, 10*time.Minute, m)
			emerg.Priority, emerg.Tone = protocol.Emergency, protocol.ToneFlood
			drill := item("drill", t0.Add(time.Hour), 10*time.Minute, m)
			drill.Priority, drill.Tone = protocol.Emergency, protocol.ToneSiren
			ctl.plan("all", now, timed, emerg, drill)
			ctl.waitEvent(emerg.ID, protocol.EventPlayed)
			got, _ := b.wav(emerg.ID)
			tone, pause := alertPCM(protocol.ToneFlood, 90, testTone)
			assertSamples(t, got, concat(tone, pause, expectedPCM(t, m, 90)))
			clock.Advance(2 * time.Hour) // whatever the clock says
			notPlayed(t, b, timed.ID, 200*time.Millisecond)
			notPlayed(t, b, drill.ID, 0)
			if evs := ctl.eventsOf(drill.ID); slices.Contains(evs, protocol.EventPlaying) {
				t.Fatalf("drill events %v", evs)
			}
			ctl.waitState(protocol.StateWaitingForTime)
		})
	}
}

// answerTime makes the test controller answer the box's time requests as a
// controller whose clock reads now() would.
func answerTime(t *testing.T, ctl *controller, now func() time.Time) {
	t.Helper()
	tok := ctl.c.Subscribe(ctl.topics.TimeRequest(testID), 0, func(_ paho.Client, m paho.Message) {
		var req protocol.TimeRequest
		if _, err := protocol.Decode(m.Payload(), testSite, protocol.KindTimeRequest, &req); err != nil {
			t.Errorf("time request: %v", err)
			return
		}
		topic := ctl.topics.TimeResponse(testID)
		at := now()
		b, err := protocol.EncodeSigned(topic, protocol.KindTimeResponse, testSite, ctl.seq.Add(1), at, protocol.TimeResponse{ID: req.ID, Sent: req.Sent, Received: at}, testSigner)
		if err != nil {
			t.Error(err)
			return
		}
		ctl.c.Publish(topic, 0, false, b)
	})
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe to time requests: %v", tok.Error())
	}
}

// rtcRecorder is an RTC that records what it was set to.
type rtcRecorder struct {
	mu  sync.Mutex
	set []time.Time
}

func (r *rtcRecorder) Set(_ context.Context, t time.Time) error {
	r.mu.Lock()
	r.set = append(r.set, t)
	r.mu.Unlock()
	return nil
}

func (r *rtcRecorder) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.set)
}

// TestSyncedBoxKeepsTheTime: once the controller answers, the box reports
// its time source as the controller, sets its RTC from that time (once an
// hour, not at every check) and saves it; restarted in the same boot with
// no network and its clock in 1970, it carries the controller's time over
// (the kernel's boot clock counts on) and plays on time.
func TestSyncedBoxKeepsTheTime(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 523, 300*time.Millisecond)
	ms.add(m)
	ctlClock := func() time.Time { return t0.Add(10 * time.Second) } // the controller is 10 s ahead of the box
	answerTime(t, ctl, ctlClock)
	start := t0.Add(5 * time.Minute)
	it := item("bulletin", start, 10*time.Minute, m)
	ctl.plan("all", t0, it)
	rtc := &rtcRecorder{}
	var srcs *clockSources
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: func(a *Agent) {
		srcs = &clockSources{saved: savedTimeIn(a.cfg.Cache), rtc: rtc}
		a.tsrc, a.tk.every = srcs, 10*time.Millisecond
	}})
	ctl.waitEvent(it.ID, protocol.EventReady)
	eventually(t, "time source controller", func() bool {
		st, ok := ctl.lastState()
		return ok && st.TimeSource == timesource.Controller
	}, nil)
	eventually(t, "the RTC set", func() bool { return len(rtc.times()) > 0 }, nil)
	time.Sleep(100 * time.Millisecond) // ten more checks: still once an hour
	if set := rtc.times(); len(set) != 1 || set[0].Sub(t0.Add(10*time.Second)).Abs() > time.Second {
		t.Fatalf("RTC set to %v, want once, to the controller's time %v", set, t0.Add(10*time.Second))
	}
	b.stop()
	rd, err := srcs.saved.Read(context.Background())
	if err != nil || !rd.Exact || rd.Source != timesource.Controller {
		t.Fatalf("saved time at shutdown: %+v, %v", rd, err)
	}

	clock := newFakeClock(time.Unix(12, 0))
	b = startBox(t, boxOpts{broker: "tcp://" + freePort(t), server: ms.URL, cache: b.cache, clock: clock})
	eventually(t, "the controller's time carried over", func() bool { return b.agent.timeSourceName() == timesource.Controller }, nil)
	if d := b.agent.clock.Now().Sub(t0.Add(10 * time.Second)); d < 0 || d > 5*time.Second {
		t.Fatalf("the box's time after the restart is %v off the controller's", d)
	}
	clock.Advance(start.Add(time.Second).Sub(b.agent.clock.Now()))
	eventually(t, "the bulletin played", func() bool { _, ok := b.wav(it.ID); return ok }, nil)
}

func TestTimeSourcesConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte("time_sources:\n  rtc: none\n  gps: /dev/ttyUSB0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TimeSources{RTC: TimeSourceNone, NITZ: NITZAuto, GPS: "/dev/ttyUSB0"}); cfg.TimeSources != want {
		t.Fatalf("time_sources %+v, want %+v", cfg.TimeSources, want)
	}
	var names []string
	for _, r := range clockSourcesFromConfig(cfg).exact {
		names = append(names, sourceName(r))
	}
	if want := []string{timesource.NITZ, timesource.GPS, timesource.System}; !slices.Equal(names, want) {
		t.Fatalf("sources %v, want %v", names, want)
	}
	def := clockSourcesFromConfig(DefaultConfig())
	names = names[:0]
	for _, r := range def.exact {
		names = append(names, sourceName(r))
	}
	if want := []string{timesource.RTC, timesource.NITZ, timesource.System}; !slices.Equal(names, want) || def.rtc == nil {
		t.Fatalf("default sources %v, want %v with the RTC kept set", names, want)
	}
	for _, bad := range []TimeSources{{RTC: "rtc0"}, {NITZ: "mmcli"}, {GPS: "ttyUSB0"}} {
		c := validConfig()
		c.TimeSources = bad
		var fe *FieldError
		if err := c.Validate(); !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "time_sources.") {
			t.Errorf("%+v: %v, want a field error of time_sources", bad, err)
		}
	}
}

// TestStaleControllerGivesWayToRTC: a box synced with its controller that
// hears nothing from it for a long while (an hour; here 100 ms) takes its
// time from its RTC again rather than from the controller's last estimate
// on the Pi's drifting clock, and says so.
func TestStaleControllerGivesWayToRTC(t *testing.T) {
	ctl, ms, broker := setup(t)
	rtcTime := t0.Add(30 * time.Second) // the RTC disagrees with the old estimate
	rtc := timesource.ReaderFunc(func(context.Context) (timesource.Reading, error) {
		return timesource.Reading{Time: rtcTime, Taken: time.Now(), Source: timesource.RTC, Exact: true}, nil
	})
	// The controller does not answer time requests: the box's estimate
	// (-1 min) is all it has, and after staleAfter it is old.
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: func(a *Agent) {
		a.tsrc = &clockSources{exact: []timesource.Reader{rtc}, saved: savedTimeIn(a.cfg.Cache)}
		a.tk.every, a.tk.staleAfter = 10*time.Millisecond, 100*time.Millisecond
		a.clock.set(-time.Minute)
	}})
	eventually(t, "time from the RTC", func() bool {
		st, ok := ctl.lastState()
		return ok && st.TimeSource == timesource.RTC
	}, func() string { st, _ := ctl.lastState(); return st.TimeSource })
	if d := b.agent.clock.Now().Sub(rtcTime); d.Abs() > time.Second {
		t.Fatalf("the box's clock is %v off its RTC", d)
	}
}

// TestSourceLostAfterPlacingTheClock: a GPS that loses its fix after it
// placed the clock leaves the clock placed: the offset it gave holds.
func TestSourceLostAfterPlacingTheClock(t *testing.T) {
	_, ms, broker := setup(t)
	cache := t.TempDir()
	boot := &fakeBoot{id: "boot-1", up: time.Hour}
	saved := &timesource.SavedTime{Path: filepath.Join(cache, timesource.SavedFileName), Boot: boot.read}
	if err := saved.Save(t0.Add(-time.Hour), timesource.Controller); err != nil {
		t.Fatal(err)
	}
	boot.reboot("boot-2") // the saved time is a lower bound now
	var reads atomic.Int64
	gps := timesource.ReaderFunc(func(context.Context) (timesource.Reading, error) {
		if reads.Add(1) > 1 {
			return timesource.Reading{}, fmt.Errorf("no fix: %w", timesource.ErrNoTime)
		}
		return timesource.Reading{Time: t0, Taken: time.Now(), Source: timesource.GPS, Exact: true}, nil
	})
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, cache: cache, clock: newFakeClock(time.Unix(12, 0)), prepare: func(a *Agent) {
		a.tsrc = &clockSources{exact: []timesource.Reader{gps}, saved: saved}
		a.tk.every = 10 * time.Millisecond
	}})
	eventually(t, "the GPS read again", func() bool { return reads.Load() >= 5 }, nil)
	if src, now := b.agent.timeSourceName(), b.agent.clock.Now(); src != timesource.GPS || !b.agent.plausible(now) {
		t.Fatalf("after the GPS lost its fix: source %q, placed %v", src, b.agent.plausible(now))
	}
}
