package device

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// makeChirp is a WAV file of a tone gliding from f0 to f1 Hz in the box's
// format: every stretch of it is unlike every other, so where a cut or a
// resume fell shows in the samples.
func makeChirp(t testing.TB, f0, f1 float64, d time.Duration) media {
	t.Helper()
	f := audio.DefaultFormat
	n := int(d.Seconds() * float64(f.SampleRate))
	s := make([]float32, n*f.Channels)
	phase := 0.0
	for i := range n {
		freq := f0 + (f1-f0)*float64(i)/float64(n)
		v := float32(0.5 * math.Sin(phase))
		phase += 2 * math.Pi * freq / float64(f.SampleRate)
		for c := range f.Channels {
			s[i*f.Channels+c] = v
		}
	}
	var buf bytes.Buffer
	if err := audio.WriteWAV(&buf, f, audio.PutFloats(nil, s)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return media{data: buf.Bytes(), sha: hex.EncodeToString(sum[:])}
}

// waitHeard polls until a paced WAV sink has written d of the item's
// current play (its temporary file grows as it plays).
func (b *box) waitHeard(name string, d time.Duration) {
	b.t.Helper()
	want := 58 + audio.DefaultFormat.Bytes(d)
	pattern := filepath.Join(b.wavDir, "."+audio.SanitizeName(name)+".wav.*.tmp")
	eventually(b.t, "the sink to play "+d.String()+" of "+name, func() bool {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() >= want {
				return true
			}
		}
		return false
	}, nil)
}

// frames is the length of x in frames of the box's format.
func framesOf(x []float32) int { return len(x) / audio.DefaultFormat.Channels }

// assertFadedCut checks that got is the start of want, then a fade-out of
// fadeOutTime, and returns the frame where the fade began.
func assertFadedCut(t *testing.T, got, want []float32) int {
	t.Helper()
	ch := audio.DefaultFormat.Channels
	fadeN := int(audio.DefaultFormat.Bytes(fadeOutTime)) / audio.DefaultFormat.BytesPerFrame()
	c := framesOf(got) - fadeN
	if c <= 0 || c+fadeN > framesOf(want) {
		t.Fatalf("cut item played %d frames of %d: want a cut with a %d-frame fade", framesOf(got), framesOf(want), fadeN)
	}
	for i := range got {
		g := 1.0
		if k := i/ch - c; k >= 0 {
			g = 0.5 + 0.5*math.Cos(math.Pi*float64(k)/float64(fadeN))
		}
		if d := math.Abs(float64(got[i]) - g*float64(want[i])); d > 1e-4 {
			t.Fatalf("cut item: sample %d = %v, want %v × %.3f", i, got[i], want[i], g)
		}
	}
	return c
}

