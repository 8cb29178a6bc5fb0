package e2e

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/pulsetest"
)

// TestBoxPlaysThroughSoundCard runs a real box with its default output
// (oto → ALSA) into a private PulseAudio null sink and checks that what
// reached ALSA is the announcement × the box's volume, sample for sample.
func TestBoxPlaysThroughSoundCard(t *testing.T) {
	pulse := pulsetest.Start(t)
	c := newCommune(t, "", "")
	cfg := c.addBox("speaker", "thon-1")
	c.cli.ok("device", "volume", "speaker", "60")
	procEnv(t, pulse.Env(), c.dir, "speaker", "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, "cache"), "--output", "alsa")
	c.waitOnline("speaker")
	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	c.cli.json(&struct{}{}, "announce", "--media", media.ID, "--device", "speaker", "--wait", "--timeout", "60s")

	want := expectedPCM(t, "testdata/short.mp3", 60)
	var got []float32
	// played is reported once oto has drained; the capture file may trail a little.
	eventually(t, 10*time.Second, "the capture to hold the whole announcement", func() bool {
		got = audio.Floats(pulse.Captured(t))
		g0, g1 := pulsetest.Span(got, 1e-4, 2)
		w0, w1 := pulsetest.Span(want, 1e-4, 2)
		return g0 >= 0 && g1-g0 >= w1-w0
	})
	g0, _ := pulsetest.Span(got, 1e-4, 2)
	w0, w1 := pulsetest.Span(want, 1e-4, 2)
	var maxDiff float64
	for i := 0; i < w1-w0; i++ {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[g0+i]-want[w0+i])))
	}
	if maxDiff > 1e-3 {
		t.Fatalf("the sound card got the announcement with samples off by up to %g", maxDiff)
	}
	t.Logf("%d frames reached the sound card, max difference %g", (w1-w0)/2, maxDiff)
}
