package audio

import (
	"encoding/binary"
	"io"
	"math"
	"sync"
	"time"
)

// Fader passes float32 PCM through, fading it in at the start if asked, and
// fading it out on demand: after FadeOut the next stretch of sound ramps
// down to silence (raised cosine) and the stream ends. Cutting a sound this
// way never clicks, however loud it was.
//
// Read and FadeOut may be called from different goroutines; Read returns
// whole frames only.
type Fader struct {
	mu      sync.Mutex
	r       io.Reader
	bpf     int
	rate    int
	inN     int64 // frames of fade-in
	outN    int64 // frames of fade-out, once asked
	pos     int64 // frames read so far
	cutAt   int64 // first frame of the fade-out, or -1
	eof     bool  // the source ended
	err     error
	partial []byte // a frame processed for a read shorter than a frame
}

// NewFader returns a Fader of pcm (float32 LE in f) that fades in over
// fadeIn (0 for none).
func NewFader(pcm io.Reader, f Format, fadeIn time.Duration) *Fader {
	return &Fader{r: pcm, bpf: f.BytesPerFrame(), rate: f.SampleRate, inN: frames(f, fadeIn), cutAt: -1}
}

func frames(f Format, d time.Duration) int64 {
	return f.Bytes(d) / int64(f.BytesPerFrame())
}

// FadeOut makes the next d of sound fade to silence, after which Read
// returns io.EOF. It returns the frame (counted from the start of the
// stream) at which the fade begins: the first frame not yet read. ok is
// false if the source had already ended, or a fade-out was already asked
// for (then frame is where that one began).
func (x *Fader) FadeOut(d time.Duration) (frame int64, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cutAt >= 0 {
		return x.cutAt, false
	}
	if x.eof {
		return x.pos, false
	}
	x.cutAt = x.pos
	x.outN = max(int64(d)*int64(x.rate)/int64(time.Second), 1)
	return x.cutAt, true
}

// Frames returns how many frames have been read.
func (x *Fader) Frames() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.pos
}

// Ended reports whether the source reached its end before any fade-out.
func (x *Fader) Ended() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.eof && x.cutAt < 0
}

// Read reads whole frames, applying the fades.
func (x *Fader) Read(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if len(x.partial) > 0 {
		n := copy(p, x.partial)
		x.partial = x.partial[n:]
		return n, nil
	}
	if len(p) < x.bpf {
		// Too small for a frame: process one into partial and hand it out
		// piece by piece.
		buf := make([]byte, x.bpf)
		n, err := x.read(buf)
		if n == 0 {
			return 0, err
		}
		x.partial = buf[copy(p, buf):]
		return len(p), nil
	}
	return x.read(p[:len(p)/x.bpf*x.bpf])
}

// read fills p (whole frames) from the source and applies the gains.
func (x *Fader) read(p []byte) (int, error) {
	if x.err != nil {
		return 0, x.err
	}
	if x.cutAt >= 0 {
		left := x.cutAt + x.outN - x.pos
		if left <= 0 {
			x.err = io.EOF
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), left*int64(x.bpf))]
	}
	n, err := x.r.Read(p)
	if rem := n % x.bpf; rem != 0 && err == nil {
		// Complete the frame the source split.
		var m int
		m, err = io.ReadFull(x.r, p[n:n+x.bpf-rem])
		n += m
	}
	n -= n % x.bpf
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	for i := 0; i < n; i += x.bpf {
		if g := x.gain(x.pos); g != 1 {
			for c := i; c < i+x.bpf; c += 4 {
				v := math.Float32frombits(binary.LittleEndian.Uint32(p[c:]))
				binary.LittleEndian.PutUint32(p[c:], math.Float32bits(v*g))
			}
		}
		x.pos++
	}
	if err != nil {
		if err == io.EOF && x.cutAt < 0 {
			x.eof = true
		}
		x.err = err
		if n > 0 {
			return n, nil
		}
	}
	return n, err
}

// gain is the factor for frame i.
func (x *Fader) gain(i int64) float32 {
	g := 1.0
	if i < x.inN {
		g = 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(x.inN))
	}
	if x.cutAt >= 0 && i >= x.cutAt {
		k := i - x.cutAt
		if k >= x.outN {
			return 0
		}
		g *= 0.5 + 0.5*math.Cos(math.Pi*float64(k)/float64(x.outN))
	}
	return float32(g)
}
