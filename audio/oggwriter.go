package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// OggOpusWriter writes Opus packets as one Ogg Opus stream (RFC 7845)
// without encoding anything: the controller records a live session's
// packets as they went to the boxes. Pages hold about a second of sound;
// the last page, marked end of stream, is written by Close.
//
// A write error is sticky: every later call returns it.
type OggOpusWriter struct {
	w       io.Writer
	serial  uint32
	seq     uint32
	granule int64  // samples per channel so far, the pre-skip included
	lacing  []byte // of the page being filled
	body    []byte
	samples int // of the packets on that page
	packets int
	page    []byte
	err     error
}

// oggPageSamples is how much sound a page holds before it is written.
const oggPageSamples = opusRate

// NewOggOpusWriter writes the headers (OpusHead with channels and preSkip,
// an OpusTags naming vendor) of a stream with the given serial number to w.
func NewOggOpusWriter(w io.Writer, channels, preSkip int, serial uint32, vendor string) (*OggOpusWriter, error) {
	if channels < 1 || channels > 2 {
		return nil, fmt.Errorf("ogg opus writer: %d channels, want 1 or 2", channels)
	}
	if preSkip < 0 || preSkip > 0xffff {
		return nil, fmt.Errorf("ogg opus writer: pre-skip %d", preSkip)
	}
	o := &OggOpusWriter{w: w, serial: serial, granule: int64(preSkip)}
	head := make([]byte, 19)
	copy(head, "OpusHead")
	head[8] = 1 // version
	head[9] = byte(channels)
	binary.LittleEndian.PutUint16(head[10:], uint16(preSkip))
	binary.LittleEndian.PutUint32(head[12:], opusRate) // the input's rate, informative
	// Output gain 0, channel mapping family 0.
	tags := make([]byte, 0, 16+len(vendor))
	tags = append(tags, "OpusTags"...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(vendor)))
	tags = append(tags, vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0) // no comments
	for i, p := range [][]byte{head, tags} {
		o.add(p)
		flags := byte(0)
		if i == 0 {
			flags = oggBOS
		}
		// Header pages have granule position 0 (RFC 7845 section 3).
		if err := o.flush(flags, 0); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// add puts packet p on the page being filled.
func (o *OggOpusWriter) add(p []byte) {
	n := len(p)
	for ; n >= 255; n -= 255 {
		o.lacing = append(o.lacing, 255)
	}
	o.lacing = append(o.lacing, byte(n))
	o.body = append(o.body, p...)
	o.packets++
}

// flush writes the page being filled.
func (o *OggOpusWriter) flush(flags byte, granule int64) error {
	if o.err != nil {
		return o.err
	}
	o.page = o.page[:0]
	o.page = append(o.page, "OggS"...)
	o.page = append(o.page, 0, flags)
	o.page = binary.LittleEndian.AppendUint64(o.page, uint64(granule))
	o.page = binary.LittleEndian.AppendUint32(o.page, o.serial)
	o.page = binary.LittleEndian.AppendUint32(o.page, o.seq)
	o.page = append(o.page, 0, 0, 0, 0, byte(len(o.lacing)))
	o.page = append(o.page, o.lacing...)
	o.page = append(o.page, o.body...)
	binary.LittleEndian.PutUint32(o.page[22:], oggCRC(0, o.page))
	o.seq++
	o.lacing, o.body, o.samples, o.packets = o.lacing[:0], o.body[:0], 0, 0
	if _, err := o.w.Write(o.page); err != nil {
		o.err = fmt.Errorf("ogg opus writer: %w", err)
	}
	return o.err
}

// WritePacket adds an Opus packet (its duration read from its TOC byte).
func (o *OggOpusWriter) WritePacket(p []byte) error {
	if o.err != nil {
		return o.err
	}
	n, err := OpusPacketSamples(p)
	if err != nil {
		return fmt.Errorf("ogg opus writer: %w", err)
	}
	if len(p) > maxOpusPacket-255 {
		return errors.New("ogg opus writer: packet too long")
	}
	// A page ends where its last packet ends: the lacing must fit in 255
	// values, and the page should not grow past a second of sound.
	if len(o.lacing)+len(p)/255+1 > 255 || o.samples >= oggPageSamples {
		if err := o.flush(0, o.granule); err != nil {
			return err
		}
	}
	o.add(p)
	o.samples += n
	o.granule += int64(n)
	return nil
}

// Close writes the last page, marked end of stream. It does not close the
// underlying writer. A stream with no packet gets an empty last page.
func (o *OggOpusWriter) Close() error {
	if o.err != nil {
		return o.err
	}
	err := o.flush(oggEOS, o.granule)
	if err == nil {
		o.err = errors.New("ogg opus writer: closed")
	}
	return err
}

// OpusSilence is a 20 ms Opus packet (CELT, full band) that decodes to
// silence, in mono or stereo: what a recording holds where a session's
// sound had a gap.
func OpusSilence(channels int) []byte {
	if channels == 2 {
		return []byte{0xfc, 0xff, 0xfe}
	}
	return []byte{0xf8, 0xff, 0xfe}
}
