//go:build cgo && linux

package otosink

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/pulsetest"
)

const (
	childEnv   = "LOA_OTOSINK_CHILD"
	testVolume = 70
	media      = "../testdata/tone.wav"
)

// transcoded is tone.wav in the sound card's format, as the agent would
// cache it.
func transcoded(t *testing.T) []byte {
	t.Helper()
	f, err := os.Open(media)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pcm bytes.Buffer
	if _, err := audio.Transcode(f, audio.DefaultFormat, &pcm); err != nil {
		t.Fatal(err)
	}
	return pcm.Bytes()
}

// TestPlayChild is the playing half of TestPlayCaptured, run in a child
// process because ALSA reads ALSA_CONFIG_PATH once per process.
func TestPlayChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("run by TestPlayCaptured")
	}
	t0 := time.Now()
	sink, err := New(audio.DefaultFormat)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("opened in %v", time.Since(t0))
	if again, err := New(audio.DefaultFormat); err != nil || again.ctx != sink.ctx {
		t.Fatalf("second New: %v", err)
	}
	if _, err := New(audio.Format{SampleRate: 44100, Channels: 2}); err == nil {
		t.Fatal("New with another format should fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pcm := audio.NewGainReader(bytes.NewReader(transcoded(t)), audio.VolumeGain(testVolume))
	start := time.Now()
	if err := sink.Play(ctx, "tone", pcm); err != nil {
		t.Fatal(err)
	}
	t.Logf("played 1 s in %v", time.Since(start))
	// A cancelled Play returns promptly with the context's error.
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	if err := sink.Play(cctx, "cut", bytes.NewReader(audio.Silence(audio.DefaultFormat, 10*time.Second))); err != context.DeadlineExceeded {
		t.Fatalf("cancelled Play = %v", err)
	}
}

// TestPlayCaptured plays tone.wav at volume 70 through oto, ALSA and a
// private PulseAudio null sink, captures what reached ALSA with its file
// plugin, and checks it is the media × VolumeGain(70), sample for sample.
func TestPlayCaptured(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		t.Skip("in the child")
	}
	pulse := pulsetest.Start(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPlayChild$", "-test.count=1", "-test.v")
	child.Env = append(pulse.Env(), childEnv+"=1")
	out, err := child.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}

	raw := pulse.Captured(t)
	got := audio.Floats(raw)
	want := audio.Floats(transcoded(t))
	gain := audio.VolumeGain(testVolume)
	for i := range want {
		want[i] *= gain
	}
	const ch = 2
	const quiet = 1e-4
	g0, g1 := pulsetest.Span(got, quiet, ch)
	w0, w1 := pulsetest.Span(want, quiet, ch)
	if g0 < 0 {
		t.Fatalf("capture of %d bytes is silent", len(raw))
	}
	t.Logf("capture: %d frames, sound from frame %d to %d; media sound from %d to %d",
		len(got)/ch, g0/ch, g1/ch, w0/ch, w1/ch)
	if d := (g1 - g0) - (w1 - w0); d < -5*48*ch || d > 5*48*ch {
		t.Errorf("sound lasts %d frames, media %d", (g1-g0)/ch, (w1-w0)/ch)
	}
	if len(got)-g0 < len(want)-w0 {
		t.Fatalf("capture ends %d frames early", (len(want)-w0-(len(got)-g0))/ch)
	}
	var maxDiff float64
	at := 0
	for i := 0; i < len(want)-w0; i++ {
		if d := math.Abs(float64(got[g0+i] - want[w0+i])); d > maxDiff {
			maxDiff, at = d, i
		}
	}
	t.Logf("max |captured - media × %.2f| = %g", gain, maxDiff)
	if maxDiff > 1e-3 {
		t.Errorf("captured sample %d differs by %g", at, maxDiff)
	}
}
