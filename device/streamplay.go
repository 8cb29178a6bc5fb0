package device

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/loa-commune/loa/audio"
)

// streamSource is the sound of one play of a session at 48 kHz in the
// stream's channels: output sample k is the session's position
// startPos+k, heard at controller time join + k/48000. It runs on the
// player's goroutine; it takes frames from the session's buffer as their
// time comes (never further than its read-ahead ahead of real time),
// decodes them with libopus, conceals a missing frame for up to
// streamConcealMax (libopus packet loss concealment) and fills the rest of
// a gap with silence, so that every frame sounds at its own position: after
// a gap the box is back on the live point, never behind.
type streamSource struct {
	buf      *streamBuffer
	dec      audio.OpusPacketDecoder
	plc      audio.OpusConcealer // nil: gaps are silent
	channels int
	ahead    time.Duration // how far ahead of real time it reads
	start    int64         // the first position played
	cur      int64         // the next position to play
	limit    int64         // the item's expiry
	// wall0 is when position 0 sounds, on the monotonic clock.
	wall0 time.Time

	ctx     context.Context // the play ends (shutdown, or a cut on a sink that fades itself)
	cut     context.Context // the loop cuts the item: stop waiting, fade out
	cutting bool
	timer   *time.Timer

	pcm       []float32
	pending   []float32 // decoded, from cur-len/channels on
	concealed int64     // samples concealed since the last frame
	missed    []span    // positions not sounded from frames, in order
	badFrames int
	lastErr   error
}

// span is the positions [from, to).
type span struct{ from, to int64 }

var _ audio.Stream = (*streamSource)(nil)

// newStreamSource prepares a play of j, its first sample heard at at
// (time.Now()-based).
func newStreamSource(ctx, cut context.Context, j *streamJob, at time.Time) (*streamSource, error) {
	dec, err := audio.NewOpusDecoder(j.channels)
	if err != nil {
		return nil, fmt.Errorf("live session: %w", err)
	}
	s := &streamSource{
		buf: j.buf, dec: dec, channels: j.channels, ahead: j.ahead,
		start: j.startPos, cur: j.startPos, limit: j.endPos,
		wall0: at.Add(-streamDur(j.startPos)),
		ctx:   ctx, cut: cut,
		pcm: make([]float32, audio.OpusMaxFrame*j.channels),
	}
	s.plc, _ = dec.(audio.OpusConcealer)
	// Settle the decoder on what comes just before the start, if the
	// buffer has it (a box that rejoins after a preemption).
	for _, f := range j.buf.join(j.startPos, streamSamples(streamPrime)) {
		_, _ = s.dec.Decode(f.data, s.pcm)
	}
	return s, nil
}

func (s *streamSource) Format() audio.Format {
	return audio.Format{SampleRate: streamRate, Channels: s.channels}
}

func (s *streamSource) Codec() string { return audio.CodecOpus }

// end is where the play stops: the session's end if known, else the item's
// expiry.
func (s *streamSource) end() int64 {
	if e, ok := s.buf.endPos(); ok && e < s.limit {
		return e
	}
	return s.limit
}

// wallAt is when position pos sounds.
func (s *streamSource) wallAt(pos int64) time.Time { return s.wall0.Add(streamDur(pos)) }

// Read returns the next samples. Before producing the sound of an instant
// it waits until the read-ahead before it (unless the item is being cut);
// once it has some samples it returns them rather than wait.
func (s *streamSource) Read(p []float32) (int, error) {
	ch := s.channels
	n := 0
	for n+ch <= len(p) {
		if len(s.pending) == 0 {
			end := s.end()
			if s.cur >= end {
				if n > 0 {
					return n, nil
				}
				return 0, io.EOF
			}
			if !s.cutting {
				if wait := time.Until(s.wallAt(s.cur).Add(-s.ahead)); wait > 0 {
					if n > 0 {
						return n, nil
					}
					if err := s.wait(wait); err != nil {
						return 0, err
					}
					continue // the end may have come meanwhile
				}
			}
			s.fill(end)
			continue
		}
		k := min(len(s.pending), (len(p)-n)/ch*ch)
		copy(p[n:], s.pending[:k])
		s.pending = s.pending[k:]
		n += k
	}
	return n, nil
}

