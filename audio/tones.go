package audio

import (
	"encoding/binary"
	"math"
	"time"
)

// ChimeDuration is how long Chime plays.
const ChimeDuration = 1200 * time.Millisecond

// Chime returns a two-note "ding-dong" (E5 then C5, bell-like partials,
// each note struck with a short attack and decaying) lasting ChimeDuration,
// as float32 little-endian PCM in f, played before announcements. It starts
// and ends at zero with short ramps, so it never clicks. An invalid f gives
// nil.
func Chime(f Format) []byte {
	if !validFormat(f) {
		return nil
	}
	rate := float64(f.SampleRate)
	frames := int(ChimeDuration.Seconds() * rate)
	type note struct{ start, freq float64 }
	notes := []note{{0, 659.26}, {0.42, 523.25}}
	partials := []struct{ mul, amp float64 }{{1, 1}, {2, 0.25}, {3, 0.08}}
	const (
		level  = 0.3  // peak of one note
		attack = 0.01 // seconds
		decay  = 0.35 // seconds, time constant
	)
	norm := 0.0
	for _, p := range partials {
		norm += p.amp
	}
	return synth(f, frames, 0.08, func(i int) float64 {
		t := float64(i) / rate
		var v float64
		for _, n := range notes {
			dt := t - n.start
			if dt < 0 {
				continue
			}
			env := math.Exp(-dt / decay)
			if dt < attack {
				env *= 0.5 - 0.5*math.Cos(math.Pi*dt/attack)
			}
			var nv float64
			for _, p := range partials {
				nv += p.amp * math.Sin(2*math.Pi*n.freq*p.mul*dt)
			}
			v += nv * env
		}
		return level * v / norm
	})
}

// Siren returns a wailing alert tone of duration d as float32 little-endian
// PCM in f: the pitch glides up from 500 Hz to 1100 Hz and back down every
// 4 seconds. It starts and ends at zero with 20 ms ramps. An invalid f
// gives nil.
func Siren(f Format, d time.Duration) []byte {
	if !validFormat(f) || d <= 0 {
		return nil
	}
	rate := float64(f.SampleRate)
	frames := int(f.Bytes(d) / int64(f.BytesPerFrame()))
	const (
		low, high = 500.0, 1100.0
		period    = 4.0 // seconds per rise and fall
		level     = 0.6
	)
	phase := 0.0
	return synth(f, frames, 0.02, func(i int) float64 {
		t := float64(i) / rate
		freq := low + (high-low)*(0.5-0.5*math.Cos(2*math.Pi*t/period))
		v := math.Sin(phase) + 0.2*math.Sin(3*phase)
		phase += 2 * math.Pi * freq / rate
		if phase > 2*math.Pi {
			phase -= 2 * math.Pi
		}
		return level * v / 1.2
	})
}

// Alert tone kinds, spelled as plan items name them (PlanItem.Tone).
const (
	AlertSiren = "siren"
	AlertFlood = "flood"
	AlertStorm = "storm"
	AlertFire  = "fire"
	AlertOther = "other"
)

// AlertKinds lists every kind AlertTone knows.
var AlertKinds = []string{AlertSiren, AlertFlood, AlertStorm, AlertFire, AlertOther}

// alertLevel is the peak of every alert tone: loud, with headroom.
const alertLevel = 0.6

