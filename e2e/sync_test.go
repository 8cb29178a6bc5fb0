package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/pulsetest"
)

// syncedCommune is a controller and boxes playing through their sound cards
// (oto → ALSA → PulseAudio) into one recorder, a channel per box.
type syncedCommune struct {
	*commune
	pulse *pulsetest.Boxes
	ids   []string
	media string
	from  []int // per box: where the next search for a sound starts
}

// newSyncedCommune starts one box per clock skew.
func newSyncedCommune(t testing.TB, skews []time.Duration) *syncedCommune {
	pulse := pulsetest.StartBoxes(t, len(skews))
	c := &syncedCommune{commune: newCommune(t, "", ""), pulse: pulse, from: make([]int, len(skews))}
	for i, skew := range skews {
		id := fmt.Sprintf("box-%d", i)
		cfg := c.addBox(id, "thon-1")
		procEnv(t, pulse.BoxEnv(i), c.dir, id, "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, id, "cache"),
			"--output", "alsa", "--clock-skew", skew.String())
		c.ids = append(c.ids, id)
	}
	c.waitOnline(c.ids...)
	// Every box must have measured its clock before the first start.
	eventually(t, 30*time.Second, "time sync on every box", func() bool {
		st := c.status()
		for _, id := range c.ids {
			if st[id].ClockOffsetMS == nil {
				return false
			}
		}
		return true
	})
	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	c.media = media.ID
	return c
}

// round schedules the announcement a few seconds ahead for every box, waits
// until all played it, and returns where each box's sound began in the
// recording (frames at 48 kHz).
func (c *syncedCommune) round(t testing.TB) []int {
	at := time.Now().Add(4 * time.Second).UTC().Format("2006-01-02T15:04:05Z")
	var a struct{ ID string }
	c.cli.json(&a, "announce", "--media", c.media, "--group", "thon-1", "--at", at)
	eventually(t, 60*time.Second, "every box to play "+a.ID, func() bool {
		r := c.report(a.ID)
		for _, id := range c.ids {
			if r[id].Status != "played" {
				return false
			}
		}
		return true
	})
	onsets := make([]int, len(c.ids))
	eventually(t, 10*time.Second, "the recording of every box", func() bool {
		ch := c.pulse.Channels(t)
		for i := range c.ids {
			o := pulsetest.Onset(ch[i][c.from[i]:], 1e-3)
			if o < 0 {
				return false
			}
			onsets[i] = c.from[i] + o
		}
		return true
	})
	for i := range c.from {
		c.from[i] = onsets[i] + 48000*3 // past this sound (short.mp3 is under 3 s)
	}
	return onsets
}

// skew is the spread between the earliest and the latest start.
func skew(onsets []int) time.Duration {
	lo, hi := slices.Min(onsets), slices.Max(onsets)
	return time.Duration(hi-lo) * time.Second / 48000
}

// TestBoxesStartTogether plays one announcement on three boxes, one of whose
// clocks is 200 ms fast and one 200 ms slow, and measures on the recorded
// output how far apart their first samples are. Without time sync they
// would be 400 ms apart; the bound is loose for a busy CI machine (the
// figure is in docs/benchmarks.md).
func TestBoxesStartTogether(t *testing.T) {
	c := newSyncedCommune(t, []time.Duration{0, 200 * time.Millisecond, -200 * time.Millisecond})
	st := c.status()
	for i, want := range []int64{0, -200, 200} {
		got := *st[c.ids[i]].ClockOffsetMS
		if got < want-20 || got > want+20 {
			t.Errorf("%s measured its clock offset as %d ms, want %d ± 20", c.ids[i], got, want)
		}
	}
	onsets := c.round(t)
	t.Logf("first samples at frames %v: skew %v", onsets, skew(onsets))
	if s := skew(onsets); s > 10*time.Millisecond {
		t.Fatalf("boxes started %v apart (frames %v); want within 10 ms", s, onsets)
	}
}

// BenchmarkStartSkew measures the start-time skew between three boxes on
// the recorded output, over several announcements, with and without a
// ±200 ms clock error on two of them. Reported: the median and the worst
// skew.
func BenchmarkStartSkew(b *testing.B) {
	for _, tc := range []struct {
		name  string
		skews []time.Duration
	}{
		{"synced-clocks", []time.Duration{0, 0, 0}},
		{"offset-200ms", []time.Duration{0, 200 * time.Millisecond, -200 * time.Millisecond}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newSyncedCommune(b, tc.skews)
			var skews []time.Duration
			for b.Loop() {
				o := c.round(b)
				b.Logf("onsets %v skew %v", o, skew(o))
				skews = append(skews, skew(o))
			}
			slices.Sort(skews)
			b.ReportMetric(float64(skews[len(skews)/2])/1e6, "ms-skew-median")
			b.ReportMetric(float64(skews[len(skews)-1])/1e6, "ms-skew-max")
			b.Logf("skews %v", skews)
		})
	}
}

// TestBoxWithClockIn1970 runs a box whose clock is 57 years behind (a Pi
// without a real-time clock, before NTP): it must not schedule by that
// clock, and once time sync has measured the controller's clock it plays a
// scheduled announcement at its start, reported at the controller's time.
func TestBoxWithClockIn1970(t *testing.T) {
	c := newCommune(t, "", "")
	cfg := c.addBox("speaker", "thon-1")
	behind := time.Since(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC))
	played := filepath.Join(c.dir, "speaker", "played")
	proc(t, c.dir, "speaker", "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, "speaker", "cache"),
		"--output", "wav:"+played, "--clock-skew", (-behind).String())
	c.waitOnline("speaker")
	eventually(t, 30*time.Second, "the box to measure its clock", func() bool {
		st := c.status()["speaker"]
		return st.ClockOffsetMS != nil && st.State == "idle"
	})
	if got, want := time.Duration(*c.status()["speaker"].ClockOffsetMS)*time.Millisecond, behind; got < want-time.Second || got > want+time.Second {
		t.Fatalf("offset %v, want about %v", got, want)
	}
	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	start := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
	var a struct{ ID string }
	c.cli.json(&a, "announce", "--media", media.ID, "--device", "speaker", "--at", start.Format("2006-01-02T15:04:05Z"))
	eventually(t, 30*time.Second, "the box to play it", func() bool { return c.report(a.ID)["speaker"].Status == "played" })
	began, err := time.Parse(time.RFC3339, c.report(a.ID)["speaker"].StartedAt)
	if err != nil {
		t.Fatal(err)
	}
	if d := began.Sub(start); d < -time.Second || d > time.Second {
		t.Fatalf("started at %v, %v from its start %v", began, d, start)
	}
	if !fileExists(filepath.Join(played, c.report(a.ID)["speaker"].Item+".wav")) {
		entries, _ := os.ReadDir(played)
		t.Fatalf("no recording of the item; the box wrote %v", entries)
	}
}
