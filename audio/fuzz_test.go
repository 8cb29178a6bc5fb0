package audio

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loa-commune/loa/audio/internal/oggtest"
)

// FuzzDecode feeds mangled media to Decode: it must not panic (a panic in a
// third-party decoder is recovered into an error, one in this package is a
// bug), must stop, and must give a bounded amount of valid samples.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, ".md") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// Short seeds keep the fuzzer fast (it minimizes every new input);
		// a prefix holds the headers and first frames.
		if len(b) <= 10<<10 {
			f.Add(b)
		}
		if len(b) > 4<<10 {
			f.Add(b[:4<<10])
		}
	}
	f.Fuzz(checkDecode)
}

// checkDecode decodes data: it must not panic in this package, must stop,
// and must give a bounded amount of valid samples.
func checkDecode(t *testing.T, data []byte) {
	s, err := Decode(bytes.NewReader(data))
	if err != nil {
		checkPanicOrigin(t, err)
		return
	}
	fm := s.Format()
	if checkFormat(fm) != nil {
		t.Fatalf("Decode accepted format %+v", fm)
	}
	// A FLAC frame of a dozen bytes may hold 65535 frames of 8 channels,
	// an Opus packet of one byte 5760 frames, so long outputs are
	// legitimate (in production Probe's maxDuration bounds them); stop
	// after 256 Ki samples.
	const enough = 1 << 18
	buf := make([]float32, 1024*fm.Channels+fm.Channels-1)
	total := 0
	for {
		n, err := s.Read(buf)
		if n%fm.Channels != 0 || n > len(buf) {
			t.Fatalf("Read returned %d samples for %d channels", n, fm.Channels)
		}
		for _, v := range buf[:n] {
			if !(v >= -1 && v <= 1) {
				t.Fatalf("sample %v out of [-1, 1]", v)
			}
		}
		total += n
		if total > enough {
			return
		}
		if err != nil {
			checkPanicOrigin(t, err)
			return
		}
	}
}

// FuzzDecodeOpus feeds mangled Ogg Opus to Decode, with fakeOpus as the
// packet decoder so that only the Ogg layer is under test (audio/opus
// fuzzes libopus). With fix set the page checksums are recomputed, so that
// mutations reach past them: flags, granule positions, lacing, headers.
func FuzzDecodeOpus(f *testing.F) {
	useFakeOpus(f)
	head := oggtest.OpusHead(1, 312, 0, 0)
	seeds := [][]byte{
		oggtest.Stream(head, 960, [][][]byte{packets(3, 960), packets(2, 960)}, 0, 4000),
		oggtest.Stream(oggtest.OpusHead(2, 100, -300, 0), 120, [][][]byte{packets(4, 120)}, 0, 300),
		oggtest.Stream(head, 480, [][][]byte{packets(1, 480), {oggtest.Packet(960, make([]byte, 600)...)}}, 48000, -1),
	}
	for _, name := range []string{"testdata/tone.opus", "testdata/tone-stereo.opus"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b[:min(len(b), 2<<10)])
	}
	for _, b := range seeds {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = oggtest.FixCRCs(data)
		}
		checkDecode(t, data)
	})
}

// checkPanicOrigin fails if err reports a recovered panic in this package.
func checkPanicOrigin(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(err.Error(), "panic in github.com/loa-commune/loa/") {
		t.Fatalf("panic in our own code: %v", err)
	}
}
