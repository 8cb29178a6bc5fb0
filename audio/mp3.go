package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hajimehoshi/go-mp3"
)

// mp3Header is a parsed MPEG audio Layer III frame header.
type mp3Header struct {
	lsf      bool // MPEG-2 or 2.5 (one granule per frame)
	version  int  // 1, 2, or 25 for MPEG-2.5
	rate     int
	channels int
	size     int // bytes, header included
	crc      bool
	sideInfo int
	samples  int // per channel per frame
}

var (
	mp3Bitrates = [2][16]int{
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0}, // MPEG-1
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},     // MPEG-2/2.5
	}
	mp3Rates = [3]int{44100, 48000, 32000}
)

// parseMP3Header parses the 4 bytes of a Layer III frame header. Free-format
// bitrates and other layers are refused: go-mp3 cannot decode them.
func parseMP3Header(b []byte) (mp3Header, bool) {
	var h mp3Header
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return h, false
	}
	ver := (b[1] >> 3) & 3
	layer := (b[1] >> 1) & 3
	brIndex := int(b[2] >> 4)
	srIndex := int(b[2]>>2) & 3
	if ver == 1 || layer != 1 || brIndex == 0 || brIndex == 15 || srIndex == 3 || b[3]&3 == 2 {
		return h, false
	}
	switch ver {
	case 3:
		h.version = 1
		h.rate = mp3Rates[srIndex]
	case 2:
		h.version, h.lsf = 2, true
		h.rate = mp3Rates[srIndex] / 2
	case 0:
		h.version, h.lsf = 25, true
		h.rate = mp3Rates[srIndex] / 4
	}
	h.channels = 2
	if b[3]>>6 == 3 {
		h.channels = 1
	}
	h.crc = b[1]&1 == 0
	pad := int(b[2]>>1) & 1
	if h.lsf {
		h.size = 72*mp3Bitrates[1][brIndex]*1000/h.rate + pad
		h.samples = 576
		h.sideInfo = 17
		if h.channels == 1 {
			h.sideInfo = 9
		}
	} else {
		h.size = 144*mp3Bitrates[0][brIndex]*1000/h.rate + pad
		h.samples = 1152
		h.sideInfo = 32
		if h.channels == 1 {
			h.sideInfo = 17
		}
	}
	return h, true
}

// sameStream reports whether h can follow first in one stream.
func (h mp3Header) sameStream(first mp3Header) bool {
	return h.version == first.version && h.rate == first.rate
}

// maxMP3Frame is the largest Layer III frame (MPEG-1, 320 kbit/s, 32 kHz, padded).
const maxMP3Frame = 1441

// findMP3Sync looks for the first frame in the first 64 KiB from offset. A
// frame right at offset is taken as it is (the file says it is MPEG audio);
// further on, a frame must be followed by another frame of the same stream
// (or by the end of the file), so that a stray 0xFFE in other data is not
// taken for MPEG audio.
func findMP3Sync(r io.ReadSeeker, offset, size int64) (int64, bool) {
	const window = 64 << 10
	buf := make([]byte, min(size-offset, window+2*maxMP3Frame+4))
	n, _ := io.ReadFull(r, buf)
	buf = buf[:n]
	for i := 0; i+4 <= len(buf) && i < window; i++ {
		h, ok := parseMP3Header(buf[i:])
		if !ok {
			continue
		}
		next := i + h.size
		if i == 0 || offset+int64(next) == size {
			return offset + int64(i), true
		}
		if next+4 <= len(buf) {
			if h2, ok := parseMP3Header(buf[next:]); ok && h2.sameStream(h) {
				return offset + int64(i), true
			}
		}
	}
	return 0, false
}

// mp3Scan is what a pass over the frame headers found.
type mp3Scan struct {
	first    mp3Header // first audio frame (after any Xing/Info frame)
	frames   int64     // audio frames, Xing/Info frame excluded
	infoSkip bool      // the first frame is a Xing/Info frame
	delay    int       // encoder delay from a LAME tag, -1 if none
	padding  int       // encoder padding from a LAME tag
	xFrames  int64     // frame count from the Xing/Info frame, 0 if none
}

