//go:build cgo && linux

package device

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/audio/otosink"
	"github.com/loa-commune/loa/internal/pulsetest"
	"github.com/loa-commune/loa/protocol"
)

// TestLiveSessionSoundCardChild is the playing half of
// TestLiveSessionThroughSoundCard.
func TestLiveSessionSoundCardChild(t *testing.T) {
	if os.Getenv(soundChildEnv) != "1" {
		t.Skip("run by TestLiveSessionThroughSoundCard")
	}
	sink, err := otosink.New(audio.DefaultFormat)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh PulseAudio stream takes a while to flow steadily.
	if err := sink.Play(context.Background(), "warm-up", bytes.NewReader(audio.Silence(audio.DefaultFormat, warmUpTime))); err != nil {
		t.Fatal(err)
	}
	ctl, srv, broker, clock := liveSetup(t)
	s := makeLiveSession(t, 2500*time.Millisecond)
	ms := newMediaServer(t)
	news := scNews(t)
	ms.add(news)
	// A recording, then the session: both placed by the sound card's
	// aligner, so the session must start as exactly as the recording.
	start := t0.Add(scSessionAfter)
	n := item("news", t0, time.Minute, news)
	it := streamItem("live-1", "s1", start, time.Minute)
	ctl.plan("all", t0.Add(-10*time.Second), n, it)
	topic := ctl.topics.Stream("s1")
	ps := s.packets(start)
	ps = append(ps, endPacket(len(ps), start.Add(streamDur(s.length()))))
	clock.Set(t0.Add(-10 * time.Second))
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, clock: clock, sink: sink})
	ctl.waitEvent(n.ID, protocol.EventReady)
	clock.Set(t0.Add(-cueLead - 100*time.Millisecond))
	waitSubscribed(t, srv, topic, true)
	followRealTime(t, clock)
	sent := ctl.sendLive(clock, topic, onTime(t, topic, ps...))
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	sent()
	if ev := ctl.finalEvent(it.ID); ev.MissedMS != 0 || ev.HeardMS != streamDur(s.length()).Milliseconds() {
		t.Errorf("final answer heard %d ms, missed %d ms (%q)", ev.HeardMS, ev.MissedMS, ev.Reason)
	}
	b.stop()
}

// scSessionAfter is when the session starts after the recording.
const scSessionAfter = 3500 * time.Millisecond

// TestLiveSessionThroughSoundCard plays a recording and then a live session
// on the real oto sink into PulseAudio: the player reads the session as its
// time comes, and the sound card must still get it without a hole, sample
// for sample, starting as exactly on time as the recording (neighbouring
// boxes play within 5 ms of each other).
func TestLiveSessionThroughSoundCard(t *testing.T) {
	if os.Getenv(soundChildEnv) == "1" {
		t.Skip("in the child")
	}
	pulse := pulsetest.Start(t)
	s := makeLiveSession(t, 2500*time.Millisecond)
	runSoundChild(t, pulse, "TestLiveSessionSoundCardChild")
	got := audio.Floats(pulse.Captured(t))

	// The session from the end of its warm-up, on both channels.
	want := make([]float32, 2*len(s.ref))
	for i, v := range s.ref {
		want[2*i], want[2*i+1] = v*liveGain, v*liveGain
	}
	news := expectedPCM(t, scNews(t), 60)
	at := firstSound(got)
	if at < 0 {
		t.Fatal("the capture is silent")
	}
	newsStart := firstSound(news)
	np := find(got, at, len(news)/2-newsStart-2*ms, news, newsStart, 500*ms)
	if np < 0 {
		t.Fatal("the recording is not in the capture")
	}
	np -= newsStart // where its first sample fell
	whole := len(s.ref) - 2*ms
	// The session's reference begins after its warm-up (the pre-skip).
	expect := np + int(streamSamples(scSessionAfter)) + s.preSkip
	p := find(got, expect-50*ms, whole, want, 0, 100*ms)
	if p < 0 {
		n := 0
		for f := np + len(news)/2; f < expect+500*ms; f++ {
			n = max(n, agreement(got, f, want, 0))
		}
		t.Fatalf("the capture holds %d ms of the session in one piece around where it belongs, want all %d ms", n/ms, len(s.ref)/ms)
	}
	if off := p - expect; off > 5*ms || off < -5*ms {
		t.Fatalf("the session started %.2f ms off its time (measured from the recording's start), want within 5 ms", float64(off)/ms)
	}
	t.Logf("the session started %.2f ms off its time", float64(p-expect)/ms)
}
