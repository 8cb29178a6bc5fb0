package audio

import (
	"math"
	"testing"
	"time"
)

// window describes one stretch of a tone: how loud, at what pitch.
type window struct {
	rms  float64
	freq float64
}

// windows cuts the mono signal x into windows of d and measures each.
func windows(x []float32, rate int, d time.Duration) []window {
	n := int(d.Seconds() * float64(rate))
	var out []window
	for at := 0; at+n <= len(x); at += n {
		w := x[at : at+n]
		var sum float64
		for _, v := range w {
			sum += float64(v) * float64(v)
		}
		out = append(out, window{rms: math.Sqrt(sum / float64(n)), freq: zeroCrossingFreq(w, rate)})
	}
	return out
}

// runs returns the lengths of the runs of sounding windows (rms above
// quiet) and of silent ones, skipping the first and last run, which the
// tone's length cuts.
func runs(ws []window, quiet float64) (on, off []int) {
	var lens []int
	var kinds []bool
	for i, w := range ws {
		s := w.rms > quiet
		if i == 0 || s != kinds[len(kinds)-1] {
			lens, kinds = append(lens, 0), append(kinds, s)
		}
		lens[len(lens)-1]++
	}
	for i := 1; i+1 < len(lens); i++ {
		if kinds[i] {
			on = append(on, lens[i])
		} else {
			off = append(off, lens[i])
		}
	}
	return on, off
}

func TestAlertTones(t *testing.T) {
	const d = 6 * time.Second
	const ms = time.Millisecond
	for _, f := range []Format{DefaultFormat, {22050, 1}} {
		for _, kind := range AlertKinds {
			t.Run(kind, func(t *testing.T) {
				pcm := AlertTone(f, kind, d)
				if len(pcm) != int(f.Bytes(d)) {
					t.Fatalf("%d bytes, want %d", len(pcm), f.Bytes(d))
				}
				all := Floats(pcm)
				for i := range all {
					if all[i] != all[i-i%f.Channels] {
						t.Fatal("channels differ")
					}
				}
				x := channel(all, f.Channels, 0)
				if x[0] != 0 || math.Abs(float64(x[len(x)-1])) > 1e-3 {
					t.Errorf("starts at %v, ends at %v: want 0", x[0], x[len(x)-1])
				}
				// No clicks: no step larger than a full-scale 1.2 kHz sine makes.
				limit := 2 * math.Pi * 1200 / float64(f.SampleRate)
				var peak float64
				for i := range x {
					peak = max(peak, math.Abs(float64(x[i])))
					if i > 0 && math.Abs(float64(x[i]-x[i-1])) > limit {
						t.Fatalf("step of %.3f at sample %d", x[i]-x[i-1], i)
					}
				}
				if peak > 0.9 || peak < 0.4 {
					t.Errorf("peak %.2f, want loud with headroom", peak)
				}

				ws := windows(x, f.SampleRate, 20*ms)
				on, off := runs(ws, 0.05)
				minF, maxF := math.Inf(1), 0.0
				for _, w := range ws[2 : len(ws)-2] {
					if w.rms > 0.2 {
						minF, maxF = min(minF, w.freq), max(maxF, w.freq)
					}
				}
				t.Logf("sounding runs %v, silent runs %v (×20 ms); pitch %.0f..%.0f Hz", on, off, minF, maxF)
				// What makes each kind recognisable.
				switch kind {
				case AlertSiren:
					if len(off) != 0 || minF > 600 || maxF < 1000 {
						t.Errorf("want a continuous wail over 500..1100 Hz")
					}
					// It glides: the pitch of neighbouring 20 ms windows is close.
					for i := 3; i < len(ws)-3; i++ {
						if math.Abs(ws[i].freq-ws[i-1].freq) > 60 {
							t.Errorf("pitch jumps from %.0f to %.0f Hz at %v", ws[i-1].freq, ws[i].freq, time.Duration(i)*20*ms)
						}
					}
				case AlertFlood:
					if len(on) < 2 || maxF > 450 {
						t.Errorf("want low pulses")
					}
					for _, n := range on {
						if n < 45 || n > 52 {
							t.Errorf("pulse of %d ms, want about 1 s", n*20)
						}
					}
					for _, n := range off {
						if n < 23 || n > 30 {
							t.Errorf("pause of %d ms, want about 0.5 s", n*20)
						}
					}
				case AlertStorm:
					if len(off) != 0 || minF > 750 || maxF < 950 {
						t.Errorf("want a continuous warble over 650..1050 Hz")
					}
					// Swings: over every 1/6 s the pitch moves by 200 Hz or more.
					for i := 10; i+9 < len(ws)-2; i += 9 {
						lo, hi := math.Inf(1), 0.0
						for _, w := range ws[i : i+9] {
							lo, hi = min(lo, w.freq), max(hi, w.freq)
						}
						if hi-lo < 200 {
							t.Errorf("pitch stays within %.0f..%.0f Hz at %v", lo, hi, time.Duration(i)*20*ms)
						}
					}
				case AlertFire:
					if minF < 1150 {
						t.Errorf("want high beeps")
					}
					if len(on) < 20 {
						t.Errorf("%d beeps in %v, want about 5 a second", len(on), d)
					}
					for _, n := range on {
						if n > 7 {
							t.Errorf("beep of %d ms, want short", n*20)
						}
					}
				case AlertOther:
					if len(off) != 0 {
						t.Errorf("want a continuous tone")
					}
					var low, high int
					for _, w := range windows(x, f.SampleRate, 100*ms)[1:] {
						switch {
						case math.Abs(w.freq-750) < 40:
							low++
						case math.Abs(w.freq-950) < 40:
							high++
						}
					}
					if low < 20 || high < 20 {
						t.Errorf("%d windows at 750 Hz and %d at 950 Hz: want two steady notes", low, high)
					}
				}
			})
		}
	}
	t.Run("unknown or invalid", func(t *testing.T) {
		if AlertTone(DefaultFormat, "earthquake", time.Second) != nil ||
			AlertTone(Format{}, AlertFlood, time.Second) != nil ||
			AlertTone(DefaultFormat, AlertFire, 0) != nil {
			t.Fatal("want nil")
		}
	})
	t.Run("short", func(t *testing.T) {
		for _, kind := range AlertKinds {
			x := Floats(AlertTone(Format{48000, 1}, kind, 30*time.Millisecond))
			if len(x) != 1440 || x[0] != 0 {
				t.Errorf("%s: %d samples starting at %v", kind, len(x), x[0])
			}
		}
	})
}
