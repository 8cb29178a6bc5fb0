package device

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// setup runs a broker, a media server and a controller, and publishes the
// box's config.
func setup(t *testing.T, groups ...string) (*controller, *mediaServer, string) {
	t.Helper()
	broker := startBroker(t)
	ms := newMediaServer(t)
	ctl := newController(t, broker)
	if groups == nil {
		groups = []string{}
	}
	ctl.config(t0, protocol.DeviceConfig{Groups: groups, Volume: 60, EmergencyVolume: 90})
	return ctl, ms, broker
}

func TestPlaysPlanItemOnTime(t *testing.T) {
	ctl, ms, broker := setup(t, "thon-1")
	m := makeMedia(t, 440, 1500*time.Millisecond)
	ms.add(m)
	it := item("news-1", t0.Add(10*time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, it)

	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(it.ID, protocol.EventReady)
	ctl.waitState(protocol.StateIdle)
	if _, ok := b.wav(it.ID); ok {
		t.Fatal("played before its start")
	}

	b.clock.Advance(10 * time.Minute)
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	b.playedWhole(it.ID, m, 60)

	want := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPlayed}
	if got := ctl.eventsOf(it.ID); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	var at []time.Time
	for _, ev := range ctl.allEvents() {
		if ev.Item == it.ID {
			at = append(at, ev.At)
			if ev.Announcement != it.Announcement {
				t.Errorf("event %s announcement %q", ev.Type, ev.Announcement)
			}
			if wantStarted := ev.Type == protocol.EventPlayed; wantStarted != ev.Started.Equal(it.Start) {
				t.Errorf("event %s says it started at %v (only the final answer repeats the start, %v)", ev.Type, ev.Started, it.Start)
			}
		}
	}
	if !at[0].Equal(t0) || !at[1].Equal(t0) || !at[2].Equal(it.Start) || !at[3].Equal(it.Start) {
		t.Fatalf("event times %v: want received/ready at %v, playing/played at %v", at, t0, it.Start)
	}
	if n := ms.denied.Load(); n != 0 {
		t.Fatalf("%d media requests without the device's credentials", n)
	}
	st := ctl.waitState(protocol.StateIdle)
	if !st.Online || st.Volume != 60 || st.CacheBytes <= 0 || st.Version == "" {
		t.Fatalf("state %+v", st)
	}
	if r := retainedState(t, broker); r.State != protocol.StateIdle || r.Playing != "" {
		t.Fatalf("retained state %+v, want idle", r)
	}

	// The same retained plan again, then a sentinel: no duplicate events.
	ctl.plan("all", t0, it)
	s := item("sentinel", t0.Add(time.Hour), time.Minute, m)
	ctl.plan("device/"+testID, t0, s)
	ctl.waitEvent(s.ID, protocol.EventReady)
	if got := ctl.eventsOf(it.ID); !slices.Equal(got, want) {
		t.Fatalf("after re-delivery, events %v, want %v", got, want)
	}
}

func TestGroupsDecideWhatPlays(t *testing.T) {
	ctl, ms, broker := setup(t, "thon-1")
	m := makeMedia(t, 523, time.Second)
	ms.add(m)
	start := t0.Add(5 * time.Minute)
	mine := item("thon1-news", start, 10*time.Minute, m)
	other := item("thon2-news", start, 10*time.Minute, m)
	ctl.plan("group/thon-1", t0, mine)
	ctl.plan("group/thon-2", t0, other)

	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(mine.ID, protocol.EventReady)

	// Move the box to thon-2: its plan replaces thon-1's.
	ctl.config(t0.Add(time.Second), protocol.DeviceConfig{Groups: []string{"thon-2"}, Volume: 60})
	ctl.waitEvent(mine.ID, protocol.EventCancelled)
	ctl.waitEvent(other.ID, protocol.EventReady)
	b.clock.Advance(5 * time.Minute)
	ctl.waitEvent(other.ID, protocol.EventPlayed)
	if _, ok := b.wav(other.ID); !ok {
		t.Fatal("the new group's item did not play")
	}
	if _, ok := b.wav(mine.ID); ok {
		t.Fatal("the old group's item played")
	}
	for _, ev := range ctl.allEvents() {
		if ev.Item == other.ID && ev.At.Before(t0) {
			t.Fatalf("event %+v", ev)
		}
	}
	if got, want := ctl.eventsOf(mine.ID), []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventCancelled}; !slices.Equal(got, want) {
		t.Fatalf("old group item events %v, want %v", got, want)
	}
}

