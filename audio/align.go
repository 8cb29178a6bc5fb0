package audio

import (
	"io"
	"slices"
	"time"
)

// StartAligner feeds an output silence until the first frame of its source
// can be heard at a given moment, then the source.
//
// An output reads ahead of what the speaker plays, and its mixer takes data
// from the read-ahead buffer in periods, when the sound card (or sound
// server) has room: so the moment of any one read says little, within a
// period, about when its bytes will be heard. But the card consumes at a
// steady rate, so over many reads, t − taken/rate (the read's time minus
// how long the bytes the mixer took so far play) is a constant plus that
// jitter. The aligner keeps this phase for every read while it feeds
// silence, and places the first frame of the source by the median phase:
// heard(x) = phase + x/rate + downstream, x counted in bytes from its first
// byte. downstream, how long a byte takes from the mixer to the speaker, is
// the same for every box with the same output, so it cancels out between
// neighbouring boxes whatever its error.
type StartAligner struct {
	f          Format
	at         time.Time
	src        io.Reader
	queued     func() int64 // bytes read from the aligner that the mixer has not taken
	downstream time.Duration
	now        func() time.Time
	maxChunk   int64 // bytes of silence per Read before the decision

	written int64           // bytes returned so far
	phases  []time.Duration // per read: its time − the time the taken bytes play, since base
	base    time.Time
	started bool
	// Late is how late the first frame is, if the aligner was read too
	// late to start on time (0 otherwise). Valid once Started.
	Late time.Duration
}

// Aligner tuning.
const (
	// alignWarmup reads are not used for the phase: the output fills its
	// read-ahead buffer then, faster than real time.
	alignWarmup = 4
	// alignMinPhases are needed for the median; with fewer the aligner
	// uses the latest read alone.
	alignMinPhases = 8
	// alignKeep bounds the phases kept (the latest).
	alignKeep = 256
)

// NewStartAligner returns an aligner of src for a first frame heard at at.
// queued reports how many of the bytes read from the aligner the output's
// mixer has not taken yet; downstream is how long the mixer's bytes take to
// be heard. chunk bounds the silence one Read returns before the decision,
// so that the phase is sampled often. now is time.Now when nil.
func NewStartAligner(f Format, at time.Time, src io.Reader, queued func() int64, downstream, chunk time.Duration, now func() time.Time) *StartAligner {
	if now == nil {
		now = time.Now
	}
	return &StartAligner{f: f, at: at, src: src, queued: queued, downstream: downstream, now: now,
		maxChunk: max(f.Bytes(chunk), int64(f.BytesPerFrame()))}
}

// Started reports whether the source has begun.
func (a *StartAligner) Started() bool { return a.started }

// Read returns silence, then the source.
func (a *StartAligner) Read(b []byte) (int, error) {
	if a.started {
		return a.src.Read(b)
	}
	bpf := a.f.BytesPerFrame()
	n := int64(len(b) - len(b)%bpf)
	if n == 0 {
		return 0, nil
	}
	now := a.now()
	firstAt := a.firstByteAt(now) // where a source byte would be heard if it came at a.written
	silence := a.f.Bytes(a.at.Sub(firstAt))
	if c := min(n, a.maxChunk); silence > c {
		clear(b[:c])
		a.written += c
		return int(c), nil
	}
	a.started = true
	if silence < 0 {
		a.Late = a.f.Duration(-silence)
		silence = 0
	}
	clear(b[:silence])
	m, err := a.src.Read(b[silence:n])
	if err == io.EOF && silence > 0 {
		err = nil // the next Read reports the end
	}
	return int(silence) + m, err
}

// firstByteAt records this read's phase and estimates when the byte at
// a.written will be heard.
func (a *StartAligner) firstByteAt(now time.Time) time.Time {
	taken := a.written - a.queued()
	if a.base.IsZero() {
		a.base = now
	}
	phase := now.Sub(a.base) - a.f.Duration(taken)
	if taken > 0 {
		a.phases = append(a.phases, phase)
		if len(a.phases) > alignWarmup+alignKeep {
			a.phases = slices.Delete(a.phases, alignWarmup, len(a.phases)-alignKeep)
		}
	}
	if len(a.phases) >= alignWarmup+alignMinPhases {
		s := slices.Clone(a.phases[alignWarmup:])
		slices.Sort(s)
		phase = s[len(s)/2]
	}
	return a.base.Add(phase + a.f.Duration(a.written) + a.downstream)
}
