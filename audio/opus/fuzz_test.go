//go:build cgo

package opus_test

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/audio/internal/oggtest"
	"github.com/loa-commune/loa/audio/opus"
)

// realPackets are the audio packets of an ffmpeg-made file.
func realPackets(f *testing.F, name string) [][]byte {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return oggtest.Packets(b)[2:]
}

// FuzzDecodeOggOpus feeds mangled Ogg Opus to audio.Decode with libopus
// behind it: no crash (a crash in C cannot be recovered), no panic, an
// end, and valid samples. With fix set the page checksums are recomputed,
// so that mutations reach libopus.
func FuzzDecodeOggOpus(f *testing.F) {
	mono := realPackets(f, "../testdata/tone.opus")
	stereo := realPackets(f, "../testdata/tone-stereo.opus")
	seeds := [][]byte{
		oggtest.Stream(oggtest.OpusHead(1, 312, 0, 0), 960, [][][]byte{mono[:3], mono[3:5]}, 0, 4000),
		oggtest.Stream(oggtest.OpusHead(2, 312, 512, 0), 960, [][][]byte{stereo[10:12]}, 0, -1),
	}
	if b, err := os.ReadFile("../testdata/tone.opus"); err == nil {
		seeds = append(seeds, b[:2<<10])
	}
	for _, b := range seeds {
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = oggtest.FixCRCs(data)
		}
		s, err := audio.Decode(bytes.NewReader(data))
		if err != nil {
			checkNoPanic(t, err)
			return
		}
		if s.Codec() != audio.CodecOpus {
			return // audio's FuzzDecode covers the other codecs
		}
		ch := s.Format().Channels
		if s.Format().SampleRate != 48000 || ch < 1 || ch > 2 {
			t.Fatalf("format %+v", s.Format())
		}
		buf := make([]float32, 1000*ch)
		for total := 0; total < 1<<18; {
			n, err := s.Read(buf)
			if n%ch != 0 {
				t.Fatalf("Read gave %d samples for %d channels", n, ch)
			}
			for _, v := range buf[:n] {
				if !(v >= -1 && v <= 1) {
					t.Fatalf("sample %v", v)
				}
			}
			total += n
			if err == io.EOF {
				return
			}
			if err != nil {
				checkNoPanic(t, err)
				return
			}
		}
	})
}

// FuzzDecoder feeds arbitrary packets to libopus through Decoder.
func FuzzDecoder(f *testing.F) {
	for _, p := range realPackets(f, "../testdata/tone.opus")[:4] {
		f.Add(p, false)
	}
	for _, p := range realPackets(f, "../testdata/tone-stereo.opus")[:4] {
		f.Add(p, true)
	}
	f.Add([]byte{0xfb, 0x83, 1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, packet []byte, stereo bool) {
		ch := 1
		if stereo {
			ch = 2
		}
		d, err := opus.NewDecoder(ch)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		pcm := make([]float32, audio.OpusMaxFrame*ch)
		// Twice: the second packet decodes against the state the first
		// left.
		for range 2 {
			n, err := d.Decode(packet, pcm)
			if err != nil {
				return
			}
			if n < 1 || n > audio.OpusMaxFrame {
				t.Fatalf("Decode gave %d samples", n)
			}
		}
	})
}

// checkNoPanic fails if err reports a recovered panic in Loa's code (one
// in a third-party decoder, such as oggvorbis on a mangled header, is
// recovered by design).
func checkNoPanic(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(err.Error(), "panic in github.com/loa-commune/loa/") {
		t.Fatalf("panic: %v", err)
	}
}