// TestPreemption plays a normal item through a paced WAV sink, interrupts
// it with an emergency, and checks what each on_preempt rule makes of it:
// the cut fades out, the emergency plays its siren then its message at the
// emergency volume, then the normal item starts again (restart), goes on
// from where it was cut (resume) or is dropped.
func TestPreemption(t *testing.T) {
	for _, rule := range []string{protocol.OnPreemptRestart, protocol.OnPreemptResume, protocol.OnPreemptDrop} {
		t.Run(rule, func(t *testing.T) {
			t.Parallel()
			ctl, ms, broker := setup(t)
			news := makeChirp(t, 300, 900, 3*time.Second)
			alarm := makeChirp(t, 900, 600, 300*time.Millisecond)
			ms.add(news)
			ms.add(alarm)
			n := item("news", t0, 10*time.Minute, news)
			n.OnPreempt = rule
			ctl.plan("all", t0, n)
			b := startBox(t, boxOpts{broker: broker, server: ms.URL, paced: true})
			ctl.waitEvent(n.ID, protocol.EventPlaying)
			b.waitHeard(n.ID, 300*time.Millisecond)

			// The emergency is due a second later, when its media is in:
			// then it cuts the news at once.
			e := item("alarm", t0.Add(time.Second), 10*time.Minute, alarm)
			e.Priority = protocol.Emergency
			ctl.plan("all", t0.Add(time.Second), n, e)
			ctl.waitEvent(e.ID, protocol.EventReady)
			b.clock.Advance(time.Second)
			final := protocol.EventPlayed
			if rule == protocol.OnPreemptDrop {
				final = protocol.EventCancelled
			}
			ctl.waitEvent(n.ID, final)
			ctl.waitEvent(e.ID, protocol.EventPlayed)

			wantN := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPreempted, protocol.EventPlaying, protocol.EventPlayed}
			if rule == protocol.OnPreemptDrop {
				wantN = []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPreempted, protocol.EventCancelled}
			}
			if got := ctl.eventsOf(n.ID); !slices.Equal(got, wantN) {
				t.Fatalf("news events %v, want %v", got, wantN)
			}
			wantE := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPlayed}
			if got := ctl.eventsOf(e.ID); !slices.Equal(got, wantE) {
				t.Fatalf("alarm events %v, want %v", got, wantE)
			}
			for _, ev := range ctl.allEvents() {
				if ev.Item == n.ID && ev.Type == protocol.EventPreempted && (ev.Reason != "preempted by alarm" ||
					!reflect.DeepEqual(ev.Why, []protocol.Why{{Code: protocol.WhyPreemptedBy, Args: []string{"alarm"}}})) {
					t.Errorf("preempted reason %q, %v", ev.Reason, ev.Why)
				}
				if ev.Item == n.ID && ev.Type == protocol.EventCancelled && !strings.Contains(ev.Reason, "dropped") {
					t.Errorf("cancelled reason %q", ev.Reason)
				}
			}

			// The first play: the news from its start, cut with a fade.
			newsPCM := expectedPCM(t, news, 60)
			first, ok := b.wav(n.ID)
			if !ok {
				t.Fatal("no WAV of the first play")
			}
			c := assertFadedCut(t, first, newsPCM)
			t.Logf("news cut at %v", audio.DefaultFormat.Duration(int64(c*audio.DefaultFormat.BytesPerFrame())))

			// The emergency: siren, pause, message, at the emergency volume.
			siren, pause := alertPCM(protocol.ToneSiren, 90, testTone)
			got, _ := b.wav(e.ID)
			assertSamples(t, got, concat(siren, pause, expectedPCM(t, alarm, 90)))

			// Then the news again.
			again, ok := b.wav(n.ID + "#2")
			switch rule {
			case protocol.OnPreemptDrop:
				if ok {
					t.Fatal("a dropped item played again")
				}
			case protocol.OnPreemptRestart:
				assertSamples(t, again, newsPCM)
			case protocol.OnPreemptResume:
				r := framesOf(newsPCM) - framesOf(again)
				// The sink is paced in 20 ms chunks: the listener was at
				// most a chunk before the fade began, and the news goes on
				// resumeRewind before that.
				rewind := int(audio.DefaultFormat.Bytes(resumeRewind)) / audio.DefaultFormat.BytesPerFrame()
				if d := c - r; d < rewind || d > rewind+48*30 {
					t.Fatalf("resumed at frame %d, cut at frame %d", r, c)
				}
				inN := int(audio.DefaultFormat.Bytes(fadeInTime)) / audio.DefaultFormat.BytesPerFrame()
				for i := range again {
					g := 1.0
					if k := i / 2; k < inN {
						g = 0.5 - 0.5*math.Cos(math.Pi*float64(k)/float64(inN))
					}
					if d := math.Abs(float64(again[i]) - g*float64(newsPCM[2*r+i])); d > 1e-4 {
						t.Fatalf("resumed sample %d = %v, want %v × %.3f", i, again[i], newsPCM[2*r+i], g)
					}
				}
				t.Logf("resumed at frame %d, %d frames before the fade began", r, c-r)
			}
			ctl.waitState(protocol.StateIdle)
		})
	}
}

// TestEmergencyReplacesOlder: a newer emergency stops the one playing,
// which is cancelled and not played again.
func TestEmergencyReplacesOlder(t *testing.T) {
	ctl, ms, broker := setup(t)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, paced: true, tone: time.Second})
	flood := protocol.PlanItem{ID: "flood-1", Start: t0, Expires: t0.Add(time.Hour), Priority: protocol.Emergency,
		Tone: protocol.ToneFlood, Repeat: 5, Status: protocol.StatusLive}
	ctl.plan("all", t0, flood)
	ctl.waitEvent(flood.ID, protocol.EventPlaying)
	b.waitHeard(flood.ID, 300*time.Millisecond)

	fire := flood
	fire.ID, fire.Tone, fire.Repeat, fire.Start = "fire-1", protocol.ToneFire, 1, t0.Add(time.Second)
	b.clock.Advance(time.Second)
	ctl.plan("all", t0.Add(time.Second), flood, fire)
	ctl.waitEvent(fire.ID, protocol.EventPlayed)
	if got, want := ctl.eventsOf(flood.ID), []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventCancelled}; !slices.Equal(got, want) {
		t.Fatalf("older emergency: %v, want %v", got, want)
	}
	for _, ev := range ctl.allEvents() {
		if ev.Item == flood.ID && ev.Type == protocol.EventCancelled && ev.Reason != "replaced by fire-1" {
			t.Fatalf("reason %q", ev.Reason)
		}
	}
	tone, _ := alertPCM(protocol.ToneFlood, 90, time.Second)
	got, _ := b.wav(flood.ID)
	assertFadedCut(t, got, tone)
	tone, _ = alertPCM(protocol.ToneFire, 90, time.Second)
	got, _ = b.wav(fire.ID)
	assertSamples(t, got, tone)

	// A restart does not bring the replaced emergency back.
	b.stop()
	b2 := startBox(t, boxOpts{broker: broker, server: ms.URL, cache: b.cache, clock: b.clock})
	s := protocol.PlanItem{ID: "sentinel", Start: t0.Add(time.Hour), Expires: t0.Add(2 * time.Hour), Priority: protocol.Normal,
		Tone: protocol.ToneOther, Repeat: 1, Status: protocol.StatusLive}
	ctl.plan("device/"+testID, t0, s)
	ctl.waitEvent(s.ID, protocol.EventReady)
	if _, ok := b2.wav(flood.ID + "#2"); ok {
		t.Fatal("the replaced emergency played again after a restart")
	}
	if got := ctl.eventsOf(flood.ID); len(got) != 4 {
		t.Fatalf("after a restart the replaced emergency had events %v", got)
	}
}