// scanMP3 walks the frame headers of the whole stream, so that a corrupt or
// truncated file is refused before any sound is played, the true channel
// count is known (go-mp3 always gives stereo), and a LAME tag's encoder
// delay and padding can be trimmed.
func scanMP3(r io.ReadSeeker) (mp3Scan, error) {
	sc := mp3Scan{delay: -1}
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return sc, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return sc, err
	}
	br := &byteWindow{r: r}
	pos, ok := findMP3Sync(r, 0, size)
	if !ok {
		return sc, errors.New("no MPEG audio frame found")
	}
	lead := pos
	var junk int64
	var first mp3Header
	haveFirst := false
	for pos < size {
		hb, err := br.at(pos, 4)
		if err != nil {
			return sc, err
		}
		h, ok := parseMP3Header(hb)
		if ok && haveFirst && !h.sameStream(first) {
			ok = false
		}
		if !ok {
			if trailingTag(br, pos, size) {
				break
			}
			next, found := resyncMP3(br, pos+1, size, first, haveFirst)
			if !found {
				junk += size - pos
				break
			}
			junk += next - pos
			pos = next
			continue
		}
		if pos+int64(h.size) > size {
			return sc, fmt.Errorf("truncated: last frame at byte %d is cut short", pos+lead)
		}
		if !haveFirst {
			first, haveFirst = h, true
			fb, err := br.at(pos, h.size)
			if err != nil {
				return sc, err
			}
			if parseXing(fb, h, &sc) {
				sc.infoSkip = true
				pos += int64(h.size)
				continue
			}
		}
		if sc.frames == 0 {
			sc.first = h
		}
		sc.frames++
		pos += int64(h.size)
	}
	if sc.frames == 0 {
		return sc, errors.New("no MPEG audio frames")
	}
	audioBytes := size - lead
	if junk > 2048 && junk*10 > audioBytes {
		return sc, fmt.Errorf("corrupt: %d of %d bytes are not MPEG audio frames", junk, audioBytes)
	}
	if sc.xFrames > 0 && sc.xFrames > sc.frames+1 {
		return sc, fmt.Errorf("truncated: %d frames of %d", sc.frames, sc.xFrames)
	}
	return sc, nil
}

// trailingTag reports whether the bytes at pos are a tag that ends a file.
func trailingTag(br *byteWindow, pos, size int64) bool {
	b, err := br.at(pos, int(min(size-pos, 8)))
	if err != nil {
		return false
	}
	switch {
	case size-pos == 128 && bytes.HasPrefix(b, []byte("TAG")):
		return true
	case bytes.HasPrefix(b, []byte("APETAGEX")), bytes.HasPrefix(b, []byte("LYRICSBE")):
		return true
	}
	return false
}

// resyncMP3 finds the next frame from pos on that is followed by another.
func resyncMP3(br *byteWindow, pos, size int64, first mp3Header, haveFirst bool) (int64, bool) {
	for ; pos+4 <= size; pos++ {
		b, err := br.at(pos, 4)
		if err != nil {
			return 0, false
		}
		h, ok := parseMP3Header(b)
		if !ok || (haveFirst && !h.sameStream(first)) {
			continue
		}
		next := pos + int64(h.size)
		if next == size {
			return pos, true
		}
		if next+4 > size {
			continue
		}
		b2, err := br.at(next, 4)
		if err != nil {
			return 0, false
		}
		if h2, ok := parseMP3Header(b2); ok && h2.sameStream(h) {
			return pos, true
		}
	}
	return 0, false
}

// parseXing reads a Xing/Info frame with an optional LAME tag.
func parseXing(f []byte, h mp3Header, sc *mp3Scan) bool {
	off := 4 + h.sideInfo
	if h.crc {
		off += 2
	}
	if off+8 > len(f) {
		return false
	}
	tag := string(f[off : off+4])
	if tag != "Xing" && tag != "Info" {
		return false
	}
	flags := binary.BigEndian.Uint32(f[off+4:])
	off += 8
	if flags&1 != 0 {
		if off+4 > len(f) {
			return true
		}
		sc.xFrames = int64(binary.BigEndian.Uint32(f[off:]))
		off += 4
	}
	if flags&2 != 0 {
		off += 4
	}
	if flags&4 != 0 {
		off += 100
	}
	if flags&8 != 0 {
		off += 4
	}
	// LAME tag: 9-byte encoder string, then 12 bytes, then 12+12 bits of
	// encoder delay and padding. FFmpeg writes the same tag as "Lavc".
	if off+24 > len(f) {
		return true
	}
	enc := string(f[off : off+4])
	if enc != "LAME" && enc != "Lavc" && enc != "Lavf" {
		return true
	}
	d := f[off+21:]
	delay := int(d[0])<<4 | int(d[1])>>4
	padding := int(d[1]&0x0F)<<8 | int(d[2])
	if delay <= 3*h.samples && padding <= 3*h.samples {
		sc.delay, sc.padding = delay, padding
	}
	return true
}

