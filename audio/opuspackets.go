package audio

import (
	"fmt"
	"io"
)

// OpusPackets reads the Opus packets of an Ogg Opus stream as they arrive,
// without decoding them: the controller relays a live session's packets to
// the boxes as the encoder made them. It checks the Ogg layer (page
// checksums, one stream) and each packet's table of contents.
type OpusPackets struct {
	or       *oggPacketReader
	channels int
	preSkip  int
}

// NewOpusPackets reads the stream's headers (OpusHead, OpusTags) from r.
func NewOpusPackets(r io.Reader) (*OpusPackets, error) {
	or := newOggPacketReader(r)
	head, err := readOpusHeaders(or)
	if err != nil {
		return nil, fmt.Errorf("ogg opus: %w", err)
	}
	return &OpusPackets{or: or, channels: head.channels, preSkip: head.preSkip}, nil
}

// Channels is the stream's channel count (1 or 2).
func (o *OpusPackets) Channels() int { return o.channels }

// PreSkip is how many samples per channel at the start are the encoder's
// warm-up, not sound.
func (o *OpusPackets) PreSkip() int { return o.preSkip }

// Next returns the next packet and its duration in samples per channel at
// 48 kHz; io.EOF at the end of the stream. The packet is valid until the
// next call.
func (o *OpusPackets) Next() ([]byte, int, error) {
	p, err := o.or.next(maxOpusPacket, false)
	if err != nil {
		return nil, 0, err
	}
	n, err := OpusPacketSamples(p.data)
	if err != nil {
		return nil, 0, fmt.Errorf("ogg opus: page %d: %w", p.page, err)
	}
	return p.data, n, nil
}

// OpusConcealer is an OpusPacketDecoder that can also make up the sound
// of lost packets (libopus's packet loss concealment).
type OpusConcealer interface {
	OpusPacketDecoder
	// Conceal writes samples per channel of concealment for a lost packet
	// into pcm (at most OpusMaxFrame).
	Conceal(samples int, pcm []float32) (int, error)
}

// NewOpusDecoder returns a packet decoder from the registered factory
// (ErrNoOpusDecoder when there is none), for a live stream's packets.
func NewOpusDecoder(channels int) (OpusPacketDecoder, error) {
	newDec := newOpusDecoder.Load()
	if newDec == nil {
		return nil, ErrNoOpusDecoder
	}
	return (*newDec)(channels)
}
