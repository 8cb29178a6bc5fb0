package audio

import (
	"errors"
	"fmt"
	"io"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
)

// flacStream decodes FLAC with mewkiz/flac, one frame at a time.
type flacStream struct {
	st      *flac.Stream
	format  Format
	bits    int    // from STREAMINFO, for frames that do not say
	total   uint64 // samples per channel from STREAMINFO, 0 if unknown
	decoded uint64
	frame   *frame.Frame
	next    int // next sample index in frame
	eof     bool
}

func newFLACStream(r io.Reader) (Stream, error) {
	st, err := flac.New(r)
	if err != nil {
		return nil, err
	}
	info := st.Info
	if info == nil {
		return nil, errors.New("no STREAMINFO block")
	}
	if info.BitsPerSample < 4 || info.BitsPerSample > 32 {
		return nil, fmt.Errorf("unsupported sample size %d bits", info.BitsPerSample)
	}
	return &flacStream{
		st:     st,
		format: Format{SampleRate: int(info.SampleRate), Channels: int(info.NChannels)},
		bits:   int(info.BitsPerSample),
		total:  info.NSamples,
	}, nil
}

func (s *flacStream) Format() Format { return s.format }
func (s *flacStream) Codec() string  { return CodecFLAC }

func (s *flacStream) Read(p []float32) (int, error) {
	ch := s.format.Channels
	for s.frame == nil || s.next >= int(s.frame.BlockSize) {
		if s.eof {
			return 0, io.EOF
		}
		if err := s.nextFrame(); err != nil {
			return 0, err
		}
	}
	f := s.frame
	frames := min(len(p)/ch, int(f.BlockSize)-s.next)
	scale := 1 / float64(int64(1)<<(f.BitsPerSample-1))
	for c, sub := range f.Subframes {
		src := sub.Samples[s.next : s.next+frames]
		for i, v := range src {
			p[i*ch+c] = float32(float64(v) * scale)
		}
	}
	s.next += frames
	return frames * ch, nil
}

func (s *flacStream) nextFrame() error {
	s.frame = nil
	f, err := s.st.Next()
	if err == io.EOF {
		s.eof = true
		if s.total > 0 && s.decoded < s.total {
			return fmt.Errorf("truncated: %d of %d samples", s.decoded, s.total)
		}
		return io.EOF
	}
	if err != nil {
		return err
	}
	if f.BitsPerSample == 0 {
		f.BitsPerSample = uint8(s.bits)
	}
	if f.BitsPerSample < 4 || f.BitsPerSample > 32 {
		return fmt.Errorf("frame with %d-bit samples", f.BitsPerSample)
	}
	if f.Channels.Count() != s.format.Channels {
		return fmt.Errorf("frame with %d channels in a %d-channel stream", f.Channels.Count(), s.format.Channels)
	}
	if err := f.Parse(); err != nil {
		return noEOF(err)
	}
	for _, sub := range f.Subframes {
		if len(sub.Samples) < int(f.BlockSize) {
			return errors.New("subframe shorter than its block")
		}
	}
	s.frame, s.next = f, 0
	s.decoded += uint64(f.BlockSize)
	return nil
}
