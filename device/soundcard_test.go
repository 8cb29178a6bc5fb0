//go:build cgo && linux

package device

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/audio/otosink"
	"github.com/loa-commune/loa/internal/pulsetest"
	"github.com/loa-commune/loa/protocol"
)

// The sound-card tests run the playing half in a child process (ALSA reads
// its config once per process) against a private PulseAudio whose capture
// holds every sample oto sent to ALSA.
const (
	soundChildEnv = "LOA_DEVICE_SOUND_CHILD"
	cutsEnv       = "LOA_DEVICE_CUTS"
)

// ms is a millisecond in frames at 48 kHz.
const ms = 48

// Soundcard scenario media, the same in parent and child.
func scNews(t testing.TB) media  { return makeChirp(t, 300, 900, 2500*time.Millisecond) }
func scAlarm(t testing.TB) media { return makeChirp(t, 1000, 500, 600*time.Millisecond) }

const (
	scTone      = time.Second
	scVolume    = 60
	scEmergency = 90
)

// openTimedSink opens the sound card and waits until sound flows steadily
// (warmUpTime).
func openTimedSink(t testing.TB) *timedSink {
	t.Helper()
	sink, err := otosink.New(audio.DefaultFormat)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Play(context.Background(), "warm-up", bytes.NewReader(audio.Silence(audio.DefaultFormat, warmUpTime))); err != nil {
		t.Fatal(err)
	}
	return &timedSink{Sink: sink, origin: time.Now()}
}

// runSoundChild runs the test named child in a child process playing into
// pulse, and returns the timings it printed.
func runSoundChild(t testing.TB, pulse *pulsetest.Server, child string, env ...string) []timing {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+child+"$", "-test.count=1", "-test.v")
	cmd.Env = append(append(pulse.Env(), soundChildEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var ts []timing
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), timingPrefix); ok {
			var tm timing
			if err := json.Unmarshal([]byte(s), &tm); err != nil {
				t.Fatal(err)
			}
			ts = append(ts, tm)
		}
	}
	if testing.Verbose() {
		t.Logf("child:\n%s", out)
	}
	return ts
}

// burst is a stretch of sound in the capture, in frames.
type burst struct{ from, to int }

// bursts splits stereo x into stretches of sound separated by at least gap
// frames of silence.
func bursts(x []float32, gap int) []burst {
	const quiet = 1e-4
	var out []burst
	silent := gap
	for f := 0; f < len(x)/2; f++ {
		loud := math.Abs(float64(x[2*f])) > quiet || math.Abs(float64(x[2*f+1])) > quiet
		switch {
		case loud && silent >= gap:
			out = append(out, burst{f, f + 1})
		case loud:
			out[len(out)-1].to = f + 1
		}
		if loud {
			silent = 0
		} else {
			silent++
		}
	}
	return out
}

// firstSound is the first frame of stereo x louder than the capture's
// silence threshold.
func firstSound(x []float32) int {
	for f := 0; f < len(x)/2; f++ {
		if math.Abs(float64(x[2*f])) > 1e-4 || math.Abs(float64(x[2*f+1])) > 1e-4 {
			return f
		}
	}
	return -1
}

// agreement compares got from frame g with want from frame w, frame by
// frame, and returns how many frames agree before the first that differs
// by more than 1e-3 (as the otosink test allows).
func agreement(got []float32, g int, want []float32, w int) int {
	n := 0
	for ; 2*(g+n)+1 < len(got) && 2*(w+n)+1 < len(want); n++ {
		if math.Abs(float64(got[2*(g+n)]-want[2*(w+n)])) > 1e-3 || math.Abs(float64(got[2*(g+n)+1]-want[2*(w+n)+1])) > 1e-3 {
			break
		}
	}
	return n
}

