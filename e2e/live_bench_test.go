package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/internal/pulsetest"
)

// liveBench is a controller with live options and two boxes playing
// through oto into one recorder, the third channel the office microphone
// (as in TestLiveSpeech).
type liveBench struct {
	*commune
	pulse *pulsetest.Boxes
	ids   []string
	beeps string
	runs  int
}

// liveBeeps is how many beeps each measured session speaks.
const liveBeeps = 8

func newLiveBench(b *testing.B, extra string) *liveBench {
	mediatest.Need(b, "ffmpeg", "paplay")
	pulse := pulsetest.StartBoxes(b, 3)
	lb := &liveBench{commune: newCommune(b, "", extra), pulse: pulse, ids: []string{"box-0", "box-1"}, beeps: beeps(b, liveBeeps)}
	for i, id := range lb.ids {
		cfg := lb.addBox(id, "thon-1")
		procEnv(b, pulse.BoxEnv(i), lb.dir, id, "loa-agent", "--config", cfg, "--cache", filepath.Join(lb.dir, id, "cache"), "--output", "alsa")
	}
	lb.waitOnline(lb.ids...)
	eventually(b, 30*time.Second, "time sync on both boxes", func() bool {
		st := lb.status()
		return st["box-0"].ClockOffsetMS != nil && st["box-1"].ClockOffsetMS != nil
	})
	return lb
}

// liveRound is what one session of liveBeeps beeps measured.
type liveRound struct {
	latency  []time.Duration // mouth to speaker, per beep and box heard
	skew     []time.Duration // between the two boxes, per beep both played
	missing  int             // beeps (per box) not heard from delay - 250 ms to delay + 750 ms after
	damaged  int             // beeps heard with less than 90 % of their tone
	missedMS int64           // summed over the boxes: what the report says they missed
	heardMS  int64
	late     int64 // frames the boxes' logs say came after their position was read
}

// agentLate sums the late frames the agents logged at the end of their play
// of session (the agent's "live session play ended" line).
func (lb *liveBench) agentLate(session string) (int64, []string) {
	var n int64
	var lines []string
	for _, id := range lb.ids {
		bs, _ := os.ReadFile(filepath.Join(lb.dir, id+".log"))
		for _, line := range strings.Split(string(bs), "\n") {
			if !strings.Contains(line, "live session play ended") || !strings.Contains(line, "session="+session) {
				continue
			}
			_, v, _ := strings.Cut(line, "late_frames=")
			v, _, _ = strings.Cut(v, " ")
			k, _ := strconv.ParseInt(v, 10, 64)
			n += k
			_, heard, _ := strings.Cut(line, "heard=")
			lines = append(lines, id+": heard="+heard)
		}
	}
	return n, lines
}

// session runs one `loa live` from the microphone, speaks the beeps into it
// once both boxes play, ends it and reads the recording.
func (lb *liveBench) session(b *testing.B, delay time.Duration) liveRound {
	lb.runs++
	name := fmt.Sprintf("live-%d", lb.runs)
	sp := lb.startLive(b, lb.pulse, name)
	rule := sp.rule
	time.Sleep(time.Second) // past the start of the session's sound, which a box may join late
	from := len(lb.pulse.Channels(b)[2])
	lb.pulse.Play(b, "box2", lb.beeps)
	time.Sleep(delay + time.Second)
	sp.stop(b)
	var rows map[string]liveRow
	eventually(b, 30*time.Second, "both boxes to finish the session", func() bool {
		rows = lb.sessionRows(rule)
		return finalStatus(rows["box-0"].Status) && finalStatus(rows["box-1"].Status)
	})
	var r liveRound
	var reasons []string
	for _, id := range lb.ids {
		r.missedMS += rows[id].MissedMS
		r.heardMS += rows[id].HeardMS
		reasons = append(reasons, id+": "+rows[id].Reason)
	}

	ch := lb.pulse.Channels(b)
	const quiet, gap = 0.05, 48000 / 2
	mouth := bursts(ch[2], from, quiet, gap)
	if len(mouth) != liveBeeps {
		b.Fatalf("the mouth's channel has %d bursts after frame %d, want %d", len(mouth), from, liveBeeps)
	}
	// Beeps are a second apart: the one a box plays for a beep is the
	// one in the second around the play-out delay after it.
	lo, hi := int((delay-250*time.Millisecond).Seconds()*48000), int((delay+750*time.Millisecond).Seconds()*48000)
	heard := make([][]int, 2) // per box, per beep: the onset, or -1
	for i := range heard {
		onsets := bursts(ch[i], from, quiet, gap)
		for _, m := range mouth {
			k := slices.IndexFunc(onsets, func(h int) bool { return h >= m+lo && h < m+hi })
			if k < 0 {
				heard[i] = append(heard[i], -1)
				r.missing++
				continue
			}
			h := onsets[k]
			heard[i] = append(heard[i], h)
			r.latency = append(r.latency, frames(h-m))
			if toneShare(ch[i], h, quiet) < 0.9 {
				r.damaged++
			}
		}
	}
	for k := range mouth {
		if heard[0][k] >= 0 && heard[1][k] >= 0 {
			r.skew = append(r.skew, frames(heard[0][k]-heard[1][k]).Abs())
		}
	}
	var agents []string
	r.late, agents = lb.agentLate(rule)
	b.Logf("%s: latency %v; skew %v; missing %d, damaged %d; report heard %d ms, missed %d ms (%s); agents: %s",
		rule, r.latency, r.skew, r.missing, r.damaged, r.heardMS, r.missedMS, strings.Join(reasons, "; "), strings.Join(agents, "; "))
	return r
}