// TestToneOnlyEmergency: an emergency with no media plays its tone Repeat
// times with the gap between, at the emergency volume, and fetches nothing.
// An exercise (status test) plays the same.
func TestToneOnlyEmergency(t *testing.T) {
	ctl, ms, broker := setup(t)
	e := protocol.PlanItem{ID: "storm-drill", Start: t0, Expires: t0.Add(time.Hour), Priority: protocol.Emergency,
		Tone: protocol.ToneStorm, Repeat: 2, GapMS: 200, Status: protocol.StatusTest}
	ctl.plan("all", t0, e)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(e.ID, protocol.EventPlayed)
	if got, want := ctl.eventsOf(e.ID), []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPlayed}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	tone, _ := alertPCM(protocol.ToneStorm, 90, testTone)
	got, _ := b.wav(e.ID)
	assertSamples(t, got, concat(tone, make([]float32, 2*48000/5), tone))
	if n := ms.hits.Load(); n != 0 {
		t.Fatalf("%d media requests for a tone-only item", n)
	}
}

// TestEmergencyWithoutMedia: the emergency's media cannot be fetched; its
// alert tone still sounds at once, and it is reported failed, saying why.
func TestEmergencyWithoutMedia(t *testing.T) {
	ctl, ms, broker := setup(t)
	gone := makeMedia(t, 500, time.Second) // never added to the server
	e := item("evacuate", t0, time.Hour, gone)
	e.Priority, e.Tone, e.Repeat, e.GapMS = protocol.Emergency, protocol.ToneFire, 2, 100
	ctl.plan("all", t0, e)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(e.ID, protocol.EventFailed)
	if got, want := ctl.eventsOf(e.ID), []protocol.EventType{protocol.EventReceived, protocol.EventPlaying, protocol.EventFailed}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	var reason string
	var why []protocol.Why
	for _, ev := range ctl.allEvents() {
		if ev.Item == e.ID && ev.Type == protocol.EventFailed {
			reason, why = ev.Reason, ev.Why
		}
	}
	if !strings.Contains(reason, "alert tone played 2 times") || !strings.Contains(reason, "could not be fetched") ||
		len(why) != 2 || why[0].Code != protocol.WhyToneOnly || !slices.Equal(why[0].Args, []string{"2"}) {
		t.Fatalf("reason %q, %v", reason, why)
	}
	tone, _ := alertPCM(protocol.ToneFire, 90, testTone)
	got, _ := b.wav(e.ID)
	assertSamples(t, got, concat(tone, make([]float32, 2*4800), tone))
}

// TestQuietHoursOnBox: inside the config's quiet hours a normal item is
// missed and an emergency plays; after them, normal items play again.
func TestQuietHoursOnBox(t *testing.T) {
	broker := startBroker(t)
	ms := newMediaServer(t)
	ctl := newController(t, broker)
	// 12:00-14:00 in Hanoi is 05:00-07:00 UTC; t0 is 06:00 UTC.
	ctl.config(t0, protocol.DeviceConfig{Groups: []string{}, Volume: 60, QuietHours: "12:00-14:00", Timezone: "Asia/Ho_Chi_Minh"})
	m := makeMedia(t, 440, 200*time.Millisecond)
	ms.add(m)
	night := item("night-news", t0, 10*time.Minute, m)
	alarm := item("night-alarm", t0.Add(time.Minute), 10*time.Minute, m)
	alarm.Priority = protocol.Emergency
	morning := item("morning-news", t0.Add(90*time.Minute), 10*time.Minute, m)
	ctl.plan("all", t0, night, alarm, morning)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(night.ID, protocol.EventMissed)
	ctl.waitEvent(alarm.ID, protocol.EventReady)
	b.clock.Advance(time.Minute)
	ctl.waitEvent(alarm.ID, protocol.EventPlayed)
	for _, ev := range ctl.allEvents() {
		if ev.Item == night.ID && ev.Type == protocol.EventMissed && (ev.Reason != "quiet hours" ||
			!reflect.DeepEqual(ev.Why, []protocol.Why{{Code: protocol.WhyQuietHours}})) {
			t.Fatalf("reason %q, %v", ev.Reason, ev.Why)
		}
	}
	b.clock.Advance(89 * time.Minute)
	ctl.waitEvent(morning.ID, protocol.EventPlayed)
	if _, ok := b.wav(night.ID); ok {
		t.Fatal("played in quiet hours")
	}
}
