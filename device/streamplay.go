package device

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/loa-commune/loa/audio"
)

// streamSource is the sound of one play of a session at 48 kHz in the
// stream's channels: output sample k is heard at controller time
// join + k/48000 and is the session's position startPos+k (while the
// clock's offset holds). It runs on the player's goroutine; it takes frames
// from the session's buffer as their time comes (never further than its
// read-ahead ahead of real time), decodes them with libopus, conceals a
// missing frame for up to streamConcealMax (libopus packet loss
// concealment) and fills the rest of a gap with silence, so that every
// frame sounds at its own position: after a gap the box is back on the live
// point, never behind.
//
// When time sync corrects the clock's offset by streamResync or more during
// the play (a box that rejoined before it reached the controller), the
// output moves to where the session is by the corrected clock, at a frame's
// edge: it skips ahead (decoding the skipped frames unheard, so the
// decoder's state goes on) or makes silence until the session catches up.
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

	// offset is the clock's offset now; applied is the one the output
	// follows.
	offset  func() time.Duration
	applied time.Duration

	ctx     context.Context // the play ends (shutdown, or a cut on a sink that fades itself)
	cut     context.Context // the loop cuts the item: stop waiting, fade out
	cutting bool
	timer   *time.Timer

	pcm       []float32
	pending   []float32 // made, not yet read
	out       int64     // samples made (per channel)
	hold      int64     // samples of silence to make before cur (the output is ahead)
	concealed int64     // samples concealed since the last frame
	missed    []span    // output samples not sounded from frames, in order
	resyncs   int
	badFrames int
	lastErr   error
}

// span is the output samples [from, to).
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
		wall0:  at.Add(-streamDur(j.startPos)),
		offset: j.offset, applied: j.offset0,
		ctx: ctx, cut: cut,
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
	if !s.cutting && s.cut.Err() != nil {
		s.cutNow()
	}
	for n+ch <= len(p) {
		if len(s.pending) == 0 {
			end := s.end()
			if s.cur >= end {
				if n > 0 {
					return n, nil
				}
				return 0, io.EOF
			}
			if s.resync(end); len(s.pending) > 0 {
				continue // the rest of a frame the output skipped to
			}
			if !s.cutting {
				if wait := time.Until(s.wallAt(s.cur).Add(-s.ahead - streamDur(s.hold))); wait > 0 {
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
		s.cutNow()
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// cutTail is the most sound a cut stream still gives: enough for the
// player's fade-out, no more (a sink that pulls as fast as it can would
// otherwise get, without waiting, everything up to the item's expiry
// before the fade is asked for).
const cutTail = 100 * time.Millisecond

// cutNow stops waiting for good and ends the stream cutTail from here.
func (s *streamSource) cutNow() {
	s.cutting = true
	s.limit = min(s.limit, s.cur+streamSamples(cutTail))
}

// fill decodes the frame at cur into pending, or fills the gap from cur
// to the next frame (at most streamFillMax) with concealment or silence.
func (s *streamSource) fill(end int64) {
	ch := int64(s.channels)
	if s.hold > 0 {
		n := min(s.hold, streamSamples(streamFillMax))
		s.hold -= n
		s.pending = s.pcm[:n*ch]
		clear(s.pending)
		s.missed = appendSpan(s.missed, s.out, n)
		s.out += n
		return
	}
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
		s.place(f.pos, got, end)
		return
	}
	s.gap(min(gap, end-s.cur), end)
}

// place makes pending the frame at pos decoded into pcm (got samples), from
// cur (an overlap is trimmed) up to end.
func (s *streamSource) place(pos int64, got int, end int64) {
	ch := int64(s.channels)
	from, to := s.cur-pos, min(int64(got), end-pos)
	if to <= from {
		return
	}
	s.pending = s.pcm[from*ch : to*ch]
	s.cur = pos + to
	s.out += to - from
}

// resync follows a change of the clock's offset of streamResync or more:
// it skips the positions the output is now behind, or holds the output in
// silence for as long as it is now ahead.
func (s *streamSource) resync(end int64) {
	if s.offset == nil || len(s.pending) > 0 {
		return
	}
	d := s.offset() - s.applied
	if d < streamResync && d > -streamResync {
		return
	}
	s.applied += d
	s.wall0 = s.wall0.Add(-d)
	s.resyncs++
	n := streamSamples(d)
	if n < 0 {
		s.hold += -n
		return
	}
	// Behind: skip n positions, decoding the frames there unheard.
	if s.hold > 0 {
		k := min(s.hold, n)
		s.hold, n = s.hold-k, n-k
	}
	target := min(s.cur+n, end)
	for s.cur < target {
		f, ok, gap := s.buf.take(s.cur, target-s.cur)
		if !ok {
			s.cur += gap
			continue
		}
		got, err := s.dec.Decode(f.data, s.pcm)
		if err != nil || f.pos+int64(got) <= target {
			s.cur = max(s.cur, f.pos+int64(got))
			if err != nil {
				s.cur = max(s.cur, f.pos+f.n)
			}
			continue
		}
		s.cur = target
		s.concealed = 0
		s.place(f.pos, got, end) // the frame across the target: its rest plays
	}
}

// appendSpan adds the n samples from at to spans.
func appendSpan(spans []span, at, n int64) []span {
	if k := len(spans); k > 0 && spans[k-1].to == at {
		spans[k-1].to += n
		return spans
	}
	return append(spans, span{at, at + n})
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

// miss records that the n samples made from cur are not the session's.
func (s *streamSource) miss(n int64) {
	s.missed = appendSpan(s.missed, s.out, n)
	s.out += n
	s.cur += n
}

// account splits the first k samples made (those heard) into heard and
// missed ones.
func (s *streamSource) account(k int64) (heard, missed int64) {
	k = max(min(k, s.out), 0)
	for _, m := range s.missed {
		if m.from >= k {
			break
		}
		missed += min(m.to, k) - m.from
	}
	return k - missed, missed
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
	k := min(frames*streamRate/int64(r.format.SampleRate), r.src.out)
	heard, missed = r.src.account(k)
	until = r.src.buf.origin.Add(streamDur(r.src.cur - (r.src.out - k)))
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