func TestRemovedItemIsCancelled(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 330, time.Second)
	ms.add(m)
	keep := item("keep", t0.Add(5*time.Minute), 10*time.Minute, m)
	drop := item("drop", t0.Add(5*time.Minute), 10*time.Minute, m)
	ctl.plan("all", t0, keep, drop)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(drop.ID, protocol.EventReady)
	ctl.waitEvent(keep.ID, protocol.EventReady)

	ctl.plan("all", t0.Add(time.Minute), keep)
	ctl.waitEvent(drop.ID, protocol.EventCancelled)
	// An older plan arriving late must not bring it back.
	ctl.plan("all", t0.Add(30*time.Second), keep, drop)
	b.clock.Advance(5 * time.Minute)
	ctl.waitEvent(keep.ID, protocol.EventPlayed)
	if _, ok := b.wav(drop.ID); ok {
		t.Fatal("cancelled item played")
	}
	if got := ctl.eventsOf(drop.ID); got[len(got)-1] != protocol.EventCancelled {
		t.Fatalf("cancelled item events %v", got)
	}
	// A newer plan that wants it again (a schedule resumed) brings it back;
	// the played one does not play twice.
	ctl.plan("all", t0.Add(2*time.Minute), keep, drop)
	ctl.waitEvent(drop.ID, protocol.EventPlayed)
	want := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventCancelled,
		protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPlayed}
	if got := ctl.eventsOf(drop.ID); !slices.Equal(got, want) {
		t.Fatalf("revived item events %v, want %v", got, want)
	}
	if got := ctl.eventsOf(keep.ID); len(got) != 4 {
		t.Fatalf("played item events %v", got)
	}
}

func TestExpiredOnArrival(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 600, time.Second)
	ms.add(m)
	late := item("late", t0.Add(-10*time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, late)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(late.ID, protocol.EventExpired)
	if got, want := ctl.eventsOf(late.ID), []protocol.EventType{protocol.EventReceived, protocol.EventExpired}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	b.clock.Advance(time.Hour)
	ctl.waitState(protocol.StateIdle)
	if _, ok := b.wav(late.ID); ok {
		t.Fatal("expired item played")
	}
	if n := ms.hits.Load(); n != 0 {
		t.Fatalf("fetched media %d times for an expired item", n)
	}
}

func TestPlaysLateWithinWindowAndWaitsForTime(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 700, time.Second)
	ms.add(m)
	it := item("late-ok", t0.Add(time.Minute), 10*time.Minute, m)
	ctl.plan("all", t0, it)
	// A Pi without a real-time clock boots in 1970.
	clock := newFakeClock(time.Date(1970, 1, 1, 0, 0, 12, 0, time.UTC))
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, clock: clock})
	ctl.waitEvent(it.ID, protocol.EventReady)
	ctl.waitState(protocol.StateWaitingForTime)
	// NTP sets the clock, past the item's start but inside its window.
	clock.Set(t0.Add(3 * time.Minute))
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	if _, ok := b.wav(it.ID); !ok {
		t.Fatal("no WAV")
	}
	ctl.waitState(protocol.StateIdle)
}

func TestPriorityOrderAndEmergencyVolume(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 880, 500*time.Millisecond)
	ms.add(m)
	start := t0.Add(time.Minute)
	normal := item("a-normal", start, 10*time.Minute, m)
	bg := item("b-background", start.Add(-30*time.Second), 10*time.Minute, m)
	bg.Priority = protocol.Background
	emerg := item("z-emergency", start, 10*time.Minute, m)
	emerg.Priority = protocol.Emergency
	loud := 100
	normal.Volume = &loud
	ctl.plan("all", t0, normal, bg, emerg)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	for _, it := range []protocol.PlanItem{normal, bg, emerg} {
		ctl.waitEvent(it.ID, protocol.EventReady)
	}
	b.clock.Advance(time.Minute)
	for _, it := range []protocol.PlanItem{normal, bg, emerg} {
		ctl.waitEvent(it.ID, protocol.EventPlayed)
	}
	var order []string
	for _, ev := range ctl.allEvents() {
		if ev.Type == protocol.EventPlaying {
			order = append(order, ev.Item)
		}
	}
	if want := []string{emerg.ID, normal.ID, bg.ID}; !slices.Equal(order, want) {
		t.Fatalf("play order %v, want %v", order, want)
	}
	got, _ := b.wav(emerg.ID)
	siren, pause := alertPCM(protocol.ToneSiren, 90, testTone)
	assertSamples(t, got, concat(siren, pause, expectedPCM(t, m, 90)))
	got, _ = b.wav(normal.ID)
	assertSamples(t, got, expectedPCM(t, m, 100))
	got, _ = b.wav(bg.ID)
	assertSamples(t, got, expectedPCM(t, m, 60))
}