// clockOf maps capture frames to the child's clock: frame F went to ALSA at
// F/rate - offset. The offset is calibrated on the plays' starts (the
// capture frame of each play's first sample against when its Play began):
// the smallest difference is the one where oto's mixer took the new
// player at once, within a fraction of its 50 ms period.
func clockOf(starts []int, began []time.Duration) func(frame int) time.Duration {
	off := time.Duration(math.MaxInt64)
	for i, f := range starts {
		off = min(off, time.Duration(f)*time.Second/48000-began[i])
	}
	return func(frame int) time.Duration { return time.Duration(frame)*time.Second/48000 - off }
}

// TestPreemptionChild is the playing half of TestPreemptionThroughSoundCard.
func TestPreemptionChild(t *testing.T) {
	if os.Getenv(soundChildEnv) != "1" {
		t.Skip("run by TestPreemptionThroughSoundCard")
	}
	sink := openTimedSink(t)
	broker := startBroker(t)
	ms := newMediaServer(t)
	ctl := newController(t, broker)
	ctl.config(t0, protocol.DeviceConfig{Groups: []string{}, Volume: scVolume, EmergencyVolume: scEmergency})
	news, alarm := scNews(t), scAlarm(t)
	ms.add(news)
	ms.add(alarm)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, sink: sink, tone: scTone})

	var items []protocol.PlanItem
	for k, rule := range []string{protocol.OnPreemptRestart, protocol.OnPreemptResume} {
		at := t0.Add(time.Duration(3*k) * time.Second)
		n := item("news-"+rule, at, 10*time.Minute, news)
		n.OnPreempt = rule
		// The emergency is in the same plan, due (on the fake clock) after
		// the idle output's cue lead, so that the cut waits for no message:
		// on a loaded machine the news would otherwise end before the
		// emergency had even arrived.
		e := item("alarm-"+rule, at.Add(cueLead+time.Second), 10*time.Minute, alarm)
		e.Priority = protocol.Emergency
		items = append(items, n, e)
		ctl.plan("all", at, items...)
		ctl.waitEvent(n.ID, protocol.EventPlaying)
		ctl.waitEvent(e.ID, protocol.EventReady)
		// Let the news be heard for a while: real time, no schedule.
		time.Sleep(700 * time.Millisecond)
		b.clock.Advance(cueLead + time.Second)
		ctl.waitEvent(n.ID, protocol.EventPlayed)
		want := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPreempted, protocol.EventPlaying, protocol.EventPlayed}
		if got := ctl.eventsOf(n.ID); !slices.Equal(got, want) {
			t.Fatalf("%s: events %v, want %v", n.ID, got, want)
		}
		b.clock.Advance(time.Second)
	}
	b.stop()
	sink.print()
}