// wait sleeps for d, or until the play is cut (then it stops waiting for
// good, so the fade-out comes at once) or its context ends.
func (s *streamSource) wait(d time.Duration) error {
	if s.timer == nil {
		s.timer = time.NewTimer(d)
	} else {
		s.timer.Reset(d)
	}
	select {
	case <-s.timer.C:
		return nil
	case <-s.cut.Done():
		s.cutting = true
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// fill decodes the frame at cur into pending, or fills the gap from cur
// to the next frame (at most streamFillMax) with concealment or silence.
func (s *streamSource) fill(end int64) {
	ch := int64(s.channels)
	f, ok, gap := s.buf.take(s.cur, streamSamples(streamFillMax))
	if ok {
		got, err := s.dec.Decode(f.data, s.pcm)
		if err != nil {
			s.badFrames++
			s.lastErr = err
			s.gap(min(f.pos+f.n-s.cur, end-s.cur), end)
			return
		}
		s.concealed = 0
		from, to := s.cur-f.pos, min(int64(got), end-f.pos) // an overlap is trimmed
		if to <= from {
			return
		}
		s.pending = s.pcm[from*ch : to*ch]
		s.cur = f.pos + to
		return
	}
	s.gap(min(gap, end-s.cur), end)
}

// gap fills n samples from cur (n ≥ 1): concealment while the gap is
// young, else silence.
func (s *streamSource) gap(n, end int64) {
	ch := int64(s.channels)
	concealMax := streamSamples(streamConcealMax)
	const step = 120 // libopus conceals multiples of 2.5 ms
	if c := min(n, concealMax-s.concealed) / step * step; s.plc != nil && c > 0 {
		if got, err := s.plc.Conceal(int(c), s.pcm); err == nil && got > 0 {
			n = min(int64(got), end-s.cur)
			s.concealed += n
			s.pending = s.pcm[:n*ch]
			s.miss(n)
			return
		}
	}
	s.concealed += n
	s.pending = s.pcm[:n*ch]
	clear(s.pending)
	s.miss(n)
}

// miss records that n samples from cur are not the session's.
func (s *streamSource) miss(n int64) {
	if k := len(s.missed); k > 0 && s.missed[k-1].to == s.cur {
		s.missed[k-1].to += n
	} else {
		s.missed = append(s.missed, span{s.cur, s.cur + n})
	}
	s.cur += n
}

// account splits the positions from the start up to pos (the first not
// heard) into heard and missed samples.
func (s *streamSource) account(pos int64) (heard, missed int64) {
	pos = min(pos, s.cur, s.end())
	if pos <= s.start {
		return 0, 0
	}
	for _, m := range s.missed {
		if m.from >= pos {
			break
		}
		missed += min(m.to, pos) - m.from
	}
	return pos - s.start - missed, missed
}

func (s *streamSource) close() {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.dec.Close()
}

// streamReader is a session's sound as bytes in the sink's format.
type streamReader struct {
	src     *streamSource
	out     audio.Stream // src remixed and resampled to the sink's format
	format  audio.Format
	floats  []float32
	bytes   []byte
	pending []byte
	err     error
}

// newStreamReader is the program of a stream item's play.
func (a *Agent) newStreamReader(j playJob) (*streamReader, error) {
	src, err := newStreamSource(j.ctx, j.cut, j.stream, j.at)
	if err != nil {
		return nil, err
	}
	out := audio.NewResampler(audio.Remix(src, a.format.Channels), a.format.SampleRate)
	return &streamReader{src: src, out: out, format: a.format, floats: make([]float32, 4096*a.format.Channels)}, nil
}

func (r *streamReader) Read(b []byte) (int, error) {
	bpf := r.format.BytesPerFrame()
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		frames := min(max(len(b)/bpf, 1), len(r.floats)/r.format.Channels)
		n, err := r.out.Read(r.floats[:frames*r.format.Channels])
		r.bytes = audio.PutFloats(r.bytes, r.floats[:n])
		r.pending = r.bytes
		r.err = err
	}
	n := copy(b, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// account is what the play sounded, given the frames of the sink's format
// that were heard: samples at 48 kHz heard and missed, and the controller
// time where it stopped.
func (r *streamReader) account(frames int64) (heard, missed int64, until time.Time) {
	pos := r.src.start + frames*streamRate/int64(r.format.SampleRate)
	heard, missed = r.src.account(pos)
	until = r.src.buf.origin.Add(streamDur(r.src.start + heard + missed))
	return heard, missed, until
}

// problem describes frames the decoder refused, if any.
func (r *streamReader) problem() error {
	if r.src.badFrames == 0 {
		return nil
	}
	return fmt.Errorf("%d frames could not be decoded: %w", r.src.badFrames, r.src.lastErr)
}

func (r *streamReader) close() { r.src.close() }
