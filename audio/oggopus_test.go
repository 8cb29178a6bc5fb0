package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/loa-commune/loa/audio/internal/oggtest"
)

// fakeOpus stands in for libopus, so that the Ogg layer can be checked to
// the sample: sample k of the stream (counting every decoded sample per
// channel from 0) is k/2^20 on channel 0 and -k/2^20 on channel 1. A packet
// whose second byte is 0xEE fails to decode.
type fakeOpus struct {
	channels int
	k        int
	closes   *int
}

// fakeFrameUnits is each TOC configuration's frame size in 2.5 ms units
// (RFC 6716 section 3.1, table 2).
var fakeFrameUnits = [32]int{4, 8, 16, 24, 4, 8, 16, 24, 4, 8, 16, 24, 4, 8, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8}

func (f *fakeOpus) Decode(p []byte, pcm []float32) (int, error) {
	if len(p) == 0 {
		return 0, errors.New("fake: empty packet")
	}
	if len(p) > 1 && p[1] == 0xEE {
		return 0, errors.New("fake: bad packet")
	}
	frames := []int{1, 2, 2, 0}[p[0]&3]
	if p[0]&3 == 3 {
		if len(p) < 2 {
			return 0, errors.New("fake: no frame count")
		}
		frames = int(p[1] & 63)
	}
	n := frames * fakeFrameUnits[p[0]>>3] * 120
	if n == 0 || n > 5760 {
		return 0, fmt.Errorf("fake: %d samples", n)
	}
	for i := range n {
		v := float32(f.k+i) / (1 << 20)
		pcm[i*f.channels] = v
		if f.channels == 2 {
			pcm[i*f.channels+1] = -v
		}
	}
	f.k += n
	return n, nil
}

func (f *fakeOpus) Close() error {
	*f.closes++
	return nil
}

// useFakeOpus registers fakeOpus for the test and returns the count of
// decoders made and closed.
func useFakeOpus(t testing.TB) (made, closed *int) {
	made, closed = new(int), new(int)
	RegisterOpusDecoder(func(channels int) (OpusPacketDecoder, error) {
		*made++
		return &fakeOpus{channels: channels, closes: closed}, nil
	})
	t.Cleanup(func() { RegisterOpusDecoder(nil) })
	return made, closed
}

// ramp is what fakeOpus's stream holds from sample from to sample to, on
// channels, scaled by gain.
func ramp(from, to, channels int, gain float32) []float32 {
	var out []float32
	for k := from; k < to; k++ {
		v := float32(k) / (1 << 20) * gain
		out = append(out, v)
		if channels == 2 {
			out = append(out, -v)
		}
	}
	return out
}

// packets is n packets of samples each.
func packets(n, samples int) [][]byte {
	var ps [][]byte
	for i := range n {
		ps = append(ps, oggtest.Packet(samples, byte(i), 1, 2, 3))
	}
	return ps
}