// AlertTone returns d of the alert tone of kind as float32 little-endian
// PCM in f. Each kind has a pattern of its own, so that villagers learn
// what danger a tone means before a word is said:
//
//   - siren: a wail gliding from 500 Hz up to 1100 Hz and back every 4 s
//     (Siren);
//   - flood: long low pulses, 1 s of a 350 Hz horn note then 0.5 s of
//     silence;
//   - storm: a fast warble, the pitch swinging between 650 and 1050 Hz
//     six times a second;
//   - fire: rapid high beeps, 1300 Hz, 0.12 s on and 0.08 s off;
//   - other: a steady hi-lo two-tone, 950 Hz then 750 Hz, half a second
//     each.
//
// Pitch changes keep the phase, pulses rise and fall with short ramps, and
// the tone starts and ends at zero with 20 ms ramps, so it never clicks.
// An unknown kind, an invalid f or d <= 0 gives nil.
func AlertTone(f Format, kind string, d time.Duration) []byte {
	if !validFormat(f) || d <= 0 {
		return nil
	}
	rate := float64(f.SampleRate)
	frames := int(f.Bytes(d) / int64(f.BytesPerFrame()))
	var signal func(i int) float64
	switch kind {
	case AlertSiren:
		return Siren(f, d)
	case AlertFlood:
		osc := newOsc(rate, []float64{1, 0.3, 0.15})
		signal = func(i int) float64 {
			t := float64(i) / rate
			return alertLevel * osc.next(350) * gate(t, 1.0, 1.5, 0.04)
		}
	case AlertStorm:
		osc := newOsc(rate, []float64{1, 0.1})
		signal = func(i int) float64 {
			t := float64(i) / rate
			freq := 850 + 200*math.Sin(2*math.Pi*6*t)
			return alertLevel * osc.next(freq)
		}
	case AlertFire:
		osc := newOsc(rate, []float64{1})
		signal = func(i int) float64 {
			t := float64(i) / rate
			return alertLevel * osc.next(1300) * gate(t, 0.12, 0.2, 0.008)
		}
	case AlertOther:
		osc := newOsc(rate, []float64{1, 0.15})
		signal = func(i int) float64 {
			t := float64(i) / rate
			// 5 ms glides between the two notes keep the switch smooth.
			x := math.Mod(t, 1.0)
			var freq float64
			switch {
			case x < 0.005:
				freq = 750 + 200*x/0.005
			case x < 0.5:
				freq = 950
			case x < 0.505:
				freq = 950 - 200*(x-0.5)/0.005
			default:
				freq = 750
			}
			return alertLevel * osc.next(freq)
		}
	default:
		return nil
	}
	return synth(f, frames, 0.02, signal)
}

// osc is a phase-continuous oscillator with harmonics: changing its
// frequency between samples never makes a step in the wave.
type osc struct {
	rate  float64
	phase float64
	amps  []float64 // of the fundamental and each harmonic
	norm  float64
}

func newOsc(rate float64, amps []float64) *osc {
	o := &osc{rate: rate, amps: amps}
	for _, a := range amps {
		o.norm += a
	}
	return o
}

// next returns the current sample in [-1, 1] and advances by one sample at
// freq.
func (o *osc) next(freq float64) float64 {
	var v float64
	for k, a := range o.amps {
		v += a * math.Sin(float64(k+1)*o.phase)
	}
	o.phase += 2 * math.Pi * freq / o.rate
	if o.phase > 2*math.Pi {
		o.phase -= 2 * math.Pi
	}
	return v / o.norm
}

// gate is 1 during the first on seconds of every period and 0 after, with
// raised-cosine edges of ramp seconds inside the on part.
func gate(t, on, period, ramp float64) float64 {
	x := math.Mod(t, period)
	switch {
	case x >= on:
		return 0
	case x < ramp:
		return 0.5 - 0.5*math.Cos(math.Pi*x/ramp)
	case x > on-ramp:
		return 0.5 - 0.5*math.Cos(math.Pi*(on-x)/ramp)
	}
	return 1
}

// Silence returns d of silence as float32 PCM in f (whole frames).
func Silence(f Format, d time.Duration) []byte {
	if !validFormat(f) || d <= 0 {
		return nil
	}
	return make([]byte, f.Bytes(d))
}

func validFormat(f Format) bool {
	return f.Channels >= 1 && f.Channels <= MaxChannels && f.SampleRate > 0
}

// synth renders frames of a mono signal to every channel of f, with raised
// cosine ramps of ramp seconds at both ends (shortened for short tones).
func synth(f Format, frames int, ramp float64, signal func(i int) float64) []byte {
	out := make([]byte, frames*f.BytesPerFrame())
	rampN := min(int(ramp*float64(f.SampleRate)), frames/2)
	for i := 0; i < frames; i++ {
		v := signal(i)
		if k := min(i, frames-1-i); k < rampN {
			v *= 0.5 - 0.5*math.Cos(math.Pi*float64(k)/float64(rampN))
		}
		bits := math.Float32bits(float32(v))
		for c := 0; c < f.Channels; c++ {
			binary.LittleEndian.PutUint32(out[(i*f.Channels+c)*4:], bits)
		}
	}
	return out
}
