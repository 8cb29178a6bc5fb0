package audio

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchSeconds is the length of the generated benchmark media.
const benchSeconds = 10

// benchMedia makes 10 s of 44.1 kHz stereo pink noise (hard work for every
// codec) in each format with sox and lame, skipping those whose tool is
// missing.
func benchMedia(b *testing.B) map[string][]byte {
	b.Helper()
	sox, err := exec.LookPath("sox")
	if err != nil {
		b.Skip("sox is not installed")
	}
	dir := b.TempDir()
	wav := filepath.Join(dir, "bench.wav")
	run := func(name string, args ...string) bool {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			b.Logf("%s: %v\n%s", name, err, out)
			return false
		}
		return true
	}
	if !run(sox, "-n", "-r", "44100", "-c", "2", "-b", "16", wav, "synth", "10", "pinknoise", "vol", "0.3") {
		b.Skip("sox cannot make the media")
	}
	files := map[string]string{CodecWAV: wav}
	if run(sox, wav, filepath.Join(dir, "bench.flac")) {
		files[CodecFLAC] = filepath.Join(dir, "bench.flac")
	}
	if run(sox, wav, filepath.Join(dir, "bench.ogg")) {
		files[CodecOGG] = filepath.Join(dir, "bench.ogg")
	}
	if lame, err := exec.LookPath("lame"); err == nil && run(lame, "--quiet", "-b", "128", wav, filepath.Join(dir, "bench.mp3")) {
		files[CodecMP3] = filepath.Join(dir, "bench.mp3")
	}
	media := map[string][]byte{}
	for codec, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		media[codec] = data
	}
	return media
}

// BenchmarkDecode measures decoding speed per codec, as multiples of real
// time (x-realtime: seconds of audio decoded per second).
func BenchmarkDecode(b *testing.B) {
	media := benchMedia(b)
	for _, codec := range []string{CodecWAV, CodecMP3, CodecOGG, CodecFLAC} {
		data, ok := media[codec]
		if !ok {
			continue
		}
		b.Run(codec, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]float32, 8192)
			for b.Loop() {
				s, err := Decode(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				for {
					_, err := s.Read(buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(benchSeconds*b.N)/b.Elapsed().Seconds(), "x-realtime")
		})
	}
}

// BenchmarkTranscode measures decoding, resampling 44.1 to 48 kHz and
// encoding to the box format, as multiples of real time.
func BenchmarkTranscode(b *testing.B) {
	media := benchMedia(b)
	for _, codec := range []string{CodecWAV, CodecMP3, CodecOGG, CodecFLAC} {
		data, ok := media[codec]
		if !ok {
			continue
		}
		b.Run(codec, func(b *testing.B) {
			for b.Loop() {
				if _, err := Transcode(bytes.NewReader(data), DefaultFormat, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchSeconds*b.N)/b.Elapsed().Seconds(), "x-realtime")
		})
	}
}