// byteWindow gives short random reads at absolute offsets of a ReadSeeker.
type byteWindow struct {
	r   io.ReadSeeker
	buf []byte
	at0 int64
}

func (w *byteWindow) at(pos int64, n int) ([]byte, error) {
	if pos >= w.at0 && pos+int64(n) <= w.at0+int64(len(w.buf)) {
		i := int(pos - w.at0)
		return w.buf[i : i+n], nil
	}
	if _, err := w.r.Seek(pos, io.SeekStart); err != nil {
		return nil, err
	}
	if cap(w.buf) < 8<<10 {
		w.buf = make([]byte, 8<<10)
	}
	m, err := io.ReadFull(w.r, w.buf[:cap(w.buf)])
	w.buf, w.at0 = w.buf[:m], pos
	if m < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return w.buf[:n], nil
}

// mp3DecoderDelay is the delay, in samples, of the standard Layer III
// synthesis (filter bank and IMDCT overlap) that go-mp3 implements.
const mp3DecoderDelay = 529

// mp3Stream decodes MPEG-1/2 Layer III with go-mp3 and trims the Xing/Info
// frame and, when a LAME tag gives them, the encoder delay and padding.
type mp3Stream struct {
	dec      *mp3.Decoder
	format   Format
	skip     int64 // frames still to drop at the start
	left     int64 // frames still to give, -1 if unbounded
	raw      []byte
	rawStart int
}

func newMP3Stream(r io.ReadSeeker) (Stream, error) {
	sc, err := scanMP3(r)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if sc.first.version == 25 {
		return nil, errors.New("MPEG-2.5 (8-12 kHz) is not supported")
	}
	// go-mp3 would scan a seekable source for a length it is not asked for.
	dec, err := mp3.NewDecoder(readerOnly{r})
	if err != nil {
		return nil, err
	}
	s := &mp3Stream{
		dec:    dec,
		format: Format{SampleRate: sc.first.rate, Channels: sc.first.channels},
		left:   -1,
		raw:    make([]byte, 0, 4*4096),
	}
	if dec.SampleRate() != s.format.SampleRate {
		return nil, fmt.Errorf("sample rate changes from %d to %d", dec.SampleRate(), s.format.SampleRate)
	}
	spf := int64(sc.first.samples)
	if sc.infoSkip {
		s.skip = spf
	}
	if sc.delay >= 0 {
		total := sc.frames
		if sc.xFrames > 0 && sc.xFrames <= sc.frames {
			total = sc.xFrames
		}
		keep := total*spf - int64(sc.delay) - int64(sc.padding)
		if keep > 0 {
			s.skip += int64(sc.delay) + mp3DecoderDelay
			s.left = keep
		}
	}
	return s, nil
}

func (s *mp3Stream) Format() Format { return s.format }
func (s *mp3Stream) Codec() string  { return CodecMP3 }

func (s *mp3Stream) Read(p []float32) (int, error) {
	ch := s.format.Channels
	for {
		if s.left == 0 {
			return 0, io.EOF
		}
		if s.rawStart == len(s.raw) {
			s.raw = s.raw[:cap(s.raw)]
			n, err := io.ReadFull(s.dec, s.raw)
			n -= n % 4
			s.raw, s.rawStart = s.raw[:n], 0
			if n == 0 {
				if err == nil || err == io.ErrUnexpectedEOF {
					err = io.EOF
				}
				return 0, err
			}
		}
		frames := int64(len(s.raw)-s.rawStart) / 4
		if s.skip > 0 {
			d := min(s.skip, frames)
			s.skip -= d
			s.rawStart += int(d) * 4
			continue
		}
		frames = min(frames, int64(len(p)/ch))
		if s.left > 0 {
			frames = min(frames, s.left)
			s.left -= frames
		}
		src := s.raw[s.rawStart : s.rawStart+int(frames)*4]
		s.rawStart += int(frames) * 4
		for i := 0; i < int(frames); i++ {
			l := float32(int16(binary.LittleEndian.Uint16(src[4*i:]))) / 32768
			if ch == 1 {
				p[i] = l
				continue
			}
			p[2*i] = l
			p[2*i+1] = float32(int16(binary.LittleEndian.Uint16(src[4*i+2:]))) / 32768
		}
		return int(frames) * ch, nil
	}
}