func TestOggCRC(t *testing.T) {
	// The CRC-32/OGG check value (CRC catalogue: poly 0x04c11db7, init 0,
	// not reflected, no final XOR).
	if got := oggCRC(0, []byte("123456789")); got != 0x89a1897f {
		t.Errorf("CRC of 123456789 = %#08x, want 0x89a1897f", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 5000)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if got, want := oggCRC(oggCRC(0, b[:1234]), b[1234:]), oggtest.CRC(b); got != want {
		t.Errorf("CRC of random bytes = %#08x, bitwise CRC %#08x", got, want)
	}
}

func TestDecodeOpus(t *testing.T) {
	head := oggtest.OpusHead(1, 312, 0, 0)
	// A packet of 600 bytes spread over three pages, then two more packets
	// on the last page.
	big := oggtest.Packet(960, bytes.Repeat([]byte{7}, 599)...)
	lacing, body := oggtest.Lace(big, packets(1, 960)[0], packets(1, 960)[0])
	spanning := slices.Concat(
		oggtest.Page{Flags: oggtest.BOS, Serial: 9, Seq: 0, Lacing: []byte{19}, Body: head}.Bytes(),
		oggtest.Page{Serial: 9, Seq: 1, Lacing: []byte{byte(len(oggtest.OpusTags()))}, Body: oggtest.OpusTags()}.Bytes(),
		oggtest.Page{Granule: -1, Serial: 9, Seq: 2, Lacing: lacing[:1], Body: body[:255]}.Bytes(),
		oggtest.Page{Flags: oggtest.Continued, Granule: -1, Serial: 9, Seq: 3, Lacing: lacing[1:2], Body: body[255:510]}.Bytes(),
		oggtest.Page{Flags: oggtest.Continued | oggtest.EOS, Granule: 3*960 - 100, Serial: 9, Seq: 4, Lacing: lacing[2:], Body: body[510:]}.Bytes(),
	)
	// Another stream multiplexed with the first (its pages are skipped),
	// and one chained after it (not read).
	other := func(flags byte, seq uint32) []byte {
		l, b := oggtest.Lace([]byte("\x01vorbis other stream"))
		return oggtest.Page{Flags: flags, Serial: 77, Seq: seq, Lacing: l, Body: b}.Bytes()
	}
	one := oggtest.Stream(head, 960, [][][]byte{packets(3, 960), packets(3, 960)}, 0, 5000)
	pages := splitPages(t, one)
	multiplexed := slices.Concat(pages[0], other(oggtest.BOS, 0), pages[1], other(0, 1), pages[2], other(oggtest.EOS, 2), pages[3])
	chained := slices.Concat(one, oggtest.Stream(oggtest.OpusHead(2, 0, 0, 0), 960, [][][]byte{packets(1, 960)}, 0, -1), []byte("junk"))
	// An end-of-stream page with no packet: nothing to trim.
	emptyEOS := rewritePage(t, oggtest.Stream(head, 960, [][][]byte{packets(2, 960)}, 0, -1), 2, func(p *oggtest.Page) { p.Flags = 0 })
	emptyEOS = append(emptyEOS, oggtest.Page{Flags: oggtest.EOS, Granule: -1, Serial: 0x10a, Seq: 3}.Bytes()...)

	tests := []struct {
		name     string
		data     []byte
		channels int
		want     []float32
	}{
		{"pre-skip and end trimmed", oggtest.Stream(head, 960, [][][]byte{packets(3, 960), packets(2, 960), packets(1, 960)}, 0, 5760-100), 1, ramp(312, 5660, 1, 1)},
		{"whole last packet", oggtest.Stream(head, 960, [][][]byte{packets(3, 960), packets(1, 960)}, 0, -1), 1, ramp(312, 3840, 1, 1)},
		{"end inside the pre-skip", oggtest.Stream(head, 960, [][][]byte{packets(1, 960)}, 0, 300), 1, nil},
		{"end granule past the audio", oggtest.Stream(head, 960, [][][]byte{packets(2, 960), packets(1, 960)}, 0, 99999), 1, ramp(312, 2880, 1, 1)},
		{"end granule before its page", oggtest.Stream(head, 960, [][][]byte{packets(2, 960), packets(1, 960)}, 0, 1000), 1, ramp(312, 1920, 1, 1)},
		{"pre-skip over several packets", oggtest.Stream(oggtest.OpusHead(1, 2000, 0, 0), 480, [][][]byte{packets(6, 480), packets(2, 480)}, 0, 3500), 1, ramp(2000, 3500, 1, 1)},
		{"stream starting late", oggtest.Stream(head, 960, [][][]byte{packets(2, 960), packets(2, 960)}, 48000, 48000+3000), 1, ramp(312, 3000, 1, 1)},
		{"one page, trimmed", oggtest.Stream(head, 120, [][][]byte{packets(10, 120)}, 0, 1000), 1, ramp(312, 1000, 1, 1)},
		{"stereo", oggtest.Stream(oggtest.OpusHead(2, 100, 0, 0), 240, [][][]byte{packets(4, 240), packets(4, 240)}, 0, 1900), 2, ramp(100, 1900, 2, 1)},
		{"output gain -6 dB", oggtest.Stream(oggtest.OpusHead(1, 0, -6*256, 0), 960, [][][]byte{packets(2, 960)}, 0, -1), 1, ramp(0, 1920, 1, 0.5011872)},
		{"packet across three pages", spanning, 1, ramp(312, 3*960-100, 1, 1)},
		{"multiplexed", multiplexed, 1, ramp(312, 5000, 1, 1)},
		{"chained", chained, 1, ramp(312, 5000, 1, 1)},
		{"empty end-of-stream page", emptyEOS, 1, ramp(312, 1920, 1, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			made, closed := useFakeOpus(t)
			s, err := Decode(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if s.Codec() != CodecOpus || s.Format() != (Format{48000, tt.channels}) {
				t.Fatalf("codec %s format %+v", s.Codec(), s.Format())
			}
			got := readStream(t, s)
			if len(got) != len(tt.want) {
				t.Fatalf("%d frames, want %d", len(got)/tt.channels, len(tt.want)/tt.channels)
			}
			for i := range got {
				if math.Abs(float64(got[i]-tt.want[i])) > 1e-7 {
					t.Fatalf("sample %d = %v (k=%.1f), want %v", i, got[i], got[i]*(1<<20), tt.want[i])
				}
			}
			if *made != 1 || *closed != 1 {
				t.Errorf("%d decoders made, %d closed; want 1, 1", *made, *closed)
			}
		})
	}
}

// TestDecodeOpusFixtures reads files made by ffmpeg (testdata/README.md)
// with the fake decoder: their length comes from the Ogg layer alone.
func TestDecodeOpusFixtures(t *testing.T) {
	for _, tt := range []struct {
		file     string
		channels int
	}{{"tone.opus", 1}, {"tone-stereo.opus", 2}} {
		t.Run(tt.file, func(t *testing.T) {
			useFakeOpus(t)
			s, samples := decodeFile(t, tt.file)
			if s.Codec() != CodecOpus || s.Format() != (Format{48000, tt.channels}) {
				t.Fatalf("codec %s format %+v", s.Codec(), s.Format())
			}
			// One second, as ffmpeg decodes it; 312 samples of pre-skip.
			if got := len(samples) / tt.channels; got != 48000 {
				t.Errorf("%d frames, want 48000", got)
			}
			if got, want := samples[0], float32(312)/(1<<20); got != want {
				t.Errorf("first sample %v, want sample 312 (%v)", got, want)
			}
		})
	}
	t.Run("no decoder", func(t *testing.T) {
		RegisterOpusDecoder(nil)
		f, err := os.Open("testdata/tone.opus")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, err = Probe(f, 0)
		if !errors.Is(err, ErrNoOpusDecoder) {
			t.Fatalf("err = %v, want ErrNoOpusDecoder", err)
		}
		if want := "decode opus: this program has no Opus decoder (loa-agent is built with libopus)"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
}

func TestDecodeOpusErrors(t *testing.T) {
	head := oggtest.OpusHead(1, 312, 0, 0)
	good := oggtest.Stream(head, 960, [][][]byte{packets(3, 960), packets(3, 960), packets(3, 960)}, 0, -1)
	pages := splitPages(t, good)
	withHead := func(h []byte) []byte {
		return oggtest.Stream(h, 960, [][][]byte{packets(2, 960)}, 0, -1)
	}
	badCRC := bytes.Clone(good)
	badCRC[len(pages[0])+len(pages[1])+40] ^= 1 // in page 3's body
	huge := make([][]byte, 300)                 // a packet of 300*255 bytes over two pages
	for i := range huge {
		huge[i] = bytes.Repeat([]byte{1}, 255)
	}
	hugeLacing := bytes.Repeat([]byte{255}, 255)
	firstPages := slices.Concat(pages[0], pages[1])
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"bad checksum", badCRC, "decode opus: page 3: bad checksum"},
		{"OpusHead too short", withHead(head[:12]), "decode opus: page 1: OpusHead of 12 bytes, want 19"},
		{"mapping family 1", withHead(oggtest.OpusHead(2, 312, 0, 1)), "decode opus: page 1: channel mapping family 1 is not supported (only family 0: mono or stereo)"},
		{"mapping family 255", withHead(oggtest.OpusHead(1, 312, 0, 255)), "decode opus: page 1: channel mapping family 255 is not supported"},
		{"3 channels", withHead(oggtest.OpusHead(3, 312, 0, 0)), "decode opus: page 1: 3 channels in mapping family 0, want 1 or 2"},
		{"0 channels", withHead(oggtest.OpusHead(0, 312, 0, 0)), "decode opus: page 1: 0 channels"},
		{"version 16", withHead(append(slices.Clone(head[:8]), append([]byte{16}, head[9:]...)...)), "decode opus: page 1: unsupported OpusHead version 16"},
		{"no OpusTags", rewritePage(t, good, 1, func(p *oggtest.Page) { p.Body = []byte("OpusTagz"); p.Lacing = []byte{8} }), "decode opus: page 2: no OpusTags packet after OpusHead"},
		{"headers only", slices.Concat(pages[0], pages[1]), "decode opus: truncated: no end-of-stream page after page 2: unexpected EOF"},
		{"truncated inside a page", good[:len(good)-30], "decode opus: page 5: truncated: unexpected EOF"},
		{"truncated before the last page", good[:len(good)-len(pages[4])], "decode opus: truncated: no end-of-stream page after page 4"},
		{"page missing", slices.Concat(pages[0], pages[1], pages[2], pages[4]), "decode opus: page 4: page sequence number 4 follows 2: pages are missing"},
		{"not Ogg after the first page", slices.Concat(pages[0], []byte("OggZ"), make([]byte, 40)), "decode opus: page 2: no Ogg page header"},
		{"Ogg version 1", rewriteBytes(good, len(firstPages)+4, 1), "decode opus: page 3: Ogg version 1, want 0"},
		{"bad header type", rewritePage(t, good, 2, func(p *oggtest.Page) { p.Flags = 0x08 }), "decode opus: page 3: bad header type 0x08"},
		{"continued without a packet", rewritePage(t, good, 2, func(p *oggtest.Page) { p.Flags = oggtest.Continued }), "decode opus: page 3: continues a packet that was never started"},
		{"packet cut short", rewritePage(t, good, 2, cutShort), "decode opus: page 4: the previous packet is cut short"},
		{"stream ends inside a packet", rewritePage(t, good, 4, cutShort), "decode opus: page 5: stream ends inside a packet"},
		{"second beginning", rewritePage(t, good, 3, func(p *oggtest.Page) { p.Flags = oggtest.BOS }), "decode opus: page 4: the stream begins a second time"},
		{"packet too long", slices.Concat(firstPages,
			oggtest.Page{Granule: -1, Serial: 0x10a, Seq: 2, Lacing: hugeLacing, Body: slices.Concat(huge[:255]...)}.Bytes(),
			oggtest.Page{Flags: oggtest.Continued | oggtest.EOS, Granule: 960, Serial: 0x10a, Seq: 3, Lacing: append(bytes.Repeat([]byte{255}, 45), 0), Body: slices.Concat(huge[255:]...)}.Bytes()),
			"decode opus: page 4: packet longer than 65025 bytes"},
		{"empty packet", oggtest.Stream(head, 960, [][][]byte{{{}}}, 0, -1), "decode opus: page 3: empty packet"},
		{"packet of zero frames", oggtest.Stream(head, 960, [][][]byte{{{0xfb, 0}}}, 0, -1), "decode opus: page 3: packet of zero frames"},
		{"packet over 120 ms", oggtest.Stream(head, 960, [][][]byte{{{0xfb, 7}}}, 0, -1), "decode opus: page 3: packet of 7 frames of 960 samples is longer than 120 ms"},
		{"decoder error", oggtest.Stream(head, 960, [][][]byte{packets(1, 960), {{0xf8, 0xEE}}}, 0, -1), "decode opus: page 4: fake: bad packet"},
		{"first granule too small", oggtest.Stream(head, 960, [][][]byte{packets(3, 960), packets(1, 960)}, -1000, -1), "decode opus: page 3: granule position 1880 is before the end of the page's 2880 samples"},
		{"no granule position", rewritePage(t, good, 2, func(p *oggtest.Page) { p.Granule = -1 }), "decode opus: page 3: bad granule position -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, closed := useFakeOpus(t)
			s, err := Decode(bytes.NewReader(tt.data))
			if err == nil {
				_, err = drain(s)
				if *closed != 1 {
					t.Errorf("decoder closed %d times, want 1", *closed)
				}
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if errors.Is(err, ErrUnknownFormat) {
				t.Errorf("error %v wraps ErrUnknownFormat", err)
			}
			if strings.Contains(tt.want, "truncated") && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v does not wrap io.ErrUnexpectedEOF", err)
			}
		})
	}
	t.Run("no OpusHead", func(t *testing.T) {
		// Decode gives anything else than OpusHead to the Vorbis decoder;
		// the Opus reader refuses it too.
		data := withHead([]byte("OpusHeaX\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"))
		_, err := newOpusStream(bytes.NewReader(data))
		if err == nil || err.Error() != "page 1: no OpusHead packet at the start" {
			t.Errorf("err = %v", err)
		}
		if _, err := Decode(bytes.NewReader(data)); err == nil || !strings.HasPrefix(err.Error(), "decode ogg:") {
			t.Errorf("Decode: err = %v, want a Vorbis error", err)
		}
	})
}

// splitPages cuts an Ogg file into its pages.
func splitPages(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var pages [][]byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			t.Fatalf("not an Ogg page: %q", b[:min(len(b), 27)])
		}
		size := 27 + int(b[26])
		for _, l := range b[27 : 27+int(b[26])] {
			size += int(l)
		}
		pages = append(pages, b[:size])
		b = b[size:]
	}
	return pages
}