// TestPreemptionThroughSoundCard runs a box on the real oto sink into
// PulseAudio: a normal item plays, an emergency with a siren and a short
// message cuts it, then the normal item plays again: from its beginning
// (restart), then, for a second item, from where it was cut (resume). The
// captured samples must show exactly that, sample for sample.
func TestPreemptionThroughSoundCard(t *testing.T) {
	if os.Getenv(soundChildEnv) == "1" {
		t.Skip("in the child")
	}
	pulse := pulsetest.Start(t)
	ts := runSoundChild(t, pulse, "TestPreemptionChild")
	got := audio.Floats(pulse.Captured(t))
	news := expectedPCM(t, scNews(t), scVolume)
	alarm := expectedPCM(t, scAlarm(t), scEmergency)
	siren, _ := alertPCM(protocol.ToneSiren, scEmergency, scTone)

	if len(ts) != 6 {
		t.Fatalf("%d plays, want 6 (news, alarm, news; twice): %+v", len(ts), ts)
	}
	newsStart, sirenStart, alarmStart := firstSound(news), firstSound(siren), firstSound(alarm)
	whole := func(x []float32, from int) int { return len(x)/2 - from - 2*ms }

	// Walk through the capture, finding each expected piece after the last.
	at := firstSound(got)
	if at < 0 {
		t.Fatal("the capture is silent")
	}
	var starts []int // the capture frame where each play's first sample fell
	var began []time.Duration
	type cutInfo struct{ fadeFrom, fadeTo, newsFrame int }
	var cuts []cutInfo
	for k, rule := range []string{protocol.OnPreemptRestart, protocol.OnPreemptResume} {
		// The news from its start, until the cut.
		p := find(got, at, 2*ms, news, newsStart, 5000*ms)
		if p < 0 {
			t.Fatalf("%s: the news does not start where expected (frame %d)", rule, at)
		}
		c := agreement(got, p, news, newsStart)
		if c < 500*ms || newsStart+c >= len(news)/2-ms {
			t.Fatalf("%s: the news played %d ms before it changed, of %d ms", rule, c/ms, len(news)/2/ms)
		}
		// The siren comes next; between the two, the news fades out.
		sp := find(got, p+c, whole(siren, sirenStart), siren, sirenStart, 500*ms)
		if sp < 0 {
			t.Fatalf("%s: no siren after the cut", rule)
		}
		end := p + c
		for f := p + c; f < sp-sirenStart; f++ {
			if math.Abs(float64(got[2*f])) > 1e-4 {
				end = f + 1
			}
		}
		fade := end - (p + c)
		if fade > 70*ms {
			t.Errorf("%s: the cut took %d ms to fall silent in the stream, want one oto period (50 ms)", rule, fade/ms)
		}
		var step float64
		for f := p + 1; f < end; f++ {
			step = max(step, math.Abs(float64(got[2*f]-got[2*f-2])))
		}
		if step > 0.03 {
			t.Errorf("%s: a step of %.3f in the cut: a click", rule, step)
		}
		starts, began = append(starts, p-newsStart), append(began, ts[3*k].Began)
		cuts = append(cuts, cutInfo{p + c, end, newsStart + c})

		// The siren, then after half a second the message, at the
		// emergency volume.
		starts, began = append(starts, sp-sirenStart), append(began, ts[3*k+1].Began)
		sirenEnd := sp - sirenStart + len(siren)/2
		mp := find(got, sirenEnd, whole(alarm, alarmStart), alarm, alarmStart, 600*ms)
		if mp < 0 {
			t.Fatalf("%s: no message after the siren", rule)
		}
		if gap := mp - alarmStart - sirenEnd; gap != int(audio.DefaultFormat.Bytes(toneGap))/8 {
			t.Errorf("%s: %d frames between siren and message, want %v", rule, gap, toneGap)
		}
		at = mp - alarmStart + len(alarm)/2

		// The news again.
		switch rule {
		case protocol.OnPreemptRestart:
			np := find(got, at, whole(news, newsStart), news, newsStart, 500*ms)
			if np < 0 {
				t.Fatal("restart: the news does not play again from its beginning")
			}
			starts, began = append(starts, np-newsStart), append(began, ts[3*k+2].Began)
			at = np + len(news)/2 - newsStart
		case protocol.OnPreemptResume:
			// Where it went on: the frame of the news that the sound after
			// the 20 ms fade-in matches to the end.
			inN := 20 * ms
			first := firstSound(got[2*at:]) + at
			r := -1
			for dq := 0; dq <= 20 && r < 0; dq++ {
				for cand := 0; cand+inN < len(news)/2; cand++ {
					if n := agreement(got, first-dq+inN, news, cand+inN); n > 100*ms && cand+inN+n >= len(news)/2-ms {
						r = cand
						break
					}
				}
			}
			if r < 0 {
				t.Fatal("resume: the sound after the message is not the rest of the news")
			}
			cutFrame := cuts[k].newsFrame
			t.Logf("resume: went on from %d ms of the news; the cut began fading at %d ms", r/ms, cutFrame/ms)
			// The decision falls within one mixer period (50 ms) of the
			// fade's start, and the news goes on resumeRewind (100 ms)
			// before the decision.
			if r > cutFrame || cutFrame-r > 200*ms {
				t.Errorf("resume: went on from %d ms, but the cut fell at %d ms", r/ms, cutFrame/ms)
			}
		}
	}

	// How long the cut took, on the child's clock.
	written := clockOf(starts, began)
	for k, c := range cuts {
		t.Logf("cut %d: the decision came %v into the news; its fade reached ALSA %v later and ended %v later (heard one ALSA buffer, %v, after that)",
			k+1, ts[3*k].Cut-ts[3*k].Began, written(c.fadeFrom)-ts[3*k].Cut, written(c.fadeTo)-ts[3*k].Cut, otosink.BufferSize)
	}
}

