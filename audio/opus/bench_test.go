//go:build cgo

package opus_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/loa-commune/loa/audio"
)

// longSpeech returns minutes of speech-like audio as mono 32 kbit/s Ogg
// Opus made by ffmpeg, as the controller converts uploads: espeak-ng's
// announcement over and over (pink noise with a syllable-rate envelope
// without espeak-ng). It is kept in the temporary directory across runs:
// 30 minutes take a while to encode.
func longSpeech(tb testing.TB, minutes int) string {
	tb.Helper()
	ff := ffmpeg(tb)
	in := []string{"-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.3,volume='0.55+0.45*sin(2*PI*4*t)':eval=frame"}
	kind := "noise"
	if _, err := exec.LookPath("espeak-ng"); err == nil {
		in = []string{"-stream_loop", "-1", "-i", speech(tb, tb.TempDir())}
		kind = "speech"
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("loa-opus-%s-%dmin.opus", kind, minutes))
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	args := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, in...)
	args = append(args, "-t", strconv.Itoa(60*minutes), "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k", "-f", "ogg", tmp)
	run(tb, ff, args...)
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkDecodeOpus measures what the agent does with a downloaded item
// (transcode: 30 minutes of mono 32 kbit/s speech into the box's 48 kHz
// stereo, io.Discard standing for the cache file) and the Opus decoding
// alone (decode). xrealtime is seconds of audio per second of work.
func BenchmarkDecodeOpus(b *testing.B) {
	path := longSpeech(b, 30)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("transcode", func(b *testing.B) {
		b.SetBytes(st.Size())
		var info audio.Info
		for b.Loop() {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			info, err = audio.Transcode(f, audio.DefaultFormat, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(info.Duration.Seconds()*float64(b.N)/b.Elapsed().Seconds(), "xrealtime")
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(st.Size())
		buf := make([]float32, 8192)
		var frames int
		for b.Loop() {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			s, err := audio.Decode(f)
			if err != nil {
				b.Fatal(err)
			}
			frames = 0
			for {
				n, err := s.Read(buf)
				frames += n
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(frames)/48000*float64(b.N)/b.Elapsed().Seconds(), "xrealtime")
	})
}

// TestTranscodePeakRSS runs the agent's cache step, Transcode from file to
// file, in a process of its own (testdata/transcode, built without the
// race detector) and checks its peak resident memory, which must not grow
// with the media's length: a Pi has little to spare. LOA_OPUS_RSS_MINUTES
// sets the length (default 3).
func TestTranscodePeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes minutes of audio")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build testdata/transcode")
	}
	minutes := 3
	if s := os.Getenv("LOA_OPUS_RSS_MINUTES"); s != "" {
		if minutes, err = strconv.Atoi(s); err != nil {
			t.Fatalf("LOA_OPUS_RSS_MINUTES: %v", err)
		}
	}
	const maxRSS = 30 << 10 // kB
	dir := t.TempDir()
	helper := filepath.Join(dir, "transcode")
	run(t, goCmd, "build", "-o", helper, "./testdata/transcode")
	src := longSpeech(t, minutes)
	out := string(run(t, helper, src, filepath.Join(dir, "out.f32")))
	m := regexp.MustCompile(`frames=(\d+) .* vmhwm_kb=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("transcode printed %q", out)
	}
	frames, _ := strconv.Atoi(m[1])
	hwm, _ := strconv.Atoi(m[2])
	t.Logf("%d min: %d frames, peak RSS %.1f MB", minutes, frames, float64(hwm)/1024)
	if frames != minutes*60*48000 {
		t.Errorf("%d frames, want %d", frames, minutes*60*48000)
	}
	if hwm > maxRSS {
		t.Errorf("peak RSS %d kB, want ≤ %d kB", hwm, maxRSS)
	}
}
