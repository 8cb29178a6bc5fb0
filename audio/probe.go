package audio

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"
)

// Probe decodes all of r to check that it is playable media and measure it.
// It fails with an error wrapping ErrNoAudio if r decodes to no frames, and
// ErrTooLong as soon as the audio passes maxDuration (maxDuration <= 0
// means no limit).
func Probe(r io.ReadSeeker, maxDuration time.Duration) (Info, error) {
	s, err := Decode(r)
	if err != nil {
		return Info{}, err
	}
	f := s.Format()
	info := Info{Codec: s.Codec(), Source: f}
	var limit int64 = math.MaxInt64
	if maxDuration > 0 {
		limit = int64(maxDuration) * int64(f.SampleRate) / int64(time.Second)
	}
	buf := make([]float32, 8192*f.Channels)
	for {
		n, err := s.Read(buf)
		info.Frames += int64(n / f.Channels)
		if info.Frames > limit {
			info.Duration = framesDuration(info.Frames, f.SampleRate)
			return info, fmt.Errorf("decode %s: longer than %v: %w", info.Codec, maxDuration, ErrTooLong)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return info, err
		}
	}
	info.Duration = framesDuration(info.Frames, f.SampleRate)
	if info.Frames == 0 {
		return info, fmt.Errorf("decode %s: %w", info.Codec, ErrNoAudio)
	}
	return info, nil
}

func framesDuration(frames int64, rate int) time.Duration {
	return time.Duration(frames) * time.Second / time.Duration(rate)
}

// Transcode decodes r, mixes it to out.Channels (see Remix), resamples it to
// out.SampleRate (see NewResampler) and writes it to w as float32
// little-endian interleaved PCM, a block at a time: memory stays bounded
// whatever the length. The Info describes the source. Media that decodes to
// no frames gives an error wrapping ErrNoAudio.
func Transcode(r io.ReadSeeker, out Format, w io.Writer) (Info, error) {
	if err := checkFormat(out); err != nil {
		return Info{}, fmt.Errorf("transcode: output format: %w", err)
	}
	s, err := Decode(r)
	if err != nil {
		return Info{}, err
	}
	c := &countingStream{Stream: s}
	info := Info{Codec: s.Codec(), Source: s.Format()}
	var conv Stream = c
	// Mix down before resampling and up after, so the filter runs on as
	// few channels as possible.
	if out.Channels < s.Format().Channels {
		conv = NewResampler(Remix(conv, out.Channels), out.SampleRate)
	} else {
		conv = Remix(NewResampler(conv, out.SampleRate), out.Channels)
	}
	_, err = WriteStream(w, conv)
	info.Frames = c.frames
	info.Duration = framesDuration(c.frames, info.Source.SampleRate)
	if err != nil {
		return info, err
	}
	if info.Frames == 0 {
		return info, fmt.Errorf("decode %s: %w", info.Codec, ErrNoAudio)
	}
	return info, nil
}

// WriteStream writes all of s to w as float32 little-endian interleaved PCM
// and returns the number of bytes written.
func WriteStream(w io.Writer, s Stream) (int64, error) {
	ch := s.Format().Channels
	buf := make([]float32, 4096*ch)
	out := make([]byte, 4*len(buf))
	var total int64
	for {
		n, err := s.Read(buf)
		if n > 0 {
			b := PutFloats(out, buf[:n])
			m, werr := w.Write(b)
			total += int64(m)
			if werr != nil {
				return total, fmt.Errorf("write pcm: %w", werr)
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// PutFloats encodes samples as float32 little-endian into dst (grown if too
// short) and returns the bytes used.
func PutFloats(dst []byte, samples []float32) []byte {
	if cap(dst) < 4*len(samples) {
		dst = make([]byte, 4*len(samples))
	}
	dst = dst[:4*len(samples)]
	for i, v := range samples {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
	return dst
}

// Floats decodes float32 little-endian PCM (a trailing partial sample is
// ignored).
func Floats(pcm []byte) []float32 {
	out := make([]float32, len(pcm)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(pcm[4*i:]))
	}
	return out
}

// countingStream counts the frames that pass through it.
type countingStream struct {
	Stream
	frames int64
}

func (c *countingStream) Read(p []float32) (int, error) {
	n, err := c.Stream.Read(p)
	c.frames += int64(n / c.Stream.Format().Channels)
	return n, err
}
