package audio

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Ogg page layout (RFC 3533 section 6).
const (
	oggHeaderSize = 27
	oggMaxPage    = oggHeaderSize + 255 + 255*255

	oggContinued = 0x01 // the page's first segment continues a packet
	oggBOS       = 0x02 // beginning of a logical stream
	oggEOS       = 0x04 // end of a logical stream
)

// oggCRCTable drives Ogg's CRC-32: polynomial 0x04c11db7 fed most
// significant bit first, no initial or final inversion. hash/crc32 only
// does the reflected (IEEE) form, so it cannot compute this one.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// oggCRC continues crc over b.
func oggCRC(crc uint32, b []byte) uint32 {
	for _, c := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^c]
	}
	return crc
}

// oggPacket is a packet of the stream and the page it ends on.
type oggPacket struct {
	data       []byte // valid until the next call to next
	page       int    // number of that page in the file, from 1
	granule    int64  // that page's granule position
	eos        bool   // that page ends the stream
	lastOnPage bool   // no other packet ends on that page
}

// oggPacketReader yields the packets of the first logical stream of an Ogg
// file, a page at a time, so its memory is one page and one packet however
// long the file. Pages of other streams are skipped after their checksum;
// the stream ends at its end-of-stream page, without reading further.
type oggPacketReader struct {
	r      io.Reader
	buf    []byte // the current page
	pageNo int    // pages read from the file

	// The current page of the stream, as far as it has been consumed.
	segs    []byte // lacing values still to read
	body    []byte // body still to read
	granule int64
	eos     bool

	started bool // the first page has been read
	serial  uint32
	seq     uint32 // sequence number of the current page
	ended   bool   // the end-of-stream page has been consumed

	pkt     []byte // the packet being assembled (its first limit bytes)
	pktLen  int    // its length so far
	partial bool   // a packet is being assembled
}

func newOggPacketReader(r io.Reader) *oggPacketReader {
	return &oggPacketReader{r: r, buf: make([]byte, oggMaxPage)}
}

// next returns the next packet. A packet longer than limit bytes is an
// error, unless skip is set: then only its first limit bytes are kept (a
// comment header may carry cover art, and is not needed). At the end of
// the stream it returns io.EOF.
func (o *oggPacketReader) next(limit int, skip bool) (oggPacket, error) {
	if !o.partial {
		o.pkt, o.pktLen = o.pkt[:0], 0
	}
	for {
		for len(o.segs) > 0 {
			l := int(o.segs[0])
			o.segs = o.segs[1:]
			chunk := o.body[:l]
			o.body = o.body[l:]
			o.pktLen += l
			if keep := limit - len(o.pkt); keep > 0 {
				o.pkt = append(o.pkt, chunk[:min(l, keep)]...)
			}
			if o.pktLen > limit && !skip {
				return oggPacket{}, fmt.Errorf("page %d: packet longer than %d bytes", o.pageNo, limit)
			}
			if l == 255 {
				o.partial = true
				continue
			}
			o.partial = false
			last := true
			for _, s := range o.segs {
				if s < 255 {
					last = false
					break
				}
			}
			return oggPacket{data: o.pkt, page: o.pageNo, granule: o.granule, eos: o.eos, lastOnPage: last}, nil
		}
		if o.eos {
			if o.partial {
				return oggPacket{}, fmt.Errorf("page %d: stream ends inside a packet", o.pageNo)
			}
			o.ended = true
		}
		if o.ended {
			return oggPacket{}, io.EOF
		}
		if err := o.readPage(); err != nil {
			return oggPacket{}, err
		}
	}
}

// readPage reads pages until one of the stream, checking each.
func (o *oggPacketReader) readPage() error {
	for {
		o.pageNo++
		hdr := o.buf[:oggHeaderSize]
		if _, err := io.ReadFull(o.r, hdr); err != nil {
			if err == io.EOF {
				return fmt.Errorf("truncated: no end-of-stream page after page %d: %w", o.pageNo-1, io.ErrUnexpectedEOF)
			}
			return o.readError(err)
		}
		if string(hdr[:4]) != "OggS" {
			return fmt.Errorf("page %d: no Ogg page header", o.pageNo)
		}
		if hdr[4] != 0 {
			return fmt.Errorf("page %d: Ogg version %d, want 0", o.pageNo, hdr[4])
		}
		flags := hdr[5]
		if flags&^(oggContinued|oggBOS|oggEOS) != 0 {
			return fmt.Errorf("page %d: bad header type 0x%02x", o.pageNo, flags)
		}
		nsegs := int(hdr[26])
		segs := o.buf[oggHeaderSize : oggHeaderSize+nsegs]
		if _, err := io.ReadFull(o.r, segs); err != nil {
			return o.readError(err)
		}
		size := 0
		for _, s := range segs {
			size += int(s)
		}
		end := oggHeaderSize + nsegs + size
		body := o.buf[oggHeaderSize+nsegs : end]
		if _, err := io.ReadFull(o.r, body); err != nil {
			return o.readError(err)
		}
		crc := oggCRC(0, hdr[:22])
		crc = oggCRC(crc, []byte{0, 0, 0, 0})
		crc = oggCRC(crc, o.buf[26:end])
		if crc != binary.LittleEndian.Uint32(hdr[22:]) {
			return fmt.Errorf("page %d: bad checksum", o.pageNo)
		}
		serial := binary.LittleEndian.Uint32(hdr[14:])
		seq := binary.LittleEndian.Uint32(hdr[18:])
		switch {
		case !o.started:
			if flags&oggBOS == 0 {
				return fmt.Errorf("page %d: not the beginning of a stream", o.pageNo)
			}
			o.started, o.serial = true, serial
		case serial != o.serial:
			continue // another logical stream, multiplexed or chained
		case flags&oggBOS != 0:
			return fmt.Errorf("page %d: the stream begins a second time", o.pageNo)
		case seq != o.seq+1:
			return fmt.Errorf("page %d: page sequence number %d follows %d: pages are missing", o.pageNo, seq, o.seq)
		}
		o.seq = seq
		if cont := flags&oggContinued != 0; cont != o.partial {
			if cont {
				return fmt.Errorf("page %d: continues a packet that was never started", o.pageNo)
			}
			return fmt.Errorf("page %d: the previous packet is cut short", o.pageNo)
		}
		o.segs, o.body = segs, body
		o.granule = int64(binary.LittleEndian.Uint64(hdr[6:]))
		o.eos = flags&oggEOS != 0
		return nil
	}
}

// readError says that a page is cut short, or why it could not be read.
func (o *oggPacketReader) readError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("page %d: truncated: %w", o.pageNo, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("page %d: %w", o.pageNo, err)
}
