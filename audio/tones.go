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
