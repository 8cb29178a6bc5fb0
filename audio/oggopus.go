package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"
)

// ErrNoOpusDecoder is returned by Decode for Ogg Opus when no Opus packet
// decoder is registered: the Ogg layer is pure Go, but the codec is
// libopus, which needs cgo, and the controller builds without it.
var ErrNoOpusDecoder = errors.New("this program has no Opus decoder (loa-agent is built with libopus)")

// OpusPacketDecoder decodes one Opus packet to interleaved float32 at 48 kHz.
type OpusPacketDecoder interface {
	Decode(packet []byte, pcm []float32) (samplesPerChannel int, err error) // pcm must hold 5760*channels
	Close() error
}

// OpusMaxFrame is the most samples per channel one Opus packet decodes to
// (120 ms at 48 kHz).
const OpusMaxFrame = 5760

// opusRate is the rate Opus always decodes at.
const opusRate = 48000

// maxOpusPacket bounds an Opus stream's packets in memory. Real ones are
// under 1.3 KB per 20 ms frame; an Ogg packet longer than 255 lacing
// segments of 255 bytes is taken as corrupt.
const maxOpusPacket = 255 * 255

var newOpusDecoder atomic.Pointer[func(channels int) (OpusPacketDecoder, error)]

// RegisterOpusDecoder makes Decode use newDecoder for Ogg Opus; package
// audio/opus registers libopus when it is imported (loa-agent does). A
// later call replaces the decoder; nil removes it.
func RegisterOpusDecoder(newDecoder func(channels int) (OpusPacketDecoder, error)) {
	if newDecoder == nil {
		newOpusDecoder.Store(nil)
		return
	}
	newOpusDecoder.Store(&newDecoder)
}

// opusHead is the identification header (RFC 7845 section 5.1).
type opusHead struct {
	channels int
	preSkip  int
	gainQ8   int16 // output gain, dB in Q7.8
}

func parseOpusHead(p []byte) (opusHead, error) {
	if len(p) < 8 || string(p[:8]) != "OpusHead" {
		return opusHead{}, errors.New("no OpusHead packet at the start")
	}
	if len(p) < 19 {
		return opusHead{}, fmt.Errorf("OpusHead of %d bytes, want 19", len(p))
	}
	// Versions 0 to 15 (major version 0) share this layout (RFC 7845 section 5.1).
	if v := p[8]; v&0xf0 != 0 {
		return opusHead{}, fmt.Errorf("unsupported OpusHead version %d", v)
	}
	h := opusHead{
		channels: int(p[9]),
		preSkip:  int(binary.LittleEndian.Uint16(p[10:])),
		gainQ8:   int16(binary.LittleEndian.Uint16(p[16:])),
	}
	if family := p[18]; family != 0 {
		return opusHead{}, fmt.Errorf("channel mapping family %d is not supported (only family 0: mono or stereo)", family)
	}
	if h.channels < 1 || h.channels > 2 {
		return opusHead{}, fmt.Errorf("%d channels in mapping family 0, want 1 or 2", h.channels)
	}
	return h, nil
}

// OpusPacketSamples is the duration of an Opus packet in samples per
// channel at 48 kHz, from its table-of-contents byte (RFC 6716 section 3.1).
func OpusPacketSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, errors.New("empty packet")
	}
	config := p[0] >> 3
	var frame int
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]int{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]int{120, 240, 480, 960}[config&3]
	}
	frames := 1
	switch p[0] & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0, errors.New("packet ends before its frame count")
		}
		frames = int(p[1] & 0x3f)
		if frames == 0 {
			return 0, errors.New("packet of zero frames")
		}
	}
	if n := frames * frame; n <= OpusMaxFrame {
		return n, nil
	}
	return 0, fmt.Errorf("packet of %d frames of %d samples is longer than 120 ms", frames, frame)
}

// opusStream decodes the first Opus stream of an Ogg file (RFC 7845): the
// packets go through the registered OpusPacketDecoder; the Ogg layer drops
// the pre-skip and trims the end to the last granule position, so the
// output is as long as what the encoder was given, to the sample.
//
// Sample positions: k counts decoded samples per channel from 0; sample k
// sits at granule position start+k, where start is the first audio page's
// granule position minus the samples of the packets ending on it.
type opusStream struct {
	or     *oggPacketReader
	dec    OpusPacketDecoder
	format Format
	head   opusHead
	gain   float32 // linear, from the header's output gain

	pcm []float32 // the decoder's output
	out []float32 // decoded samples not yet read

	decoded  int64 // k of the next decoded sample
	startSet bool  // start is known
	start    int64
	err      error // sticky: io.EOF or the failure
}