// toneShare is the share of the 10 ms blocks of a 300 ms beep starting at
// from (its first 280 ms) in which x is louder than quiet: 1 for a beep
// played whole, less where frames were late or lost.
func toneShare(x []float32, from int, quiet float64) float64 {
	const block, blocks = 480, 28
	loud := 0
	for k := range blocks {
		lo := from + k*block
		if lo+block > len(x) {
			break
		}
		peak := 0.0
		for _, v := range x[lo : lo+block] {
			peak = math.Max(peak, math.Abs(float64(v)))
		}
		if peak > quiet {
			loud++
		}
	}
	return float64(loud) / blocks
}

// BenchmarkLiveLatency measures live speech end to end: a PulseAudio source
// is the office microphone (`loa live --source`), two real agents play
// through oto into the same recorder, and each iteration speaks 8 beeps of
// 300 ms, one a second. Reported, over all beeps and both boxes: the
// mouth-to-speaker latency (p50, p95, max), the skew between the boxes
// (median, max), beeps not heard or not heard whole, and what the boxes'
// reports say they missed, for play-out delays from the default 1.5 s down.
// A box with a sound card reads a session 400 ms ahead
// (device.streamCardReadAhead), and the controller sends a packet when its
// last frame arrived: frames reach the card in time while delay ≳ 400 ms +
// packet_duration - 20 ms.
func BenchmarkLiveLatency(b *testing.B) {
	for _, tc := range []struct {
		name                   string
		delay, minLead, packet time.Duration
	}{
		{"delay-1500ms", 1500 * time.Millisecond, 0, 0}, // the defaults
		{"delay-1000ms", 1000 * time.Millisecond, 0, 0},
		{"delay-700ms", 700 * time.Millisecond, 200 * time.Millisecond, 0},
		{"delay-600ms", 600 * time.Millisecond, 150 * time.Millisecond, 0},
		{"delay-500ms", 500 * time.Millisecond, 150 * time.Millisecond, 0},
		{"delay-480ms", 480 * time.Millisecond, 150 * time.Millisecond, 0},
		{"delay-460ms-packet-40ms", 460 * time.Millisecond, 150 * time.Millisecond, 40 * time.Millisecond},
		{"delay-440ms-packet-40ms", 440 * time.Millisecond, 150 * time.Millisecond, 40 * time.Millisecond},
		{"delay-420ms-packet-20ms", 420 * time.Millisecond, 150 * time.Millisecond, 20 * time.Millisecond},
		{"delay-400ms-packet-20ms", 400 * time.Millisecond, 150 * time.Millisecond, 20 * time.Millisecond},
		{"delay-400ms", 400 * time.Millisecond, 150 * time.Millisecond, 0},
		{"delay-300ms", 300 * time.Millisecond, 150 * time.Millisecond, 0},
		{"delay-200ms", 200 * time.Millisecond, 80 * time.Millisecond, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			extra := fmt.Sprintf("live:\n  delay: %s\n", tc.delay)
			if tc.minLead > 0 {
				extra += fmt.Sprintf("  min_lead: %s\n", tc.minLead)
			}
			if tc.packet > 0 {
				extra += fmt.Sprintf("  packet_duration: %s\n", tc.packet)
			}
			lb := newLiveBench(b, extra)
			var all liveRound
			for b.Loop() {
				r := lb.session(b, tc.delay)
				all.latency = append(all.latency, r.latency...)
				all.skew = append(all.skew, r.skew...)
				all.missing += r.missing
				all.damaged += r.damaged
				all.missedMS += r.missedMS
				all.heardMS += r.heardMS
				all.late += r.late
			}
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			if n := len(all.latency); n > 0 {
				slices.Sort(all.latency)
				b.ReportMetric(ms(all.latency[n/2]), "ms-latency-p50")
				b.ReportMetric(ms(all.latency[n*95/100]), "ms-latency-p95")
				b.ReportMetric(ms(all.latency[n-1]), "ms-latency-max")
			}
			if n := len(all.skew); n > 0 {
				slices.Sort(all.skew)
				b.ReportMetric(ms(all.skew[n/2]), "ms-skew-median")
				b.ReportMetric(ms(all.skew[n-1]), "ms-skew-max")
			}
			b.ReportMetric(float64(all.missing), "beeps-missing")
			b.ReportMetric(float64(all.damaged), "beeps-damaged")
			b.ReportMetric(float64(all.missedMS), "ms-missed-report")
			b.ReportMetric(float64(all.heardMS), "ms-heard-report")
			b.ReportMetric(float64(all.late), "frames-late-agents")
		})
	}
}