func TestRepeatGapAndChime(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 440, 300*time.Millisecond)
	ms.add(m)
	it := item("rep", t0, 10*time.Minute, m)
	it.Repeat, it.GapMS, it.Chime = 3, 250, true
	ctl.plan("all", t0, it)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	got, _ := b.wav(it.ID)
	one := expectedPCM(t, m, 60)
	g := audio.VolumeGain(60)
	chime := audio.Floats(audio.Chime(audio.DefaultFormat))
	var want []float32
	for _, v := range chime {
		want = append(want, v*g)
	}
	gap := make([]float32, 2*48000/4)
	want = append(want, one...)
	want = append(want, gap...)
	want = append(want, one...)
	want = append(want, gap...)
	want = append(want, one...)
	assertSamples(t, got, want)
}

func TestCorruptMediaIsNeverKept(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 440, time.Second)
	bad := append([]byte(nil), m.data...)
	bad[len(bad)/2] ^= 0xff
	ms.serve(m.sha, bad)
	it := item("bad-hash", t0.Add(time.Minute), time.Minute, m)
	ctl.plan("all", t0, it)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(it.ID, protocol.EventReceived)
	eventually(t, "first download", func() bool { return ms.hits.Load() >= 1 }, nil)
	// Let it retry once (backoff runs on the fake clock), so the first
	// failure has surely been handled.
	eventually(t, "a retry", func() bool { b.clock.Advance(time.Second); return ms.hits.Load() >= 2 }, nil)
	b.clock.Set(it.Expires.Add(time.Second))
	ctl.waitEvent(it.ID, protocol.EventMissed)
	var reason string
	for _, ev := range ctl.allEvents() {
		if ev.Item == it.ID && ev.Type == protocol.EventMissed {
			reason = ev.Reason
		}
	}
	if !strings.Contains(reason, "SHA-256") {
		t.Fatalf("missed reason %q does not say the hash was wrong", reason)
	}
	// A retry may still be writing its .part; once it fails its hash check
	// nothing may be left, and the final name must never appear.
	eventually(t, "an empty cache", func() bool {
		for _, dir := range []string{"media", "pcm"} {
			des, err := os.ReadDir(filepath.Join(b.cache, dir))
			if err != nil {
				t.Fatal(err)
			}
			for _, de := range des {
				if de.Name() == m.sha || strings.HasSuffix(de.Name(), ".f32") {
					t.Fatalf("corrupt media kept as %s/%s", dir, de.Name())
				}
			}
			if len(des) != 0 {
				return false
			}
		}
		return true
	}, nil)
	if _, ok := b.wav(it.ID); ok {
		t.Fatal("played corrupt media")
	}
	if got := ctl.eventsOf(it.ID); slices.Contains(got, protocol.EventReady) {
		t.Fatalf("events %v", got)
	}
}

func TestPlaysFromStoredStateWithoutBroker(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 440, time.Second)
	ms.add(m)
	it := item("offline", t0.Add(time.Hour), 10*time.Minute, m)
	ctl.plan("all", t0, it)
	cache := t.TempDir()
	clock := newFakeClock(t0)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, cache: cache, clock: clock})
	ctl.waitEvent(it.ID, protocol.EventReady)
	b.stop()
	ctl.waitState(protocol.StateOffline)
	if r := retainedState(t, broker); r.State != protocol.StateOffline || r.Online {
		t.Fatalf("retained state after stop %+v", r)
	}

	// The network is gone: no broker, no media server.
	ms.Close()
	addr := freePort(t)
	b2 := startBox(t, boxOpts{broker: "tcp://" + addr, server: ms.URL, cache: cache, clock: clock})
	clock.Advance(time.Hour)
	eventually(t, "the WAV", func() bool { _, ok := b2.wav(it.ID); return ok }, nil)
	got, _ := b2.wav(it.ID)
	assertSamples(t, got, expectedPCM(t, m, 60))

	// The answer-back waited in the session and arrives once the broker is back.
	broker2 := startBrokerAt(t, addr)
	ctl2 := newController(t, broker2)
	_ = ctl2
	eventually(t, "played event after reconnect", func() bool {
		return slices.Contains(ctl2.eventsOf(it.ID), protocol.EventPlayed)
	}, func() string { return fmt.Sprint(ctl2.eventsOf(it.ID)) })
}