// find returns the first frame f in [from, from+within) at which got agrees
// with want (from wantFrom) for at least n frames, or -1.
func find(got []float32, from, n int, want []float32, wantFrom int, within int) int {
	for f := max(from, 0); f < from+within && 2*f < len(got); f++ {
		if agreement(got, f, want, wantFrom) >= n {
			return f
		}
	}
	return -1
}

// TestPreemptCutsChild is the playing half of the oto benchmark: it plays
// the news through the agent's player and cuts it, several times.
func TestPreemptCutsChild(t *testing.T) {
	if os.Getenv(soundChildEnv) != "1" {
		t.Skip("run by BenchmarkPreemptToSilence")
	}
	sink := openTimedSink(t)
	a := fuzzAgent(t)
	a.sink, a.format, a.sinkFades = sink, sink.Format(), sinkFadesOnCancel(sink.Sink)
	news := scNews(t)
	var pcm bytes.Buffer
	if _, err := audio.Transcode(bytes.NewReader(news.data), a.format, &pcm); err != nil {
		t.Fatal(err)
	}
	path := a.pcmPath(news.sha)
	if err := os.WriteFile(path, pcm.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(os.Getenv(cutsEnv))
	for i := range max(n, 1) {
		it := protocol.PlanItem{ID: fmt.Sprintf("news-%d", i), Repeat: 1, Media: news.ref()}
		j, cut := cutJob(it, path, scVolume)
		done := make(chan playResult)
		go func() { done <- a.play(j) }()
		time.Sleep(time.Duration(400+37*(i%7)) * time.Millisecond) // real playing time, varied against the mixer's period
		cut()
		if r := <-done; r.err != nil || r.completed {
			t.Fatalf("cut play: %+v", r)
		}
		time.Sleep(300 * time.Millisecond)
	}
	sink.print()
}

func init() { otoBench = benchOto }

// benchOto measures cuts through oto into PulseAudio: one child process
// makes b.N cuts (use -benchtime=10x: every cut takes a second of sound).
func benchOto(b *testing.B) {
	pulse := pulsetest.Start(b)
	b.ResetTimer()
	lat := otoCutLatencies(b, pulse, b.N)
	b.StopTimer()
	reportLatencies(b, lat, "written")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]+otosink.BufferSize)/1e6, "ms-heard-median")
}

// otoCutLatencies runs the child and returns, per cut, the time from the
// decision to the last sound heard, as the capture shows it.
func otoCutLatencies(b testing.TB, pulse *pulsetest.Server, cuts int) []time.Duration {
	ts := runSoundChild(b, pulse, "TestPreemptCutsChild", fmt.Sprintf("%s=%d", cutsEnv, cuts))
	got := audio.Floats(pulse.Captured(b))
	bs := bursts(got, 5*48)
	if len(bs) != len(ts) {
		b.Fatalf("%d bursts of sound for %d plays", len(bs), len(ts))
	}
	first := firstSound(expectedPCM(b, scNews(b), scVolume))
	var starts []int
	var began []time.Duration
	for i, tm := range ts {
		starts, began = append(starts, bs[i].from-first), append(began, tm.Began)
	}
	written := clockOf(starts, began)
	var out []time.Duration
	for i, tm := range ts {
		out = append(out, written(bs[i].to)-tm.Cut)
	}
	return out
}

// warmUpTime is the silence a sound-card child plays before its test. A
// fresh stream of the private PulseAudio stalls for most of a second within
// its first seconds, and the item playing then never reaches the capture
// (with 200 ms, about one run in eight lost its first item; with 1.5 s, 7 in
// 12; with 4 s, none in 16).
const warmUpTime = 4 * time.Second