// rewritePage returns a copy of the Ogg file b with page i (from 0)
// changed by edit and its checksum recomputed.
func rewritePage(t testing.TB, b []byte, i int, edit func(*oggtest.Page)) []byte {
	t.Helper()
	pages := splitPages(t, b)
	raw := pages[i]
	n := int(raw[26])
	p := oggtest.Page{
		Flags:   raw[5],
		Granule: int64(binary.LittleEndian.Uint64(raw[6:])),
		Serial:  binary.LittleEndian.Uint32(raw[14:]),
		Seq:     binary.LittleEndian.Uint32(raw[18:]),
		Lacing:  slices.Clone(raw[27 : 27+n]),
		Body:    slices.Clone(raw[27+n:]),
	}
	edit(&p)
	var out []byte
	for j, page := range pages {
		if j == i {
			page = p.Bytes()
		}
		out = append(out, page...)
	}
	return out
}

// rewriteBytes sets b[at] to v (in a copy) and fixes the checksums.
func rewriteBytes(b []byte, at int, v byte) []byte {
	b = slices.Clone(b)
	b[at] = v
	return oggtest.FixCRCs(b)
}

// cutShort makes the last packet of a page continue onto the next.
func cutShort(p *oggtest.Page) {
	last := len(p.Lacing) - 1
	p.Body = append(p.Body, make([]byte, 255-int(p.Lacing[last]))...)
	p.Lacing[last] = 255
}