// readOpusHeaders reads an Ogg Opus stream's two header packets.
func readOpusHeaders(or *oggPacketReader) (opusHead, error) {
	p, err := or.next(maxOpusPacket, false)
	if err == io.EOF {
		err = errors.New("no OpusHead packet at the start")
	}
	if err != nil {
		return opusHead{}, err
	}
	head, err := parseOpusHead(p.data)
	if err != nil {
		return opusHead{}, fmt.Errorf("page %d: %w", p.page, err)
	}
	p, err = or.next(8, true)
	if err == io.EOF {
		err = errors.New("no OpusTags packet after OpusHead")
	}
	if err != nil {
		return opusHead{}, err
	}
	if string(p.data) != "OpusTags" {
		return opusHead{}, fmt.Errorf("page %d: no OpusTags packet after OpusHead", p.page)
	}
	return head, nil
}

func newOpusStream(r io.Reader) (Stream, error) {
	or := newOggPacketReader(r)
	head, err := readOpusHeaders(or)
	if err != nil {
		return nil, err
	}
	newDec := newOpusDecoder.Load()
	if newDec == nil {
		return nil, ErrNoOpusDecoder
	}
	dec, err := (*newDec)(head.channels)
	if err != nil {
		return nil, fmt.Errorf("new decoder: %w", err)
	}
	s := &opusStream{
		or:     or,
		dec:    dec,
		format: Format{SampleRate: opusRate, Channels: head.channels},
		head:   head,
		gain:   float32(math.Pow(10, float64(head.gainQ8)/(20*256))),
		pcm:    make([]float32, OpusMaxFrame*head.channels),
	}
	return s, nil
}

func (s *opusStream) Format() Format { return s.format }
func (s *opusStream) Codec() string  { return CodecOpus }

func (s *opusStream) Read(p []float32) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if err := s.decodePacket(); err != nil {
			s.err = err
			s.dec.Close()
		}
	}
	n := min(len(p)/s.format.Channels*s.format.Channels, len(s.out))
	copy(p, s.out[:n])
	s.out = s.out[n:]
	return n, nil
}

// decodePacket decodes the next packet into s.out, less what the pre-skip
// and the end trimming drop.
func (s *opusStream) decodePacket() error {
	p, err := s.or.next(maxOpusPacket, false)
	if err != nil {
		return err
	}
	want, err := OpusPacketSamples(p.data)
	if err != nil {
		return fmt.Errorf("page %d: %w", p.page, err)
	}
	n, err := s.dec.Decode(p.data, s.pcm)
	if err != nil {
		return fmt.Errorf("page %d: %w", p.page, err)
	}
	if n != want {
		return fmt.Errorf("page %d: decoder gave %d samples for a packet of %d", p.page, n, want)
	}
	k := s.decoded
	s.decoded += int64(n)
	if (p.lastOnPage || p.eos) && p.granule < 0 {
		return fmt.Errorf("page %d: bad granule position %d", p.page, p.granule)
	}
	if !s.startSet {
		switch {
		case p.eos:
			// One page of audio: its granule position can only say
			// where the stream ends (RFC 7845 section 4.5).
			s.startSet = true
		case p.lastOnPage:
			if p.granule < s.decoded {
				return fmt.Errorf("page %d: granule position %d is before the end of the page's %d samples", p.page, p.granule, s.decoded)
			}
			s.start, s.startSet = p.granule-s.decoded, true
		}
	}
	from, to := int64(0), int64(n)
	if skip := int64(s.head.preSkip) - k; skip > 0 {
		from = min(skip, to)
	}
	if p.eos {
		// The end-of-stream page's granule position is where the audio
		// ends; the packets on it may decode further (RFC 7845 section 4.4).
		if end := p.granule - s.start - k; end < to {
			to = max(end, from)
		}
	}
	s.out = s.pcm[from*int64(s.format.Channels) : to*int64(s.format.Channels)]
	if s.gain != 1 {
		for i := range s.out {
			s.out[i] *= s.gain
		}
	}
	return nil
}