func TestStateFileRoundTrip(t *testing.T) {
	ctl, ms, broker := setup(t, "thon-3")
	m := makeMedia(t, 440, time.Second)
	ms.add(m)
	it := item("persist", t0.Add(time.Hour), 10*time.Minute, m)
	ctl.plan("group/thon-3", t0, it)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(it.ID, protocol.EventReady)
	b.stop()
	data, err := os.ReadFile(filepath.Join(b.cache, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Config == nil || !slices.Equal(st.Config.Config.Groups, []string{"thon-3"}) {
		t.Fatalf("config %+v", st.Config)
	}
	if p := st.Plans["group/thon-3"]; p == nil || len(p.Plan.Items) != 1 || p.Plan.Items[0].ID != it.ID {
		t.Fatalf("plans %+v", st.Plans)
	}
	if r := st.Items[it.ID]; r == nil || r.Status != protocol.EventReady {
		t.Fatalf("items %+v", st.Items)
	}
	if st.PCMFormat != audio.DefaultFormat || st.SeqReserved == 0 {
		t.Fatalf("state %+v", st)
	}
}

func TestResumesPartialDownloadWithRange(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt bool
	}{{"good part", false}, {"corrupt part", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctl, ms, broker := setup(t)
			m := makeMedia(t, 440, time.Second)
			ms.add(m)
			cache := t.TempDir()
			half := append([]byte(nil), m.data[:len(m.data)/2]...)
			if tc.corrupt {
				half[100] ^= 0xff
			}
			os.MkdirAll(filepath.Join(cache, "media"), 0o755)
			if err := os.WriteFile(filepath.Join(cache, "media", m.sha+".part"), half, 0o644); err != nil {
				t.Fatal(err)
			}
			it := item("resume", t0.Add(time.Hour), time.Hour, m)
			ctl.plan("all", t0, it)
			b := startBox(t, boxOpts{broker: broker, server: ms.URL, cache: cache})
			if tc.corrupt {
				// The resumed file fails its hash and is dropped; the retry
				// (on the fake clock) downloads it whole.
				eventually(t, "a retry", func() bool { b.clock.Advance(time.Second); return ms.hits.Load() >= 2 }, nil)
			}
			ctl.waitEvent(it.ID, protocol.EventReady)
			ranges := ms.rangesSeen()
			if want := fmt.Sprintf("bytes=%d-", len(half)); len(ranges) == 0 || ranges[0] != want {
				t.Fatalf("Range headers %q, want first %q", ranges, want)
			}
			if tc.corrupt && (len(ranges) < 2 || ranges[len(ranges)-1] != "") {
				t.Fatalf("Range headers %q: the retry should fetch it whole", ranges)
			}
			got, err := os.ReadFile(filepath.Join(cache, "media", m.sha))
			if err != nil || !bytes.Equal(got, m.data) {
				t.Fatalf("cached media differs (%v)", err)
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	ctl, ms, broker := setup(t)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitState(protocol.StateIdle)
	later := t0.Add(DefaultHeartbeat * 12 / 10)
	b.clock.Set(later)
	eventually(t, "a heartbeat at the new time", func() bool {
		st, _ := ctl.lastState()
		return st.At.Equal(later)
	}, nil)
	st, _ := ctl.lastState()
	if !st.Online || st.State != protocol.StateIdle || st.UptimeSec < 0 {
		t.Fatalf("heartbeat %+v", st)
	}
}

func TestWillAndReconnect(t *testing.T) {
	srv, broker := startBrokerServer(t, "127.0.0.1:0")
	ms := newMediaServer(t)
	ctl := newController(t, broker)
	ctl.config(t0, protocol.DeviceConfig{Groups: []string{}, Volume: 60})
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitState(protocol.StateIdle)

	// The link drops without a DISCONNECT: the broker publishes the will.
	cl, ok := srv.Clients.Get("loa-" + testSite + "-" + testID)
	if !ok {
		t.Fatal("box not connected with client id loa-<site>-<id>")
	}
	cl.Stop(errors.New("link cut by test"))
	ctl.waitState(protocol.StateOffline)
	if r := retainedState(t, broker); r.Online {
		t.Fatalf("will %+v", r)
	}
	// The box reconnects, announces itself and follows its topics again.
	ctl.waitState(protocol.StateIdle)
	m := makeMedia(t, 440, 200*time.Millisecond)
	ms.add(m)
	it := item("after-reconnect", t0, time.Hour, m)
	ctl.plan("all", t0, it)
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	if _, ok := b.wav(it.ID); !ok {
		t.Fatal("no WAV after reconnect")
	}
}
