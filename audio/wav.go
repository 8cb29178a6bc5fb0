package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// WAV format tags.
const (
	wavFormatPCM        = 1
	wavFormatFloat      = 3
	wavFormatExtensible = 0xFFFE
)

// wavStream decodes RIFF/WAVE: integer PCM of 8 (unsigned), 16, 24 and 32
// bits, and IEEE float of 32 and 64 bits, plain or WAVE_FORMAT_EXTENSIBLE.
type wavStream struct {
	r        io.Reader
	format   Format
	float    bool
	bits     int
	left     int64 // data bytes still to read, -1 to read to EOF
	buf      []byte
	pending  []byte // bytes of a partial frame carried between reads
	frameLen int
}

// maxChunkSkip bounds how far a non-data chunk may make the reader skip.
const maxChunkSkip = 64 << 20

func newWAVStream(r io.Reader) (*wavStream, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read RIFF header: %w", noEOF(err))
	}
	if string(hdr[:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return nil, errors.New("not a RIFF/WAVE file")
	}
	s := &wavStream{r: r}
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if !haveFmt {
				return nil, fmt.Errorf("no fmt chunk: %w", noEOF(err))
			}
			return nil, fmt.Errorf("no data chunk: %w", noEOF(err))
		}
		id := string(ch[:4])
		size := int64(binary.LittleEndian.Uint32(ch[4:]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return nil, fmt.Errorf("fmt chunk of %d bytes", size)
			}
			body := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, body); err != nil {
				return nil, fmt.Errorf("read fmt chunk: %w", noEOF(err))
			}
			if err := s.parseFmt(body[:size]); err != nil {
				return nil, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, errors.New("data chunk before fmt chunk")
			}
			s.left = size
			if size == 0 || size == 0xFFFFFFFF {
				s.left = -1 // written while streaming: read to the end
			}
			s.buf = make([]byte, 4096*s.frameLen)
			return s, nil
		default:
			skip := size + size&1
			if skip > maxChunkSkip {
				return nil, fmt.Errorf("%q chunk of %d bytes", id, size)
			}
			if n, err := io.CopyN(io.Discard, r, skip); err != nil {
				return nil, fmt.Errorf("skip %q chunk: read %d of %d bytes: %w", id, n, skip, noEOF(err))
			}
		}
	}
}

func (s *wavStream) parseFmt(b []byte) error {
	tag := binary.LittleEndian.Uint16(b[0:])
	channels := int(binary.LittleEndian.Uint16(b[2:]))
	rate := int(binary.LittleEndian.Uint32(b[4:]))
	align := int(binary.LittleEndian.Uint16(b[12:]))
	bits := int(binary.LittleEndian.Uint16(b[14:]))
	if tag == wavFormatExtensible {
		if len(b) < 40 {
			return errors.New("WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
		}
		tag = binary.LittleEndian.Uint16(b[24:]) // first bytes of the sub-format GUID
	}
	s.format = Format{SampleRate: rate, Channels: channels}
	if err := checkFormat(s.format); err != nil {
		return err
	}
	switch {
	case tag == wavFormatPCM && (bits == 8 || bits == 16 || bits == 24 || bits == 32):
	case tag == wavFormatFloat && (bits == 32 || bits == 64):
		s.float = true
	default:
		return fmt.Errorf("unsupported WAV encoding (format tag %d, %d bits)", tag, bits)
	}
	s.bits = bits
	s.frameLen = channels * bits / 8
	if align != s.frameLen {
		return fmt.Errorf("block align %d, want %d", align, s.frameLen)
	}
	return nil
}

func (s *wavStream) Format() Format { return s.format }
func (s *wavStream) Codec() string  { return CodecWAV }

func (s *wavStream) Read(p []float32) (int, error) {
	ch := s.format.Channels
	frames := min(len(p)/ch, len(s.buf)/s.frameLen)
	if frames == 0 {
		return 0, nil
	}
	for {
		n, err := s.read(p[:frames*ch])
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// read decodes at most len(p) samples (whole frames) into p; it may return
// 0, nil when it read only part of a frame.
func (s *wavStream) read(p []float32) (int, error) {
	ch := s.format.Channels
	k := copy(s.buf, s.pending)
	s.pending = s.pending[:0]
	space := int64(len(p)/ch*s.frameLen - k)
	if s.left >= 0 {
		space = min(space, s.left)
	}
	if space == 0 {
		return 0, io.EOF // a partial last frame is dropped
	}
	n, err := io.ReadAtLeast(s.r, s.buf[k:k+int(space)], 1)
	if s.left >= 0 {
		s.left -= int64(n)
	}
	n += k
	whole := n - n%s.frameLen
	s.pending = append(s.pending, s.buf[whole:n]...)
	decodePCM(p[:whole/s.frameLen*ch], s.buf[:whole], s.bits, s.float)
	if err == io.EOF {
		if s.left > 0 {
			return 0, fmt.Errorf("truncated: %d bytes of data missing", s.left)
		}
		if whole > 0 {
			err = nil
		}
	}
	return whole / s.frameLen * ch, err
}

// decodePCM converts little-endian PCM samples in b to floats in p.
func decodePCM(p []float32, b []byte, bits int, float bool) {
	switch {
	case float && bits == 32:
		for i := range p {
			p[i] = sanitize(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case float && bits == 64:
		for i := range p {
			p[i] = sanitize(float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))))
		}
	case bits == 8:
		for i := range p {
			p[i] = float32(int(b[i])-128) / 128
		}
	case bits == 16:
		for i := range p {
			p[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:]))) / (1 << 15)
		}
	case bits == 24:
		for i := range p {
			v := int32(uint32(b[3*i])<<8|uint32(b[3*i+1])<<16|uint32(b[3*i+2])<<24) >> 8
			p[i] = float32(v) / (1 << 23)
		}
	case bits == 32:
		for i := range p {
			p[i] = float32(float64(int32(binary.LittleEndian.Uint32(b[4*i:]))) / (1 << 31))
		}
	}
}

// sanitize clamps a float sample to [-1, 1] and turns NaN into silence.
func sanitize(v float32) float32 {
	switch {
	case v > 1:
		return 1
	case v < -1:
		return -1
	case v != v:
		return 0
	}
	return v
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
